//! The selection table: which head/tail pair to use at which uplink bandwidth.
//!
//! `selection.json` is for programs (the app's lookup, `nsplit select`); its schema is
//! `nsplit.selection` version 1, documented in docs/selection.md. `selection.md` says the same
//! for people. Figures are rounded to 6 significant digits: predictions are not more precise
//! than that, and rounded figures compare equal across machines.

use super::{BandwidthBucket, Linear, Method, Objective, Plan, Prediction};
use crate::analysis::Analysis;
use crate::cost::Profiles;
use crate::tensor::TensorSummary;
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
    super::TIE_FLOOR
}

/// How many times faster `chosen` is than `base`; 1 where both take no time (a model of
/// constants only), which would otherwise be 0/0.
fn speedup(base: f64, chosen: f64) -> f64 {
    if base == 0.0 && chosen == 0.0 {
        return 1.0;
    }
    round6(base / chosen)
}

/// Round to 6 significant digits.
pub fn round6(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    format!("{v:.5e}").parse().unwrap_or(v)
}

/// `nsplit select`'s answer: the pair to use at a measured uplink bandwidth. Fields in
/// alphabetical order, as the JSON has always listed them.
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
    /// The objective predicted at the bandwidth (clamped to the planned range).
    pub predicted: f64,
    pub tail: Option<String>,
}

/// What the emitter wrote for a cut: file names and the verification outcome.
pub struct CutFiles {
    pub head: Option<String>,
    pub tail: Option<String>,
    pub verification: Verification,
}

/// Everything the table says about a planned model.
pub struct TableInputs<'a> {
    pub analysis: &'a Analysis,
    pub profiles: &'a Profiles,
    pub plan: &'a Plan,
    pub objective: Objective,
    pub cloud_load: f64,
    pub sweep: &'a super::Sweep,
    pub source_sha256: String,
    /// Per cut of the plan, in order.
    pub files: Vec<CutFiles>,
}

impl SelectionTable {
    pub fn build(t: TableInputs) -> SelectionTable {
        let (a, plan) = (t.analysis, t.plan);
        let graph = &a.graph;
        let ids: Vec<String> = plan.cuts.iter().map(|c| c.id(graph)).collect();
        let cuts = plan
            .cuts
            .iter()
            .zip(&plan.sweep_lines)
            .zip(t.files)
            .zip(&ids)
            .map(|(((cut, line), files), id)| {
                let boundary: Vec<BoundaryTensor> = cut
                    .boundary(graph)
                    .into_iter()
                    .map(|b| boundary_tensor(&graph.tensor(b).name, a.shapes.get(b)))
                    .collect();
                let work = super::predict::side_work(graph, &plan.costs, cut, t.cloud_load);
                CutEntry {
                    id: id.clone(),
                    head: files.head,
                    tail: files.tail,
                    head_nodes: work.head_nodes,
                    tail_nodes: work.tail_nodes,
                    upload_bytes: boundary.iter().filter_map(|b| b.bytes).sum(),
                    boundary,
                    mobile_ms: round6(work.mobile_ms),
                    cloud_ms: round6(work.cloud_ms),
                    mobile_compute_mj: round6(work.mobile_mj),
                    objective_at_bandwidth: cost_line(*line),
                    verification: files.verification,
                    triton_model: None,
                }
            })
            .collect();
        let buckets = plan
            .buckets
            .iter()
            .map(|b| {
                let p = &b.predicted;
                BucketEntry {
                    network: b.bucket.clone(),
                    cut: ids[b.cut].clone(),
                    predicted: p.rounded(),
                    all_cloud: b.all_cloud.as_ref().map(Prediction::rounded),
                    all_mobile: b.all_mobile.rounded(),
                    speedup_vs_all_cloud: b
                        .all_cloud
                        .as_ref()
                        .map(|c| speedup(c.total_ms, p.total_ms)),
                    speedup_vs_all_mobile: speedup(b.all_mobile.total_ms, p.total_ms),
                    energy_saving_vs_all_cloud: b
                        .all_cloud
                        .as_ref()
                        .filter(|c| c.mobile_mj > 0.0)
                        .map(|c| round6(1.0 - p.mobile_mj / c.mobile_mj)),
                    margin: b.margin.as_ref().map(|m| BucketMargin {
                        runner_up: ids[m.runner_up].clone(),
                        relative: round6(m.relative),
                        near_tie: m.relative < plan.tie_within,
                    }),
                }
            })
            .collect();
        let mut notes = vec![];
        if !plan.unknown_size.is_empty() {
            notes.push(format!(
                "no cut sends these tensors, whose size is unknown (fix input shapes with --input-shape to allow it): {}",
                plan.unknown_size.join(", ")
            ));
        }
        if !plan.unpredicted.is_empty() {
            notes.push(format!(
                "no latency prediction (unknown shapes), counted as 0 ms: {}",
                plan.unpredicted.join(", ")
            ));
        }
        let sweep_network = BandwidthBucket {
            name: format!("{} (downlink = uplink)", t.sweep.like.name),
            uplink_mbps: t.sweep.from_mbps,
            downlink_mbps: t.sweep.from_mbps,
            ..t.sweep.like.clone()
        };
        SelectionTable {
            format: FORMAT.into(),
            version: VERSION,
            model: SourceModel {
                path: a.model.path.display().to_string(),
                sha256: t.source_sha256,
                outputs: a
                    .graph
                    .outputs
                    .iter()
                    .map(|&o| a.graph.tensor(o).name.clone())
                    .collect(),
                inputs: a
                    .graph
                    .inputs
                    .iter()
                    .map(|&t| boundary_tensor(&a.graph.tensor(t).name, a.shapes.get(t)))
                    .collect(),
            },
            objective: t.objective,
            cloud_load: t.cloud_load,
            method: plan.method,
            tie_within: round6(plan.tie_within),
            profiles: ProfilesUsed {
                mobile: t.profiles.mobile.name.clone(),
                mobile_provenance: t.profiles.mobile.provenance.kind.name().into(),
                cloud: t.profiles.cloud.name.clone(),
                cloud_provenance: t.profiles.cloud.provenance.kind.name().into(),
            },
            cuts,
            buckets,
            breakpoints: Breakpoints {
                from_mbps: t.sweep.from_mbps,
                to_mbps: t.sweep.to_mbps,
                network: sweep_network,
                pieces: pieces(&plan.breakpoints, &ids),
            },
            networks: plan
                .networks
                .iter()
                .map(|n| NetworkTable {
                    network: n.network.clone(),
                    buckets: n.buckets.clone(),
                    from_mbps: round6(n.from_mbps),
                    to_mbps: round6(n.to_mbps),
                    pieces: pieces(&n.pieces, &ids),
                    objective_at_bandwidth: ids
                        .iter()
                        .zip(&n.lines)
                        .map(|(id, line)| (id.clone(), cost_line(*line)))
                        .collect(),
                })
                .collect(),
            notes,
        }
    }

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

