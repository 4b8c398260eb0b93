//! The run-time lookup: the pair to use at a measured uplink, on a bucket's network or the
//! sweep's, by the planner's own rule ([`crate::plan::piece_at`]) on the table's rounded ends.

use super::*;
use crate::setting::Setting;

/// `nsplit select`'s answer ([`crate::client::answer`] makes it): the pair to use at a measured
/// uplink bandwidth. Fields in alphabetical order, as the JSON has always listed them.
#[derive(Clone, Debug, Serialize)]
pub struct Selected {
    pub bandwidth_mbps: f64,
    pub cut: String,
    /// Path of the head file in the output folder; null when there is none.
    pub head: Option<String>,
    pub in_planned_range: bool,
    /// The network whose breakpoints answered: `--network`, or the sweep's.
    pub network: String,
    pub objective: Objective,
    /// The objective predicted at the bandwidth (clamped to the planned range), the round trip
    /// and the server load.
    pub predicted: f64,
    /// The round trip asked for (`--rtt`), ms; absent when the network's own answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// The server load asked for (`--server-load`); absent when the table's answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_load: Option<f64>,
    pub tail: Option<String>,
}

impl SelectionTable {
    /// The pair that answers on the phone alone when the server is unavailable: the table's
    /// `fallback` (all-mobile), or all-mobile where a bucket chose it in a table written before
    /// the fallback was; an error that says why there is none.
    pub fn fallback_cut(&self) -> Result<&CutEntry> {
        let id = self.fallback.as_deref().unwrap_or("all-mobile");
        self.cuts
            .iter()
            .find(|c| c.id == id && c.tail.is_none())
            .with_context(|| {
                format!(
                    "this folder has no all-mobile pair to answer with on the phone alone: no bucket chose it and the main job ran with {} (run it without, and the app can answer while the server cannot)",
                    Setting::NoFallback
                )
            })
    }

    /// The cut for an uplink of `mbps` on `network` (a bucket's name; the breakpoint sweep's
    /// network without one), from that network's breakpoints (clamped to their range).
    pub fn select(&self, mbps: f64, network: Option<&str>) -> Result<(&CutEntry, Lookup<'_>)> {
        if !(mbps.is_finite() && mbps > 0.0) {
            bail!(
                "{} must be a positive number of Mbps, got {mbps}",
                Setting::Bandwidth
            );
        }
        let lookup = self.lookup(network)?;
        let piece = lookup
            .pieces
            .get(crate::plan::piece_at(
                lookup.pieces.iter().map(|p| p.to_mbps),
                mbps,
            ))
            .context("selection.json has no breakpoints")?;
        let cut = self
            .cuts
            .iter()
            .find(|c| c.id == piece.cut)
            .with_context(|| {
                format!(
                    "selection.json: breakpoint cut `{}` is not listed",
                    piece.cut
                )
            })?;
        Ok((cut, lookup))
    }

    /// The network a bucket named `name` is on.
    pub fn network(&self, name: &str) -> Option<&NetworkTable> {
        self.networks
            .iter()
            .find(|n| n.buckets.iter().any(|b| b == name))
    }

    /// The breakpoints of `network`, or of the sweep's network.
    fn lookup(&self, network: Option<&str>) -> Result<Lookup<'_>> {
        let Some(name) = network else {
            return Ok(Lookup {
                network: self.breakpoints.network.name.clone(),
                rtt_ms: self.breakpoints.network.rtt_ms,
                from_mbps: self.breakpoints.from_mbps,
                to_mbps: self.breakpoints.to_mbps,
                pieces: &self.breakpoints.pieces,
                lines: None,
            });
        };
        let Some(n) = self.network(name) else {
            let names: Vec<&str> = self
                .networks
                .iter()
                .flat_map(|n| &n.buckets)
                .map(String::as_str)
                .collect();
            if names.is_empty() {
                bail!("selection.json has no per-network breakpoints (written by an older nsplit): run the main job again, or leave out {}", Setting::Network);
            }
            bail!(
                "selection.json has no network `{name}`; its networks are: {}",
                names.join(", ")
            );
        };
        Ok(Lookup {
            network: name.to_string(),
            rtt_ms: n.network.rtt_ms,
            from_mbps: n.from_mbps,
            to_mbps: n.to_mbps,
            pieces: &n.pieces,
            lines: Some(&n.objective_at_bandwidth),
        })
    }
}

/// The breakpoints a lookup reads: one network's, or the sweep's.
pub struct Lookup<'a> {
    /// The network's name.
    pub network: String,
    /// Its round trip, ms: what its lines include.
    pub rtt_ms: f64,
    pub from_mbps: f64,
    pub to_mbps: f64,
    pub pieces: &'a [Piece],
    lines: Option<&'a std::collections::BTreeMap<String, CostLine>>,
}

impl Lookup<'_> {
    /// `cut`'s objective line on this network.
    pub fn line(&self, cut: &CutEntry) -> CostLine {
        self.lines
            .and_then(|l| l.get(&cut.id))
            .copied()
            .unwrap_or(cut.objective_at_bandwidth)
    }
}
