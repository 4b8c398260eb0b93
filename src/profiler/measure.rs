//! Measured latency on this machine (`nsplit annotate --measure`): run the model in a runtime
//! (tract or onnxruntime) and time every node.
//!
//! Both runtimes optimise the model before running it. tract's optimised node keeps its ONNX
//! node's name, or that name plus a `.suffix` for the pieces an op was lowered to;
//! onnxruntime's keeps it too, or is named after the output of the last op it absorbed
//! (`<output>_nchwc`, a conv in its blocked layout). Each piece's time is added to the ONNX node
//! it came from. A matrix product named after an elementwise node is the product of the conv or
//! matmul upstream with that node fused in as its epilogue (both name a fused node after the last
//! op it absorbed), so its time goes to that conv or matmul. Time of kernels that match no node
//! (sources, constants, onnxruntime's layout changes) is reported apart.

use crate::analysis::Analysis;
use crate::graph::GraphNode;
use crate::runtime::{random_inputs, Runtime};
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
    /// The typical timing of several timings of the same model, spread over a run: per run and
    /// per node, their [`trimmed_mean`]. The machine's speed changes from one second to the next,
    /// and a long run averages those states where a short one samples one of them, so the
    /// fastest of a few timings favours short runs (the fast state fits in them) and a profile
    /// of one-node models built on it under-predicted whole networks by 20-45%
    /// (docs/accuracy.md). A mean over timings spread in time means the same for both.
    pub fn typical(timings: &[Measured]) -> Measured {
        let of = |f: &dyn Fn(&Measured) -> f64| trimmed_mean(timings.iter().map(f).collect());
        let mut m = Measured {
            total_ms: of(&|m| m.total_ms),
            unattributed_ms: of(&|m| m.unattributed_ms),
            runs: timings.iter().map(|m| m.runs).sum(),
            ..Default::default()
        };
        let nodes: std::collections::BTreeSet<NodeIndex> = timings
            .iter()
            .flat_map(|m| m.per_node_ms.keys().copied())
            .collect();
        for n in nodes {
            let ms = of(&|m| m.per_node_ms.get(&n).copied().unwrap_or(0.0));
            m.per_node_ms.insert(n, ms);
        }
        m
    }

    /// Every time multiplied by `factor`.
    pub fn scaled(&self, factor: f64) -> Measured {
        Measured {
            total_ms: self.total_ms * factor,
            per_node_ms: self
                .per_node_ms
                .iter()
                .map(|(&n, &ms)| (n, ms * factor))
                .collect(),
            unattributed_ms: self.unattributed_ms * factor,
            runs: self.runs,
        }
    }

    /// Every op node's fusion group, as the node the group was timed under. tract fuses ops and
    /// the fused kernel carries one ONNX node's name, so a node measured at zero was absorbed:
    /// an epilogue by the cost model's fusion rule joins the first timed node up its data inputs
    /// (the conv or matmul it ran in); any other joins the nearest timed node below it (tract
    /// names a fused chain after its last op), or failing that above it; a timed node, or one
    /// with no timed node either way, is its own.
    pub fn fusion_owners(&self, a: &Analysis) -> HashMap<NodeIndex, NodeIndex> {
        let timed = |n: &NodeIndex| self.per_node_ms.get(n).copied().unwrap_or(0.0) > 0.0;
        let weights = a.graph.weight_tensors();
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

/// Run the analysed model `runs` times (after one warm-up) in `runtime` with seeded random
/// inputs, optimised as an app would run it.
pub fn measure(a: &Analysis, runtime: Runtime, runs: usize) -> Result<Measured> {
    let inputs = random_inputs(&a.graph, &a.shapes, None, 0)?;
    let mut model = runtime.load(&a.model.path)?;
    let (nodes, totals) = model.time_per_node(&inputs, runs)?;
    let weights = a.graph.weight_tensors();
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

/// For each optimised node name, the ONNX node it came from: the longest ONNX node name, or
/// output tensor name, equal to it or followed by `.` or `/` in it. tract names an unnamed ONNX
/// node after its first output and a lowered op's pieces `<node>.<suffix>`; onnxruntime names
/// what its optimiser made `fused <node>` (an activation fused into a Gemm or conv),
/// `<node>/MatMulAddFusion` and `<output>_nchwc` (a conv or pool in its blocked layout, after the
/// last op it absorbed).
fn owners<'a>(a: &Analysis, names: impl Iterator<Item = &'a str>) -> Vec<Option<NodeIndex>> {
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
    let by_output = |name: &str| {
        let tensor = name.strip_suffix("_nchwc").unwrap_or(name);
        a.graph.producer_op(a.graph.tensor_id(tensor)?)
    };
    names
        .map(|name| {
            let mut key = name.strip_prefix("fused ").unwrap_or(name);
            loop {
                if let Some(n) = by_name.get(key).copied().or_else(|| by_output(key)) {
                    return Some(n);
                }
                key = &key[..key.rfind(['.', '/'])?];
            }
        })
        .collect()
}

/// The runtimes' kernels for convolutions and matrix products (tract's `OptMatMul`, `Conv`,
/// `DepthWise`; onnxruntime's `Conv`, `FusedConv`, `Gemm`, `FusedMatMul`).
fn is_product_kernel(op: &str) -> bool {
    ["MatMul", "Conv", "DepthWise", "Gemm"]
        .iter()
        .any(|k| op.contains(k))
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

/// The mean of `v` without its lowest and highest sixth (0 when empty): the mean speed of a
/// machine whose speed varies, robust to a stray outlier either way (a page fault, a burst).
pub fn trimmed_mean(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let cut = v.len() / 6;
    let kept = &v[cut..v.len() - cut];
    kept.iter().sum::<f64>() / kept.len() as f64
}

/// The median of `(value, weight)` pairs by weight: the lowest value at or below which lies at
/// least half the total weight (so the lower middle one of two equal weights); 0 when empty.
/// A few light outliers, however far out, do not move it.
pub fn weighted_median(mut pairs: Vec<(f64, f64)>) -> f64 {
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half = pairs.iter().map(|p| p.1).sum::<f64>() / 2.0;
    let mut below = 0.0;
    pairs
        .iter()
        .find(|p| {
            below += p.1;
            below >= half
        })
        .or(pairs.last())
        .map_or(0.0, |p| p.0)
}

/// The median of `v` (the upper one of an even count; 0 when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_are_traced_to_their_nodes_in_either_runtime() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let a = Analysis::run(
            &root.join("fixtures/resnet_block.onnx"),
            &crate::shapes::InputShapes::default(),
        )
        .unwrap();
        let node = |name: &str| {
            a.graph
                .ops()
                .find(|(_, op)| op.name == name)
                .map(|(n, _)| n)
        };
        let names = [
            "stem_conv",           // a node's own name
            "block_conv1.pack",    // tract: a piece of a lowered op
            "stem_relu_out_nchwc", // onnxruntime: named after the fused Relu's output
            "block_bn2_out_nchwc", // onnxruntime: a conv with its BatchNormalization fused
            "ReorderInput",        // onnxruntime's layout change: no node's
            "fused fc",            // onnxruntime: an activation fused into the Gemm
            "fc/MatMulAddFusion",  // onnxruntime: a MatMul and its Add as one Gemm
        ];
        assert_eq!(
            owners(&a, names.into_iter()),
            vec![
                node("stem_conv"),
                node("block_conv1"),
                node("stem_relu"),
                node("block_bn2"),
                None,
                node("fc"),
                node("fc"),
            ]
        );
    }

    #[test]
    fn weighted_median_ignores_light_outliers() {
        // Two light groups 25x slower: the ratio of the sums would be 1.076.
        let groups = vec![
            (1.0, 0.3),
            (25.0, 0.001),
            (0.9, 0.2),
            (1.1, 0.25),
            (29.0, 0.001),
        ];
        assert_eq!(weighted_median(groups), 1.0);
        assert_eq!(weighted_median(vec![(2.0, 1.0)]), 2.0);
        assert_eq!(weighted_median(vec![(3.0, 1.0), (1.0, 1.0)]), 1.0);
        assert_eq!(weighted_median(vec![]), 0.0);
    }

    #[test]
    fn trimmed_mean_drops_a_sixth_at_each_end() {
        assert_eq!(trimmed_mean(vec![]), 0.0);
        assert_eq!(trimmed_mean(vec![2.0, 4.0]), 3.0);
        // Six timings: the fastest and the slowest are dropped, the middle four averaged.
        assert_eq!(trimmed_mean(vec![9.0, 1.0, 2.0, 3.0, 4.0, 100.0]), 4.5);
    }

    #[test]
    fn typical_is_per_run_and_per_node() {
        let at = |total: f64, node: f64| Measured {
            total_ms: total,
            per_node_ms: HashMap::from([(NodeIndex::new(0), node)]),
            unattributed_ms: 0.0,
            runs: 3,
        };
        let m = Measured::typical(&[
            at(10.0, 1.0),
            at(12.0, 3.0),
            at(11.0, 2.0),
            at(50.0, 0.1),
            at(13.0, 2.0),
            at(12.0, 2.0),
        ]);
        assert_eq!(m.total_ms, 12.0);
        assert_eq!(m.per_node_ms[&NodeIndex::new(0)], 1.75);
        assert_eq!(m.runs, 18);
    }
}
