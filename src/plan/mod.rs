//! Stage 5, **plan**: the best cut for each network condition, and the exact bandwidths where the
//! best cut changes.
//!
//! - [`network`]: [`BandwidthBucket`]s (3G, LTE, Wi-Fi by default) and the radio power model;
//! - [`predict`]: per-node costs from the device profiles, and a cut's predicted latency and
//!   energy on a network ([`Prediction`]);
//! - [`instance`]: the placement problem as costs linear in x = 1/uplink ([`Instance`]);
//! - [`chain`]: the paper's O(N) scan over prefixes, for chains;
//! - [`mincut`]: a minimum s-t cut for any DAG, each crossing tensor paid once;
//! - [`breakpoints`]: the lower envelope of the cuts' cost lines (Eisner–Severance).
//!
//! [`plan`] runs them: one choice per bucket, and the breakpoints over a bandwidth range.

pub mod breakpoints;
pub mod chain;
pub mod instance;
pub mod mincut;
pub mod network;
pub mod predict;

pub use instance::{Instance, Linear, Link, Objective};
pub use network::BandwidthBucket;
pub use predict::Prediction;

use crate::analysis::Analysis;
use crate::cost::{NodeCosts, Profiles};
use crate::cut::Cut;
use crate::setting::Setting;
use anyhow::{bail, Result};
use breakpoints::{lower_envelope, Line};
use serde::{Deserialize, Serialize};

/// The main job's [`PlanOptions::server_spread`]: the server 3x faster or slower than profiled,
/// as far off as a profile taken on another machine or a server under load is.
pub const DEFAULT_SERVER_SPREAD: f64 = 3.0;

/// What to plan for.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub objective: Objective,
    /// Server latency is multiplied by this (a loaded server is slower).
    pub cloud_load: f64,
    pub buckets: Vec<BandwidthBucket>,
    pub sweep: Sweep,
    /// Carry the all-mobile cut even where no bucket chooses it: the pair an app answers with
    /// when the server is unavailable (the main job's default; `--no-fallback` turns it off).
    pub fallback: bool,
    /// Also carry the cuts chosen on each network were the server this many times faster or
    /// slower than `cloud_load` says (latency only; 1: none): the pairs a runtime that
    /// measures the server chooses among when the profile or the load is off.
    pub server_spread: f64,
}

/// The bandwidth range over which breakpoints are computed, and the network the range is of:
/// its round trip and radio, with downlink equal to uplink.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub from_mbps: f64,
    pub to_mbps: f64,
    pub like: BandwidthBucket,
}

impl Sweep {
    /// `FROM..TO` (Mbps), on the network `like`.
    pub fn parse(text: &str, like: BandwidthBucket) -> Result<Sweep> {
        let Some((from_mbps, to_mbps)) = text
            .split_once("..")
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
        else {
            bail!("expected FROM..TO in Mbps, e.g. 0.1..1000");
        };
        Ok(Sweep {
            from_mbps,
            to_mbps,
            like,
        })
    }
}

/// How the cuts were chosen.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The model is a chain: the paper's scan over prefixes.
    ChainScan,
    /// Any DAG: minimum s-t cut.
    MinCut,
}

/// The choice for one bucket.
#[derive(Clone, Debug)]
pub struct BucketChoice {
    pub bucket: BandwidthBucket,
    /// Index into [`Plan::cuts`].
    pub cut: usize,
    pub predicted: Prediction,
    /// `None` when the graph inputs' size is unknown.
    pub all_cloud: Option<Prediction>,
    pub all_mobile: Prediction,
    /// How much better the choice is predicted to be than the plan's next-best cut on this
    /// network; `None` with a single cut, or when the choice costs nothing.
    pub margin: Option<Margin>,
}

/// The next-best of the plan's other cuts on one network, and how far behind it is predicted.
#[derive(Clone, Debug, PartialEq)]
pub struct Margin {
    /// Index into [`Plan::cuts`].
    pub runner_up: usize,
    /// The runner-up's objective over the choice's, less 1 (0.05: predicted 5% worse).
    pub relative: f64,
}

