//! Measured latency on this machine (`nsplit annotate --measure`): run the model with tract and
//! time every node.
//!
//! tract optimises the model before running it; an optimised node keeps its ONNX node's name,
//! or that name plus a `.suffix` for the pieces an op was lowered to, so each piece's time is
//! added to the ONNX node it came from. A matrix product named after an elementwise node is the
//! product of the conv or matmul upstream with that node fused in as its epilogue (tract names
//! the fused node after the last op it absorbed), so its time goes to that conv or matmul. Time
//! of nodes that match none (sources, constants) is reported apart.

use crate::graph::GraphNode;
use crate::runtime::{random_inputs, tract, Optimise};
use crate::Analysis;
use anyhow::Result;
use petgraph::graph::NodeIndex;
use petgraph::Direction;
use std::collections::HashMap;

/// Median timings over several runs, in milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    /// Whole-model wall time of a run.
    pub total_ms: f64,
    /// Per ONNX node: the summed time of the optimised nodes that came from it.
    pub per_node_ms: HashMap<NodeIndex, f64>,
    /// Time of optimised nodes traced to no ONNX node.
    pub unattributed_ms: f64,
    pub runs: usize,
}

impl Measured {
    /// Keep the faster of this and `again` (another timing of the same model), per run and per
    /// node: repeated, the fastest of short medians, which a slowed-down machine cannot bias.
    pub fn keep_faster(&mut self, again: Measured) {
        self.total_ms = self.total_ms.min(again.total_ms);
        for (n, ms) in &mut self.per_node_ms {
            *ms = ms.min(again.per_node_ms.get(n).copied().unwrap_or(*ms));
        }
        self.unattributed_ms = self.unattributed_ms.min(again.unattributed_ms);
    }

    /// Every op node's fusion group, as the node the group was timed under. tract fuses ops and
    /// the fused kernel carries one ONNX node's name, so a node measured at zero was absorbed:
    /// an epilogue by the cost model's fusion rule joins the first timed node up its data inputs
    /// (the conv or matmul it ran in); any other joins the nearest timed node below it (tract
    /// names a fused chain after its last op), or failing that above it; a timed node, or one
    /// with no timed node either way, is its own.
    pub fn fusion_owners(&self, a: &Analysis) -> HashMap<NodeIndex, NodeIndex> {
        let timed = |n: &NodeIndex| self.per_node_ms.get(n).copied().unwrap_or(0.0) > 0.0;
        let weights = crate::cost::weight_tensors(&a.graph);
        // Up the kernel-side inputs, as the fusion rule reads them.
        let up_data = |mut n: NodeIndex| loop {
            let p = kernel_side_input(a, &weights, n).and_then(|t| a.graph.producer_op(t))?;
            if timed(&p) {
                return Some(p);
            }
            n = p;
        };
        a.graph
            .ops()
            .map(|(n, _)| {
                if timed(&n) {
                    return (n, n);
                }
                let owner = if a.features.get(n).fused.is_some() {
                    up_data(n)
                } else {
                    nearest(a, n, Direction::Outgoing, &timed)
                        .or_else(|| nearest(a, n, Direction::Incoming, &timed))
                };
                (n, owner.unwrap_or(n))
            })
            .collect()
    }
}

/// The input of `n` an epilogue would transform: the first activation (non-weight) input read by
/// `n` alone whose producer is a conv, a matmul or an epilogue (a residual sum may list its skip
/// branch first), else the first activation input.
fn kernel_side_input(
    a: &Analysis,
    weights: &[bool],
    n: NodeIndex,
) -> Option<crate::graph::TensorId> {
    use crate::cost::OpClass;
    let from_kernel = |t: &crate::graph::TensorId| {
        a.graph.tensor(*t).consumers.len() == 1
            && a.graph.producer_op(*t).is_some_and(|p| {
                let f = a.features.get(p);
                matches!(f.class, OpClass::Conv | OpClass::Matmul) || f.fused.is_some()
            })
    };
    let activations = || {
        a.graph
            .op(n)
            .inputs
            .iter()
            .flatten()
            .filter(|t| !weights[t.0])
    };
    activations()
        .find(|t| from_kernel(t))
        .or_else(|| activations().next())
        .copied()
}

