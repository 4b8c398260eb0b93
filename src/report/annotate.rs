//! The per-node annotation report of `nsplit annotate`: a JSON document for programs (format
//! `nsplit.annotations`, documented in docs/annotations.md) and a table or CSV for people.

use super::format::{csv_field, human_bytes, human_count, shape_text};
use crate::analysis::Analysis;
use crate::cost::{NodeCosts, Profiles};
use crate::graph::TensorId;
use crate::tensor::TensorSummary;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Version of the JSON document; bumped when a field changes meaning or is removed.
pub const FORMAT_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Annotations {
    pub format: &'static str,
    pub version: u32,
    pub model: ModelSummary,
    /// The device profiles the predictions come from.
    pub profiles: ProfileSummary,
    pub nodes: Vec<NodeRow>,
    pub totals: Totals,
    /// Tensors whose type or shape could not be known, with what is known of them.
    pub unknown_tensors: Vec<TensorSummary>,
    /// Why tract's analysis did not cover everything, when it did not.
    pub tract_problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ModelSummary {
    pub path: String,
    pub ir_version: i64,
    /// Domain (`""` = ai.onnx) to version.
    pub opsets: BTreeMap<String, i64>,
    pub producer: String,
    pub inputs: Vec<TensorSummary>,
    pub outputs: Vec<TensorSummary>,
}

#[derive(Debug, Serialize)]
pub struct ProfileSummary {
    pub mobile: String,
    pub mobile_provenance: &'static str,
    pub cloud: String,
    pub cloud_provenance: &'static str,
}

/// One op node, in topological order.
#[derive(Debug, Serialize)]
pub struct NodeRow {
    /// Position in the topological order.
    pub index: usize,
    pub name: String,
    /// `OpType`, or `domain.OpType` outside the default domain.
    pub op: String,
    pub class: &'static str,
    /// Every tensor read: declared inputs, then tensors captured by subgraph bodies.
    pub inputs: Vec<String>,
    pub outputs: Vec<TensorSummary>,
    pub flops: Option<u64>,
    pub macs: Option<u64>,
    pub bytes_read: Option<u64>,
    pub bytes_written: Option<u64>,
    pub weight_bytes: u64,
    /// The node reads only weights: it is copied to each side that needs it and never placed by
    /// a cut (the planner does not charge it). Absent when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub constant: bool,
    /// Predicted latency on the mobile device (ms); null when the node's work is unknown.
    pub mobile_ms: Option<f64>,
    /// Predicted latency on the server (ms).
    pub cloud_ms: Option<f64>,
    /// Predicted mobile energy (mJ): mobile latency x the profile's active power for the class.
    pub mobile_mj: Option<f64>,
    /// Measured on this machine with tract (`--measure`), ms; absent when not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_ms: Option<f64>,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Totals {
    pub nodes: usize,
    /// Sum over nodes with a known count; see `nodes_without_flops`.
    pub flops: u64,
    pub macs: u64,
    pub nodes_without_flops: usize,
    /// Nodes that only build weights from constants (`constant` rows): the planner folds them,
    /// and the time and energy sums below leave them out, as the main job's all-mobile does.
    pub constant_nodes: usize,
    /// Sums over the charged nodes with a prediction (run one after another, as the paper's
    /// model assumes), plus each profile's per-run overhead.
    pub mobile_ms: f64,
    pub cloud_ms: f64,
    /// Null where no node has an energy prediction: the mobile profile has no power model (a
    /// server's profile given as `--mobile`), or no node a latency.
    pub mobile_mj: Option<f64>,
    /// Whole-model time measured on this machine (`--measure`), ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_ms: Option<f64>,
    /// The runtime that measured it (`--runtime`): `tract` or `onnxruntime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_runtime: Option<&'static str>,
    /// Each weight tensor once, however many nodes read it.
    pub weight_bytes: u64,
    pub tensors: usize,
    pub tensors_shaped: usize,
    /// How many tensors each source typed: declared, initializer, tract, value_info, rule, unknown.
    pub shape_sources: BTreeMap<String, usize>,
}

impl Annotations {
    /// The report of `a` with the predictions of `profiles`.
    pub fn of(a: &Analysis, profiles: &Profiles) -> Annotations {
        Annotations::with_costs(
            a,
            profiles,
            &NodeCosts::predict(&a.graph, &a.features, profiles),
        )
    }

    /// The report of `a` with `costs`, the predictions of `profiles`.
    pub fn with_costs(a: &Analysis, profiles: &Profiles, costs: &NodeCosts) -> Annotations {
        let summary = |t: TensorId| TensorSummary::of(&a.graph.tensor(t).name, a.shapes.get(t));
        let constant = crate::cut::constant_nodes(&a.graph);
        let nodes: Vec<NodeRow> = a
            .graph
            .ops()
            .enumerate()
            .map(|(index, (n, op))| {
                let f = a.features.get(n);
                let predicted = costs.prediction(n);
                NodeRow {
                    index,
                    name: op.label(),
                    op: op.qualified_op(),
                    class: f.class.name(),
                    inputs: op
                        .reads()
                        .iter()
                        .map(|&t| a.graph.tensor(t).name.clone())
                        .collect(),
                    outputs: op.outputs.iter().flatten().map(|&t| summary(t)).collect(),
                    flops: f.flops,
                    macs: f.macs,
                    bytes_read: f.bytes_read,
                    bytes_written: f.bytes_written,
                    weight_bytes: f.weight_bytes,
                    constant: constant[n.index()],
                    mobile_ms: predicted.mobile_ms,
                    cloud_ms: predicted.cloud_ms,
                    mobile_mj: predicted.mobile_mj,
                    measured_ms: None,
                    note: f.note.clone(),
                }
            })
            .collect();
        let weights = a.graph.weight_tensors();
        let mut shape_sources = BTreeMap::new();
        for s in &a.shapes.source {
            let key = serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            *shape_sources.entry(key).or_insert(0) += 1;
        }
        // What the planner charges: constant nodes are folded at load and run on neither side.
        let charged = || nodes.iter().filter(|n| !n.constant);
        let totals = Totals {
            nodes: nodes.len(),
            flops: nodes.iter().filter_map(|n| n.flops).sum(),
            macs: nodes.iter().filter_map(|n| n.macs).sum(),
            nodes_without_flops: nodes.iter().filter(|n| n.flops.is_none()).count(),
            constant_nodes: nodes.iter().filter(|n| n.constant).count(),
            mobile_ms: charged().filter_map(|n| n.mobile_ms).sum::<f64>()
                + profiles.mobile.run_overhead_ms,
            cloud_ms: charged().filter_map(|n| n.cloud_ms).sum::<f64>()
                + profiles.cloud.run_overhead_ms,
            mobile_mj: charged().filter_map(|n| n.mobile_mj).reduce(|a, b| a + b),
            measured_ms: None,
            measured_runtime: None,
            weight_bytes: (0..a.graph.tensors.len())
                .filter(|&k| weights[k])
                .filter_map(|k| a.shapes.get(TensorId(k)).bytes())
                .sum(),
            tensors: a.graph.tensors.len(),
            tensors_shaped: a.shapes.info.iter().filter(|i| i.is_complete()).count(),
            shape_sources,
        };
        let proto = &a.model.proto;
        Annotations {
            format: "nsplit.annotations",
            version: FORMAT_VERSION,
            model: ModelSummary {
                path: a.model.path.display().to_string(),
                ir_version: proto.ir_version,
                opsets: proto
                    .opset_import
                    .iter()
                    .map(|o| (o.domain.clone(), o.version))
                    .collect(),
                producer: format!("{} {}", proto.producer_name, proto.producer_version)
                    .trim()
                    .to_string(),
                inputs: a.graph.inputs.iter().map(|&t| summary(t)).collect(),
                outputs: a.graph.outputs.iter().map(|&t| summary(t)).collect(),
            },
            profiles: ProfileSummary {
                mobile: profiles.mobile.name.clone(),
                mobile_provenance: profiles.mobile.provenance.kind.name(),
                cloud: profiles.cloud.name.clone(),
                cloud_provenance: profiles.cloud.provenance.kind.name(),
            },
            nodes,
            totals,
            unknown_tensors: a.shapes.unknown().map(summary).collect(),
            tract_problem: a.shapes.tract_problem.clone(),
        }
    }

    /// Add the times measured on this machine.
    pub fn with_measurements(
        mut self,
        a: &Analysis,
        m: &crate::profiler::measure::Measured,
        runtime: crate::runtime::Runtime,
    ) -> Annotations {
        for (row, (n, _)) in self.nodes.iter_mut().zip(a.graph.ops()) {
            row.measured_ms = Some(m.per_node_ms.get(&n).copied().unwrap_or(0.0));
        }
        self.totals.measured_ms = Some(m.total_ms);
        self.totals.measured_runtime = Some(runtime.name());
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report is plain data") + "\n"
    }

    /// One row per node output (a node with several outputs spans several rows).
    pub fn to_csv(&self) -> String {
        let mut out =
            String::from("index,name,op,class,output,dtype,shape,output_bytes,flops,macs,bytes_read,bytes_written,weight_bytes,mobile_ms,cloud_ms,mobile_mj\n");
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let optf = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
        for n in &self.nodes {
            let outputs: Vec<Option<&TensorSummary>> = if n.outputs.is_empty() {
                vec![None]
            } else {
                n.outputs.iter().map(Some).collect()
            };
            for o in outputs {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    n.index,
                    csv_field(&n.name),
                    csv_field(&n.op),
                    n.class,
                    csv_field(o.map_or("", |o| o.name.as_str())),
                    o.and_then(|o| o.dtype).unwrap_or(""),
                    o.map(shape_text).unwrap_or_default(),
                    opt(o.and_then(|o| o.bytes)),
                    opt(n.flops),
                    opt(n.macs),
                    opt(n.bytes_read),
                    opt(n.bytes_written),
                    n.weight_bytes,
                    optf(n.mobile_ms),
                    optf(n.cloud_ms),
                    optf(n.mobile_mj)
                );
            }
        }
        out
    }

    /// An aligned table for people, with totals and what could not be shaped.
    pub fn to_table(&self) -> String {
        let headers = [
            "#",
            "node",
            "op",
            "class",
            "output",
            "dtype",
            "shape",
            "out bytes",
            "FLOPs",
            "weights",
            "mobile ms",
            "cloud ms",
        ];
        let ms = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.3}"));
        let mut rows: Vec<[String; 12]> = vec![];
        for n in &self.nodes {
            for (k, o) in n.outputs.iter().enumerate() {
                let first = k == 0;
                let cell = |s: String| if first { s } else { String::new() };
                rows.push([
                    cell(n.index.to_string()),
                    cell(n.name.clone()),
                    cell(n.op.clone()),
                    cell(n.class.to_string()),
                    o.name.clone(),
                    o.dtype.unwrap_or("?").to_string(),
                    shape_text(o),
                    o.bytes.map_or("?".into(), human_bytes),
                    cell(n.flops.map_or("?".into(), human_count)),
                    cell(human_bytes(n.weight_bytes)),
                    cell(if n.constant {
                        "const".into()
                    } else {
                        ms(n.mobile_ms)
                    }),
                    cell(if n.constant {
                        "const".into()
                    } else {
                        ms(n.cloud_ms)
                    }),
                ]);
            }
        }
        let mut widths = headers.map(str::len);
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            let text: Vec<String> = cells
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", text.join("  ").trim_end());
        };
        line(&mut out, &headers.map(String::from));
        for r in &rows {
            line(&mut out, r);
        }
        self.totals_text(&mut out);
        out
    }

    /// The table's closing lines: totals, what is left out, the predictions, what is unknown.
    fn totals_text(&self, out: &mut String) {
        let t = &self.totals;
        let _ = writeln!(
            out,
            "\n{} nodes, {} FLOPs ({} MACs), weights {}; {} of {} tensors fully shaped",
            t.nodes,
            human_count(t.flops),
            human_count(t.macs),
            human_bytes(t.weight_bytes),
            t.tensors_shaped,
            t.tensors
        );
        if t.constant_nodes > 0 {
            let _ = writeln!(
                out,
                "{} nodes only build weights from constants (`const`): folded at load, charged to neither side and left out of the totals",
                t.constant_nodes
            );
        }
        if let Some(measured) = t.measured_ms {
            let _ = writeln!(out, "measured here with {}: {measured:.3} ms per run (per node: --format json, field measured_ms)", t.measured_runtime.unwrap_or("tract"));
        }
        let _ = writeln!(
            out,
            "predicted: {:.3} ms{} on {} ({}), {:.3} ms on {} ({})",
            t.mobile_ms,
            t.mobile_mj
                .map_or(" (no energy predicted)".to_string(), |mj| format!(
                    " and {mj:.3} mJ"
                )),
            self.profiles.mobile,
            self.profiles.mobile_provenance,
            t.cloud_ms,
            self.profiles.cloud,
            self.profiles.cloud_provenance
        );
        if t.nodes_without_flops > 0 {
            let _ = writeln!(
                out,
                "{} nodes have no FLOP count (unknown shapes or data-dependent work)",
                t.nodes_without_flops
            );
        }
        if !self.unknown_tensors.is_empty() {
            let names: Vec<String> = self
                .unknown_tensors
                .iter()
                .take(10)
                .map(|u| format!("{} ({})", u.name, shape_text(u)))
                .collect();
            let more = self.unknown_tensors.len().saturating_sub(10);
            let _ = writeln!(
                out,
                "unknown size: {}{}",
                names.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
    }
}