/// Predictions closer than this are a tie whatever a profile's repeatability: whole-model
/// predictions are held to 10% of measured runs (docs/accuracy.md), so two cuts predicted
/// nearer than that may measure in either order.
pub const TIE_FLOOR: f64 = 0.10;

/// One piece of the breakpoint table: `cut` is best for uplinks in [from_mbps, to_mbps].
#[derive(Clone, Debug, PartialEq)]
pub struct Breakpoint {
    pub from_mbps: f64,
    pub to_mbps: f64,
    pub cut: usize,
}

/// Where the best cut changes on one network as its uplink varies (its RTT, radio and
/// downlink/uplink ratio held).
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkBreakpoints {
    /// The first bucket on this network.
    pub network: BandwidthBucket,
    /// The names of the buckets on it (they differ in uplink only).
    pub buckets: Vec<String>,
    pub from_mbps: f64,
    pub to_mbps: f64,
    /// In order of increasing bandwidth; they tile [from_mbps, to_mbps].
    pub pieces: Vec<Breakpoint>,
    /// Each of the plan's cuts' objective on this network, as a line in x = 1/uplink Mbps.
    pub lines: Vec<Linear>,
}

/// The piece a lookup at `mbps` returns, given the pieces' upper ends in increasing order: the
/// first that reaches `mbps`, the last above the range (and the first below it). The plan's
/// bucket choices, `nsplit select` and `nsplit run` all use this one rule.
pub fn piece_at(to_mbps: impl IntoIterator<Item = f64>, mbps: f64) -> usize {
    let mut last = 0;
    for (i, to) in to_mbps.into_iter().enumerate() {
        if mbps <= to {
            return i;
        }
        last = i;
    }
    last
}

/// The planner's answer.
pub struct Plan {
    pub method: Method,
    /// Every distinct chosen cut, those chosen with the server faster or slower
    /// ([`PlanOptions::server_spread`]), and all-mobile where [`PlanOptions::fallback`] asks
    /// for it; fewest head nodes first.
    pub cuts: Vec<Cut>,
    /// Each cut's objective on the sweep network, as a line in x = 1/uplink Mbps.
    pub sweep_lines: Vec<Linear>,
    pub buckets: Vec<BucketChoice>,
    /// On the sweep network, in order of increasing bandwidth.
    pub breakpoints: Vec<Breakpoint>,
    /// Each network of the buckets swept, in the order of their first buckets (buckets that
    /// differ only in uplink share one).
    pub networks: Vec<NetworkBreakpoints>,
    /// Tensors of unknown size: no cut sends them.
    pub unknown_size: Vec<String>,
    /// Nodes without a prediction (counted as free).
    pub unpredicted: Vec<String>,
    pub costs: NodeCosts,
    /// Margins below this are near ties: the larger of the profiles' own run-to-run spread
    /// (those the objective reads) and [`TIE_FLOOR`].
    pub tie_within: f64,
}

/// The best heads of an instance over a range of x = 1/uplink: its lower envelope.
pub struct Envelope {
    /// In order of increasing x; each `id` indexes `heads`.
    pub pieces: Vec<breakpoints::Piece<usize>>,
    /// The distinct best heads, in the order found.
    pub heads: Vec<Vec<bool>>,
}

/// The lower envelope of `inst`'s best heads (by `method`) over x in [from_x, to_x].
pub fn envelope(inst: &Instance, method: Method, from_x: f64, to_x: f64) -> Envelope {
    let mut heads: Vec<Vec<bool>> = vec![];
    let pieces = lower_envelope(from_x, to_x, &mut |x| {
        let head = best_head(inst, method, x);
        let line = inst.cost(&head).expect("the best head is feasible");
        Line {
            id: intern(&mut heads, head),
            a: line.a,
            b: line.b,
        }
    });
    Envelope { pieces, heads }
}

/// The index of `head` in `heads`, added at the end when new.
fn intern(heads: &mut Vec<Vec<bool>>, head: Vec<bool>) -> usize {
    match heads.iter().position(|h| *h == head) {
        Some(i) => i,
        None => {
            heads.push(head);
            heads.len() - 1
        }
    }
}

