//! The selection table from a plan: every cut's predictions and files, each bucket's choice,
//! the breakpoints of the sweep and of each network.

use super::*;
use crate::analysis::Analysis;
use crate::cost::Profiles;
use crate::plan::{Plan, Sweep};
use crate::setting::Setting;
use crate::tensor::TensorSummary;

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
    pub sweep: &'a Sweep,
    pub source_sha256: String,
    /// Per cut of the plan, in order.
    pub files: Vec<CutFiles>,
}

impl SelectionTable {
    /// The table of a plan: its cuts with their predictions and files, each bucket's choice,
    /// the breakpoints of the sweep and of each network, and notes on what was not known.
    pub fn build(t: TableInputs) -> SelectionTable {
        let (a, plan) = (t.analysis, t.plan);
        let ids: Vec<String> = plan.cuts.iter().map(|c| c.id(&a.graph)).collect();
        let sweep_network = BandwidthBucket {
            name: format!("{} (downlink = uplink)", t.sweep.like.name),
            uplink_mbps: t.sweep.from_mbps,
            downlink_mbps: t.sweep.from_mbps,
            ..t.sweep.like.clone()
        };
        SelectionTable {
            format: FORMAT.into(),
            version: VERSION,
            model: source_model(a, t.source_sha256),
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
            cuts: cut_entries(a, plan, t.files, &ids, t.cloud_load),
            fallback: plan
                .cuts
                .iter()
                .zip(&ids)
                .find(|(c, _)| c.is_all_mobile(&a.graph))
                .map(|(_, id)| id.clone()),
            buckets: bucket_entries(plan, &ids),
            breakpoints: Breakpoints {
                from_mbps: t.sweep.from_mbps,
                to_mbps: t.sweep.to_mbps,
                network: sweep_network,
                pieces: pieces(&plan.breakpoints, &ids),
            },
            networks: network_tables(plan, &ids),
            notes: notes(plan),
        }
    }
}

/// The model the table is for: its file, hash, outputs and inputs.
fn source_model(a: &Analysis, sha256: String) -> SourceModel {
    let graph = &a.graph;
    SourceModel {
        path: a.model.path.display().to_string(),
        sha256,
        outputs: graph
            .outputs
            .iter()
            .map(|&o| graph.tensor(o).name.clone())
            .collect(),
        inputs: graph
            .inputs
            .iter()
            .map(|&t| boundary_tensor(&graph.tensor(t).name, a.shapes.get(t)))
            .collect(),
    }
}

/// Each cut of the plan (ids `ids`) with what it sends, its predictions and its files.
fn cut_entries(
    a: &Analysis,
    plan: &Plan,
    files: Vec<CutFiles>,
    ids: &[String],
    cloud_load: f64,
) -> Vec<CutEntry> {
    let graph = &a.graph;
    plan.cuts
        .iter()
        .zip(&plan.sweep_lines)
        .zip(files)
        .zip(ids)
        .map(|(((cut, line), files), id)| {
            let boundary: Vec<BoundaryTensor> = cut
                .boundary(graph)
                .into_iter()
                .map(|b| boundary_tensor(&graph.tensor(b).name, a.shapes.get(b)))
                .collect();
            let work = crate::plan::predict::side_work(graph, &plan.costs, cut, cloud_load);
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
        .collect()
}

/// Each bucket's choice, its predictions against the baselines and its runner-up.
fn bucket_entries(plan: &Plan, ids: &[String]) -> Vec<BucketEntry> {
    plan.buckets
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
        .collect()
}

/// Each network's breakpoints and every cut's cost line on it.
fn network_tables(plan: &Plan, ids: &[String]) -> Vec<NetworkTable> {
    plan.networks
        .iter()
        .map(|n| NetworkTable {
            network: n.network.clone(),
            buckets: n.buckets.clone(),
            from_mbps: round6(n.from_mbps),
            to_mbps: round6(n.to_mbps),
            pieces: pieces(&n.pieces, ids),
            objective_at_bandwidth: ids
                .iter()
                .zip(&n.lines)
                .map(|(id, line)| (id.clone(), cost_line(*line)))
                .collect(),
        })
        .collect()
}

/// What the plan could not know: tensors no cut may send, nodes without a prediction.
fn notes(plan: &Plan) -> Vec<String> {
    let mut notes = vec![];
    if !plan.unknown_size.is_empty() {
        notes.push(format!(
            "no cut sends these tensors, whose size is unknown (fix input shapes with {} to allow it): {}",
            Setting::InputShape,
            plan.unknown_size.join(", ")
        ));
    }
    if !plan.unpredicted.is_empty() {
        notes.push(format!(
            "no latency prediction (unknown shapes), counted as 0 ms: {}",
            plan.unpredicted.join(", ")
        ));
    }
    notes
}

/// How many times faster `chosen` is than `base`; 1 where both take no time (a model of
/// constants only), which would otherwise be 0/0.
fn speedup(base: f64, chosen: f64) -> f64 {
    if base == 0.0 && chosen == 0.0 {
        return 1.0;
    }
    round6(base / chosen)
}

/// A plan's breakpoints as the table writes them, cuts by id.
fn pieces(breakpoints: &[crate::plan::Breakpoint], ids: &[String]) -> Vec<Piece> {
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
