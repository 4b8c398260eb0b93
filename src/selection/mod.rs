//! The selection table, the product's main artifact: which head/tail pair to use at which
//! uplink bandwidth, on which network. The plan feeds it; serve, the reports and the jobs read
//! it.
//!
//! - this file: the on-disk format (`selection.json`, schema `nsplit.selection` version 1,
//!   documented in docs/selection.md), read and written;
//! - [`build`]: the table from a plan, its predictions and the files written for it;
//! - [`lookup`]: the run-time lookup (`nsplit select`, `nsplit run`, an app).
//!
//! Figures are rounded to 6 significant digits ([`round6`]): predictions are not more precise
//! than that, and rounded figures compare equal across machines.

mod build;
mod lookup;

pub use build::{CutFiles, TableInputs};
pub use lookup::{Lookup, Selected};

pub use crate::plan::round6;
use crate::plan::{BandwidthBucket, Linear, Method, Objective, Prediction};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const FORMAT: &str = "nsplit.selection";
pub const VERSION: u32 = 1;

/// The whole table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SelectionTable {
    pub format: String,
    pub version: u32,
    pub model: SourceModel,
    pub objective: Objective,
    /// Server latency multiplier.
    pub cloud_load: f64,
    /// `chain_scan` or `min_cut`.
    pub method: Method,
    /// Cuts predicted closer than this fraction are near ties (a bucket's `margin.near_tie`):
    /// the profiles' own run-to-run spread, at least 0.1 (tables written before it: 0.1).
    #[serde(default = "tie_floor")]
    pub tie_within: f64,
    pub profiles: ProfilesUsed,
    pub cuts: Vec<CutEntry>,
    /// The cut an app answers with when the server is down, refuses or is too slow:
    /// `all-mobile`, written even where no bucket chooses it. Absent when the main job ran
    /// with `--no-fallback` and no bucket chose it (and in tables written before it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    pub buckets: Vec<BucketEntry>,
    pub breakpoints: Breakpoints,
    /// Where the best cut changes on each bucket's network (its RTT, radio and downlink ratio),
    /// by name: what `nsplit select --network NAME` reads, and each bucket's choice.
    #[serde(default)]
    pub networks: Vec<NetworkTable>,
    /// What the planner could not take into account, for people.
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SourceModel {
    pub path: String,
    pub sha256: String,
    /// The original's output names, in order: what head and tail compute between them.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// The original's inputs at the sizes planned at: what the phone's figures are for.
    #[serde(default)]
    pub inputs: Vec<BoundaryTensor>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProfilesUsed {
    pub mobile: String,
    pub mobile_provenance: String,
    pub cloud: String,
    pub cloud_provenance: String,
}

/// One distinct chosen cut and its pair of files.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CutEntry {
    pub id: String,
    /// File name in the output folder; null when everything runs on the server.
    pub head: Option<String>,
    /// Null when everything runs on the phone.
    pub tail: Option<String>,
    pub head_nodes: usize,
    pub tail_nodes: usize,
    /// Tensors sent from phone to server.
    pub boundary: Vec<BoundaryTensor>,
    pub upload_bytes: u64,
    /// Head compute on the phone.
    pub mobile_ms: f64,
    /// Tail compute on the server, times the load factor.
    pub cloud_ms: f64,
    /// Head compute energy on the phone (radio energy depends on the network: see buckets).
    pub mobile_compute_mj: f64,
    /// The objective (ms or mJ) on the breakpoint network at uplink B Mbps:
    /// `constant + per_inverse_mbps / B`.
    pub objective_at_bandwidth: CostLine,
    pub verification: Verification,
    /// The Triton model serving the tail, where a repository was written (`--triton`,
    /// `nsplit package`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub triton_model: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BoundaryTensor {
    pub name: String,
    pub dtype: Option<String>,
    pub shape: Option<Vec<serde_json::Value>>,
    pub bytes: Option<u64>,
}

#[derive(Copy, Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CostLine {
    pub constant: f64,
    pub per_inverse_mbps: f64,
}

impl CostLine {
    pub fn at_mbps(&self, mbps: f64) -> f64 {
        self.constant + self.per_inverse_mbps / mbps
    }
}

/// Whether a pair was checked against the original.
#[derive(Copy, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VerificationStatus {
    /// Head then tail computes what the original computes.
    Passed,
    /// No runtime can run the original: see `reason`.
    Unverified,
    /// Not checked (--no-verify).
    Skipped,
}

impl VerificationStatus {
    pub fn name(self) -> &'static str {
        match self {
            VerificationStatus::Passed => "passed",
            VerificationStatus::Unverified => "unverified",
            VerificationStatus::Skipped => "skipped",
        }
    }
}