/// The best head set of `inst` at `x`.
pub fn best_head(inst: &Instance, method: Method, x: f64) -> Vec<bool> {
    match method {
        Method::ChainScan => {
            let (k, _) = chain::best_prefix(inst, x);
            (0..inst.len()).map(|i| i < k).collect()
        }
        Method::MinCut => mincut::solve(inst, x).0,
    }
}

/// Choose a cut per bucket and compute the breakpoints.
pub fn plan(a: &Analysis, profiles: &Profiles, opts: &PlanOptions) -> Result<Plan> {
    check_options(profiles, opts)?;
    let (lo, hi) = (opts.sweep.from_mbps, opts.sweep.to_mbps);
    let costs = NodeCosts::predict(&a.graph, &a.features, profiles);
    let build_at = |link: &Link, cloud_load: f64| {
        Instance::build(
            &a.graph,
            &a.shapes,
            &costs,
            opts.objective,
            cloud_load,
            link,
        )
    };
    let build = |link: &Link| build_at(link, opts.cloud_load);
    // Breakpoints over the sweep network.
    let (sweep, items) = build(&Link::sweep(&opts.sweep.like));
    let method = if chain::is_chain(&sweep) {
        Method::ChainScan
    } else {
        Method::MinCut
    };
    let mut heads: Vec<Vec<bool>> = vec![];
    let reference = swept(&sweep, method, lo, hi, &mut heads);

    // Each bucket's network swept on its own (RTT, radio, downlink ratio), over the range and
    // its own uplink; the bucket's choice is what that sweep gives at its uplink, so the app's
    // lookup (`nsplit select --network`) returns the cut the plan prints.
    let (mut networks, network_of) = networks_of(&opts.buckets, lo, hi);
    // Each network's instance, kept for its cost lines once the cuts are known.
    let mut instances = vec![];
    for n in &mut networks {
        let inst = build(&Link::along(&n.network)).0;
        n.pieces = swept(&inst, method, n.from_mbps, n.to_mbps, &mut heads);
        instances.push(inst);
    }
    let bucket_heads = bucket_heads(&opts.buckets, &networks, &network_of);

    runtime_heads(
        opts,
        &networks,
        method,
        sweep.len(),
        &mut heads,
        |link, load| build_at(link, load).0,
    );

    // Distinct cuts, fewest head nodes first.
    let mut order: Vec<usize> = (0..heads.len()).collect();
    order.sort_by_key(|&h| (heads[h].iter().filter(|&&b| b).count(), h));
    let mut rank = vec![0; heads.len()];
    let (mut cuts, mut lines) = (vec![], vec![]);
    for (r, &h) in order.iter().enumerate() {
        rank[h] = r;
        cuts.push(items.cut(&a.graph, &heads[h])?);
        lines.push(sweep.cost(&heads[h]).expect("chosen heads are feasible"));
    }

    let predict = |cut: &Cut, bucket: &BandwidthBucket| {
        predict::predict(&a.graph, &a.shapes, &costs, cut, bucket, opts.cloud_load)
    };
    let all_cloud = Cut::all_cloud(&a.graph);
    let all_mobile = Cut::all_mobile(&a.graph);
    let mut buckets = vec![];
    for (bucket, &h) in opts.buckets.iter().zip(&bucket_heads) {
        let cut = rank[h];
        let predicted = predict(&cuts[cut], bucket).expect("a chosen cut sends known sizes");
        let margin = runner_up(&cuts, cut, &predicted, opts.objective, |c| {
            predict(c, bucket)
        });
        buckets.push(BucketChoice {
            bucket: bucket.clone(),
            cut,
            predicted,
            all_cloud: predict(&all_cloud, bucket),
            all_mobile: predict(&all_mobile, bucket).expect("all-mobile sends nothing"),
            margin,
        });
    }
    let ranked = |pieces: Vec<Breakpoint>| -> Vec<Breakpoint> {
        pieces
            .into_iter()
            .map(|p| Breakpoint {
                cut: rank[p.cut],
                ..p
            })
            .collect()
    };
    let mut unknown_size = items.unknown_size;
    unknown_size.sort();
    unknown_size.dedup();
    Ok(Plan {
        method,
        sweep_lines: lines,
        buckets,
        breakpoints: ranked(reference),
        networks: networks
            .into_iter()
            .zip(&instances)
            .map(|(n, inst)| NetworkBreakpoints {
                lines: order
                    .iter()
                    .map(|&h| inst.cost(&heads[h]).expect("chosen heads are feasible"))
                    .collect(),
                pieces: ranked(n.pieces),
                ..n
            })
            .collect(),
        unknown_size,
        unpredicted: costs.unpredicted.clone(),
        cuts,
        costs,
        tie_within: tie_within(profiles, opts.objective),
    })
}