    /// The answer of `nsplit select` for the table in `dir` at `mbps`, on `network` (a
    /// bucket's name) or, without one, on the breakpoint sweep's network.
    pub fn answer(&self, dir: &Path, mbps: f64, network: Option<&str>) -> Result<Selected> {
        let (cut, lookup) = self.select(mbps, network)?;
        let file = |f: &Option<String>| f.as_ref().map(|f| dir.join(f).display().to_string());
        Ok(Selected {
            bandwidth_mbps: mbps,
            cut: cut.id.clone(),
            head: file(&cut.head),
            in_planned_range: (lookup.from_mbps..=lookup.to_mbps).contains(&mbps),
            network: lookup.network.clone(),
            objective: self.objective,
            predicted: round6(
                lookup
                    .line(cut)
                    .at_mbps(mbps.clamp(lookup.from_mbps, lookup.to_mbps)),
            ),
            tail: file(&cut.tail),
        })
    }

    /// The cut for an uplink of `mbps` on `network` (a bucket's name; the breakpoint sweep's
    /// network without one), from that network's breakpoints (clamped to their range).
    pub fn select(&self, mbps: f64, network: Option<&str>) -> Result<(&CutEntry, Lookup<'_>)> {
        if !(mbps.is_finite() && mbps > 0.0) {
            bail!("--bandwidth must be a positive number of Mbps, got {mbps}");
        }
        let lookup = self.lookup(network)?;
        let piece = lookup
            .pieces
            .get(super::piece_at(
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
                bail!("selection.json has no per-network breakpoints (written by an older nsplit): run the main job again, or leave out --network");
            }
            bail!(
                "selection.json has no network `{name}`; its networks are: {}",
                names.join(", ")
            );
        };
        Ok(Lookup {
            network: name.to_string(),
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

/// A plan's breakpoints as the table writes them, cuts by id.
fn pieces(breakpoints: &[super::Breakpoint], ids: &[String]) -> Vec<Piece> {
    breakpoints
        .iter()
        .map(|p| Piece {
            from_mbps: round6(p.from_mbps),
            to_mbps: round6(p.to_mbps),
            cut: ids[p.cut].clone(),
        })
        .collect()
}

/// A tensor as the table lists it.
fn boundary_tensor(name: &str, info: &crate::tensor::TensorInfo) -> BoundaryTensor {
    let s = TensorSummary::of(name, info);
    BoundaryTensor {
        name: s.name,
        dtype: s.dtype.map(String::from),
        shape: s.shape,
        bytes: s.bytes,
    }
}

/// A plan's cost line as the table writes it.
pub fn cost_line(line: Linear) -> CostLine {
    CostLine {
        constant: round6(line.a),
        per_inverse_mbps: round6(line.b),
    }
}