/// Whether head then tail was checked against the original.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Verification {
    pub status: VerificationStatus,
    /// The runtime that compared the pair with the original: `onnxruntime` or `tract`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verifier: Option<crate::runtime::Runtime>,
    /// The input sizes compared at: the given ones and, for symbolic dimensions, a second
    /// point (`images=3x3x32x32`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub sizes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Largest absolute difference over the original outputs, when compared.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_abs_diff: Option<f64>,
}

impl Verification {
    pub fn skipped() -> Verification {
        Verification {
            status: VerificationStatus::Skipped,
            verifier: None,
            sizes: vec![],
            reason: None,
            max_abs_diff: None,
        }
    }

    pub fn unverified(reason: String) -> Verification {
        Verification {
            status: VerificationStatus::Unverified,
            reason: Some(reason),
            ..Verification::skipped()
        }
    }
}

/// The choice for one network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BucketEntry {
    pub network: BandwidthBucket,
    /// Id of the chosen cut.
    pub cut: String,
    pub predicted: Prediction,
    /// all-cloud's figures (the paper's status quo); null when the inputs' size is unknown.
    pub all_cloud: Option<Prediction>,
    pub all_mobile: Prediction,
    /// all-cloud total ms / chosen total ms.
    pub speedup_vs_all_cloud: Option<f64>,
    pub speedup_vs_all_mobile: f64,
    /// 1 - chosen mJ / all-cloud mJ.
    pub energy_saving_vs_all_cloud: Option<f64>,
    /// The next-best cut of this table on this network; null with a single cut (and absent in
    /// tables written before it).
    #[serde(default)]
    pub margin: Option<BucketMargin>,
}

/// How close the table's next-best cut comes on one network: an app choosing near a tie can
/// prefer the cut that is cheaper to get wrong.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BucketMargin {
    /// Id of the runner-up cut.
    pub runner_up: String,
    /// Its predicted objective over the choice's, less 1 (0.05: 5% worse).
    pub relative: f64,
    /// `relative` is below the table's `tie_within`: the two may measure in either order.
    pub near_tie: bool,
}

/// Where the best cut changes, as the uplink bandwidth varies over a range.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Breakpoints {
    pub from_mbps: f64,
    pub to_mbps: f64,
    /// The network of the sweep: its RTT and radio; downlink equal to uplink.
    pub network: BandwidthBucket,
    /// In order of increasing bandwidth; they tile [from_mbps, to_mbps].
    pub pieces: Vec<Piece>,
}

/// One network's breakpoints and every cut's cost on it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NetworkTable {
    /// The network of the first bucket on it; its downlink scales with the uplink.
    pub network: BandwidthBucket,
    /// The buckets on this network (differing in uplink only): `--network` takes any of these
    /// names.
    pub buckets: Vec<String>,
    pub from_mbps: f64,
    pub to_mbps: f64,
    /// In order of increasing bandwidth; they tile [from_mbps, to_mbps].
    pub pieces: Vec<Piece>,
    /// Each cut's objective on this network at uplink B Mbps, by cut id.
    pub objective_at_bandwidth: std::collections::BTreeMap<String, CostLine>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Piece {
    pub from_mbps: f64,
    pub to_mbps: f64,
    pub cut: String,
}

fn tie_floor() -> f64 {
    crate::plan::TIE_FLOOR
}

impl SelectionTable {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a selection table serialises") + "\n"
    }

    /// Read `DIR/selection.json`.
    pub fn load(dir: &Path) -> Result<SelectionTable> {
        let path = dir.join("selection.json");
        let shown = path.display();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {shown}: is {} an nsplit output folder?",
                dir.display()
            )
        })?;
        let table: SelectionTable = serde_json::from_str(&text)
            .with_context(|| format!("{shown}: not a selection table"))?;
        if table.format != FORMAT || table.version != VERSION {
            bail!(
                "{shown}: format `{}` version {} is not {FORMAT} version {VERSION}",
                table.format,
                table.version
            );
        }
        Ok(table)
    }

    /// Whether a bucket or a breakpoint chooses cut `id` (the fallback may be written for
    /// the server's absence alone).
    pub fn chooses(&self, id: &str) -> bool {
        self.buckets.iter().any(|b| b.cut == id)
            || self.breakpoints.pieces.iter().any(|p| p.cut == id)
            || self
                .networks
                .iter()
                .any(|n| n.pieces.iter().any(|p| p.cut == id))
    }

    /// The fallback where no bucket or breakpoint chooses it: written for the server's
    /// absence alone.
    pub fn fallback_only(&self) -> Option<&str> {
        self.fallback.as_deref().filter(|id| !self.chooses(id))
    }
}

/// A plan's cost line as the table writes it.
pub fn cost_line(line: Linear) -> CostLine {
    CostLine {
        constant: round6(line.a),
        per_inverse_mbps: round6(line.b),
    }
}