/// Each bucket's head: the piece of its network's envelope at its uplink.
fn bucket_heads(
    buckets: &[BandwidthBucket],
    networks: &[NetworkBreakpoints],
    network_of: &[usize],
) -> Vec<usize> {
    buckets
        .iter()
        .zip(network_of)
        .map(|(bucket, &at)| {
            let pieces = &networks[at].pieces;
            pieces[piece_at(pieces.iter().map(|p| p.to_mbps), bucket.uplink_mbps)].cut
        })
        .collect()
}

/// The heads a runtime may need beside the chosen ones, added to `heads`: those chosen on each
/// network with the server [`PlanOptions::server_spread`] times faster or slower than planned
/// for (a profile that is off, a server under load; latency only: energy is the phone's, which
/// the server's speed does not change), and all-mobile where [`PlanOptions::fallback`] asks.
/// `instance` builds a network's instance at a server load.
fn runtime_heads(
    opts: &PlanOptions,
    networks: &[NetworkBreakpoints],
    method: Method,
    items: usize,
    heads: &mut Vec<Vec<bool>>,
    instance: impl Fn(&Link, f64) -> Instance,
) {
    if opts.objective == Objective::Latency && opts.server_spread > 1.0 {
        for k in [1.0 / opts.server_spread, opts.server_spread] {
            for n in networks {
                let inst = instance(&Link::along(&n.network), opts.cloud_load * k);
                swept(&inst, method, n.from_mbps, n.to_mbps, heads);
            }
        }
    }
    if opts.fallback {
        intern(heads, vec![true; items]);
    }
}

/// The options a plan cannot be made with: a server load that is no positive number, the energy
/// objective without the phone's power, a bandwidth range that is empty.
fn check_options(profiles: &Profiles, opts: &PlanOptions) -> Result<()> {
    if !(opts.server_spread.is_finite() && opts.server_spread >= 1.0) {
        bail!(
            "{} must be a factor of 1 or more, got {}",
            Setting::ServerSpread,
            opts.server_spread
        );
    }
    if !(opts.cloud_load.is_finite() && opts.cloud_load > 0.0) {
        bail!(
            "{} must be a positive number, got {}",
            Setting::CloudLoad,
            opts.cloud_load
        );
    }
    if opts.objective == Objective::Energy && profiles.mobile.power_w.is_empty() {
        bail!(
            "{} needs the phone's power, and the mobile profile `{}` has no power model (`power_w`): use a phone profile (jetson-tk1, jetson-tk1-cpu, x86-2core) or add `power_w` to it (docs/profiles.md)",
            Setting::EnergyObjective,
            profiles.mobile.name
        );
    }
    let (lo, hi) = (opts.sweep.from_mbps, opts.sweep.to_mbps);
    if !(lo > 0.0 && lo < hi && hi.is_finite()) {
        bail!("the bandwidth range must be 0 < FROM < TO, got {lo}..{hi}");
    }
    Ok(())
}