/// The first op node matching `found` in a breadth-first walk from `n` along `dir`.
fn nearest(
    a: &Analysis,
    n: NodeIndex,
    dir: Direction,
    found: &dyn Fn(&NodeIndex) -> bool,
) -> Option<NodeIndex> {
    let mut queue = std::collections::VecDeque::from([n]);
    let mut seen = std::collections::HashSet::from([n]);
    while let Some(q) = queue.pop_front() {
        for next in a.graph.graph.neighbors_directed(q, dir) {
            if !matches!(a.graph.graph[next], GraphNode::Op(_)) || !seen.insert(next) {
                continue;
            }
            if found(&next) {
                return Some(next);
            }
            queue.push_back(next);
        }
    }
    None
}

/// Run the analysed model `runs` times (after one warm-up) with seeded random inputs, optimised
/// as an app would run it.
pub fn measure(a: &Analysis, runs: usize) -> Result<Measured> {
    let inputs = random_inputs(&a.graph, &a.shapes, None, 0)?;
    let mut model = tract::load(&a.model.path, Optimise::Fully)?;
    let (nodes, totals) = model.time_per_node(&inputs, runs)?;
    let weights = crate::cost::weight_tensors(&a.graph);
    let mut m = Measured {
        total_ms: median(totals),
        runs,
        ..Default::default()
    };
    for (node, owner) in nodes
        .iter()
        .zip(owners(a, nodes.iter().map(|n| n.name.as_str())))
    {
        let ms = median(node.ms.clone());
        // A product kernel named after an elementwise node is the conv or matmul upstream
        // with that node fused in.
        let owner = owner.map(|n| {
            if is_product_kernel(&node.op) {
                epilogue_head(a, &weights, n)
            } else {
                n
            }
        });
        match owner {
            Some(n) => *m.per_node_ms.entry(n).or_default() += ms,
            None => m.unattributed_ms += ms,
        }
    }
    Ok(m)
}

/// For each optimised node name, the ONNX node it came from: the longest ONNX node name equal to
/// it or followed by `.` in it. tract names an unnamed ONNX node after its first output.
fn owners<'a>(a: &Analysis, tract_names: impl Iterator<Item = &'a str>) -> Vec<Option<NodeIndex>> {
    let by_name: HashMap<String, NodeIndex> = a
        .graph
        .ops()
        .map(|(n, op)| {
            let name = if op.name.is_empty() {
                op.outputs
                    .iter()
                    .flatten()
                    .next()
                    .map(|&t| a.graph.tensor(t).name.clone())
                    .unwrap_or_default()
            } else {
                op.name.clone()
            };
            (name, n)
        })
        .collect();
    tract_names
        .map(|name| {
            let mut key = name;
            loop {
                if let Some(&n) = by_name.get(key) {
                    return Some(n);
                }
                key = &key[..key.rfind('.')?];
            }
        })
        .collect()
}

/// tract's kernels for convolutions and matrix products.
fn is_product_kernel(tract_op: &str) -> bool {
    ["MatMul", "Conv", "DepthWise"]
        .iter()
        .any(|k| tract_op.contains(k))
}

/// The conv or matmul whose epilogue `n` can be: up the data (non-weight) inputs through
/// elementwise, activation and norm nodes. `n` itself when there is none.
fn epilogue_head(a: &Analysis, weights: &[bool], n: NodeIndex) -> NodeIndex {
    use crate::cost::OpClass;
    let mut at = n;
    loop {
        match a.features.get(at).class {
            OpClass::Conv | OpClass::Matmul => return at,
            OpClass::Elementwise | OpClass::Activation | OpClass::Norm => {}
            _ => return n,
        }
        match kernel_side_input(a, weights, at).and_then(|t| a.graph.producer_op(t)) {
            Some(p) => at = p,
            None => return n,
        }
    }
}

/// The median of `v` (the upper one of an even count; 0 when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
