//! The phone's side at run time, after **serve**: which pair a request uses under the
//! conditions the app believes now, and running it.
//!
//! - [`Conditions`], [`choose`]: the paper's run-time rule over every cut's line in
//!   selection.json (`nsplit select`);
//! - [`run`]: `nsplit run`, the head here and the tail on the server, measured against the
//!   prediction;
//! - [`beliefs`], [`adaptive`]: `nsplit run --adaptive`, the paper's runtime: each request
//!   chosen under the conditions the client learned from its own requests, answered all-mobile
//!   when the server does not answer;
//! - [`calibrate`]: `nsplit run --calibrate`, what a request costs beyond the network, measured
//!   and written into buckets for the planner.

pub mod adaptive;
pub mod beliefs;
pub mod calibrate;
pub mod run;

use crate::plan::Objective;
use crate::selection::{round6, CutEntry, Selected, SelectionTable};
use crate::setting::Setting;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// What the app believes of the network and the server when it makes a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conditions {
    /// The uplink bandwidth, Mbps.
    pub uplink_mbps: f64,
    /// The kind of network: a bucket's name (its radio, downlink ratio, round trip and protocol
    /// cost); the breakpoint sweep's network without one.
    pub network: Option<String>,
    /// The round trip to the server, ms; the network's own without one.
    pub rtt_ms: Option<f64>,
    /// The server's load factor, its time over the cloud profile's prediction (as the main
    /// job's `cloud_load`); the table's without one.
    pub server_load: Option<f64>,
    /// Per cut id: its head's time here over the mobile profile's prediction.
    pub head_factor: BTreeMap<String, f64>,
    /// The factor of a head not in `head_factor` (0 or less: 1).
    pub other_heads: f64,
    /// Per cut id: its tail's time on the server over the prediction at `server_load` (a
    /// profile can be off for one tail and not another); 1 for a cut not in it.
    pub server_factor: BTreeMap<String, f64>,
}

/// The pair a request uses, and what it is predicted to cost.
#[derive(Clone, Debug)]
pub struct Choice<'a> {
    pub cut: &'a CutEntry,
    /// The objective predicted under the conditions (the bandwidth clamped to the planned range).
    pub predicted: f64,
    /// The network whose lines answered.
    pub network: String,
    /// Whether the bandwidth is inside the range the table was planned over.
    pub in_planned_range: bool,
    /// The round trip (ms) and server load the choice was made for.
    pub rtt_ms: f64,
    pub server_load: f64,
    /// Every cut's prediction under the conditions, by id.
    pub predictions: BTreeMap<String, f64>,
}

/// The pair for a request under `c`, by the paper's rule: the cut of least predicted objective,
/// each cut's prediction its line on the network (`objective_at_bandwidth`) moved by how far
/// the round trip, the server's load and its head's time are from those the table was planned
/// for (a request pays the round trip once; the tail's time scales with the load; the head's
/// time and compute energy with its factor; neither the round trip nor the load changes the
/// phone's energy). Under the table's own conditions the network's breakpoints answer, as
/// `nsplit select` always has: they are the planner's exact crossings, which the lines' six
/// digits can tie.
pub fn choose<'a>(table: &'a SelectionTable, c: &Conditions) -> Result<Choice<'a>> {
    let (planned, lookup) = table.select(c.uplink_mbps, c.network.as_deref())?;
    let rtt_ms = match c.rtt_ms {
        Some(r) if !(r.is_finite() && r >= 0.0) => {
            bail!("{} must be 0 ms or more, got {r}", Setting::RoundTrip)
        }
        Some(r) => r,
        None => lookup.rtt_ms,
    };
    let server_load = match c.server_load {
        Some(k) if !(k.is_finite() && k > 0.0) => {
            bail!("{} must be a positive factor, got {k}", Setting::ServerLoad)
        }
        Some(k) => k,
        None => table.cloud_load,
    };
    let mbps = c.uplink_mbps.clamp(lookup.from_mbps, lookup.to_mbps);
    let (rtt_shift, load_ratio) = (rtt_ms - lookup.rtt_ms, server_load / table.cloud_load);
    let other_heads = if c.other_heads > 0.0 {
        c.other_heads
    } else {
        1.0
    };
    let head_factor = |cut: &CutEntry| c.head_factor.get(&cut.id).copied().unwrap_or(other_heads);
    // The tail's own factor moves latency only: the server's time is not the phone's energy.
    let server_factor = |cut: &CutEntry| match table.objective {
        Objective::Latency => c.server_factor.get(&cut.id).copied().unwrap_or(1.0),
        Objective::Energy => 1.0,
    };
    let predicted = |cut: &CutEntry| {
        let line = lookup.line(cut).at_mbps(mbps);
        let head = head_factor(cut) - 1.0;
        let server = load_ratio * server_factor(cut) - 1.0;
        match (table.objective, cut.tail.is_some()) {
            (Objective::Latency, true) => {
                line + head * cut.mobile_ms + rtt_shift + cut.cloud_ms * server
            }
            (Objective::Latency, false) => line + head * cut.mobile_ms,
            (Objective::Energy, _) => line + head * cut.mobile_compute_mj,
        }
    };
    // Neither the round trip nor the server's load changes the phone's energy.
    let moved = match table.objective {
        Objective::Latency => rtt_shift != 0.0 || load_ratio != 1.0,
        Objective::Energy => false,
    };
    let as_planned = !moved
        && table
            .cuts
            .iter()
            .all(|cut| head_factor(cut) == 1.0 && server_factor(cut) == 1.0);
    let cut = if as_planned {
        planned
    } else {
        table
            .cuts
            .iter()
            .min_by(|a, b| predicted(a).total_cmp(&predicted(b)))
            .unwrap_or(planned)
    };
    Ok(Choice {
        cut,
        predicted: round6(predicted(cut)),
        predictions: table
            .cuts
            .iter()
            .map(|c| (c.id.clone(), round6(predicted(c))))
            .collect(),
        network: lookup.network.clone(),
        in_planned_range: (lookup.from_mbps..=lookup.to_mbps).contains(&c.uplink_mbps),
        rtt_ms,
        server_load,
    })
}

/// `nsplit select`'s answer for the table in `dir` under `c`: the pair's files (paths in
/// `dir`) and its prediction; the round trip and the load where `c` sets them.
pub fn answer(dir: &Path, table: &SelectionTable, c: &Conditions) -> Result<Selected> {
    let choice = choose(table, c)?;
    let file = |f: &Option<String>| f.as_ref().map(|f| dir.join(f).display().to_string());
    Ok(Selected {
        bandwidth_mbps: c.uplink_mbps,
        cut: choice.cut.id.clone(),
        head: file(&choice.cut.head),
        in_planned_range: choice.in_planned_range,
        network: choice.network,
        objective: table.objective,
        predicted: choice.predicted,
        rtt_ms: c.rtt_ms.map(|_| choice.rtt_ms),
        server_load: c.server_load.map(|_| choice.server_load),
        tail: file(&choice.cut.tail),
    })
}