/// The networks of `buckets`, each over [lo, hi] widened to its buckets' uplinks (not yet
/// swept), and each bucket's network. Buckets that differ only in uplink (bare bandwidths, all
/// on the base network's radio) are one network.
fn networks_of(
    buckets: &[BandwidthBucket],
    lo: f64,
    hi: f64,
) -> (Vec<NetworkBreakpoints>, Vec<usize>) {
    let mut networks: Vec<NetworkBreakpoints> = vec![];
    let mut network_of = vec![];
    for bucket in buckets {
        let at = match networks
            .iter()
            .position(|n| same_network(&n.network, bucket))
        {
            Some(i) => i,
            None => {
                networks.push(NetworkBreakpoints {
                    network: bucket.clone(),
                    buckets: vec![],
                    from_mbps: lo,
                    to_mbps: hi,
                    pieces: vec![],
                    lines: vec![],
                });
                networks.len() - 1
            }
        };
        let n = &mut networks[at];
        n.from_mbps = n.from_mbps.min(bucket.uplink_mbps);
        n.to_mbps = n.to_mbps.max(bucket.uplink_mbps);
        if !n.buckets.contains(&bucket.name) {
            n.buckets.push(bucket.name.clone());
        }
        network_of.push(at);
    }
    (networks, network_of)
}

/// The best heads of `inst` over uplinks [lo, hi] Mbps, as pieces in increasing bandwidth whose
/// ends are rounded as the selection table writes them (so a lookup in the table and in the
/// plan agree); `cut` indexes `heads`, which gains the heads not seen before.
fn swept(
    inst: &Instance,
    method: Method,
    lo: f64,
    hi: f64,
    heads: &mut Vec<Vec<bool>>,
) -> Vec<Breakpoint> {
    let Envelope {
        pieces,
        heads: found,
    } = envelope(inst, method, 1.0 / hi, 1.0 / lo);
    let mut out: Vec<Breakpoint> = pieces
        .iter()
        .rev()
        .map(|p| Breakpoint {
            from_mbps: round6(1.0 / p.to),
            to_mbps: round6(1.0 / p.from),
            cut: intern(heads, found[p.id].clone()),
        })
        .collect();
    // The ends are the range itself, not 1/(1/lo).
    if let Some(first) = out.first_mut() {
        first.from_mbps = lo;
    }
    if let Some(last) = out.last_mut() {
        last.to_mbps = hi;
    }
    out
}

/// Two buckets describe the same network, their uplinks aside.
fn same_network(a: &BandwidthBucket, b: &BandwidthBucket) -> bool {
    a.radio == b.radio
        && a.rtt_ms == b.rtt_ms
        && a.protocol == b.protocol
        && a.downlink_mbps / a.uplink_mbps == b.downlink_mbps / b.uplink_mbps
}

/// The best of `cuts` other than `chosen` on one network, by the objective, and how far behind
/// the choice it is.
fn runner_up(
    cuts: &[Cut],
    chosen: usize,
    predicted: &Prediction,
    objective: Objective,
    predict: impl Fn(&Cut) -> Option<Prediction>,
) -> Option<Margin> {
    let best = predicted.objective(objective);
    if best <= 0.0 {
        return None;
    }
    (0..cuts.len())
        .filter(|&k| k != chosen)
        .filter_map(|k| Some((k, predict(&cuts[k])?.objective(objective))))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(runner_up, value)| Margin {
            runner_up,
            relative: value / best - 1.0,
        })
}

/// The margin below which two cuts are a tie: the run-to-run spread of the profiles the
/// objective reads (the phone's for energy, both for latency), never below [`TIE_FLOOR`].
fn tie_within(profiles: &Profiles, objective: Objective) -> f64 {
    let mut spread = profiles.mobile.spread.unwrap_or(0.0);
    if objective == Objective::Latency {
        spread = spread.max(profiles.cloud.spread.unwrap_or(0.0));
    }
    spread.max(TIE_FLOOR)
}

/// Round to 6 significant digits: how the selection table writes every figure (predictions are
/// not more precise than that, and rounded figures compare equal across machines), and so how
/// the plan rounds the breakpoints the table's lookup reads.
pub fn round6(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    format!("{v:.5e}").parse().unwrap_or(v)
}
