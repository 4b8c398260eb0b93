//! What one side of a cut contains: its nodes, inputs, outputs and initializers.
//!
//! Like onnx's `Extractor`, each step is a small function; unlike it, a side's reads include the
//! tensors its subgraph bodies capture, so an `If` whose branches read outer-scope tensors keeps
//! them, and weights computed by constant-only nodes go with every side that reads them.

use crate::cut::{Cut, Side};
use crate::graph::{ModelGraph, Producer, TensorId};
use petgraph::graph::NodeIndex;
use std::collections::HashSet;

/// The contents of one half, as positions and ids into the source model and graph.
#[derive(Clone, Debug)]
pub struct SideSpec {
    pub side: Side,
    /// Op nodes in topological order (the side's own nodes and the constant-only nodes it needs).
    pub nodes: Vec<NodeIndex>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    /// Initializers the side reads, in the source's order.
    pub initializers: Vec<TensorId>,
}

impl SideSpec {
    /// The spec of `side` for `cut`. `boundary` is `cut.boundary(graph)`.
    pub fn of(graph: &ModelGraph, cut: &Cut, side: Side, boundary: &[TensorId]) -> SideSpec {
        let own: Vec<NodeIndex> = graph
            .order
            .iter()
            .copied()
            .filter(|&n| !cut.is_constant(n) && cut.side(n) == side)
            .collect();
        let owned_outputs = owned_outputs(graph, cut, side);
        let nodes = with_needed_constants(graph, &own, &owned_outputs, cut);
        let reads = reads_of(graph, &nodes);
        let inputs = match side {
            Side::Head => graph
                .inputs
                .iter()
                .copied()
                .filter(|t| reads.contains(t) || owned_outputs.contains(t))
                .collect(),
            Side::Tail => {
                let mut inputs = boundary.to_vec();
                // A graph input that is also a graph output passes through the side owning it.
                inputs.extend(
                    graph
                        .inputs
                        .iter()
                        .filter(|t| owned_outputs.contains(t) && !boundary.contains(t)),
                );
                inputs
            }
        };
        let outputs = match side {
            Side::Head => {
                let mut out: Vec<TensorId> = boundary
                    .iter()
                    .copied()
                    .filter(|&t| produced_by(graph, t, &nodes))
                    .collect();
                for t in owned_outputs {
                    if !out.contains(&t) {
                        out.push(t);
                    }
                }
                out
            }
            Side::Tail => owned_outputs,
        };
        let initializers = graph
            .initializers
            .iter()
            .copied()
            .filter(|t| reads.contains(t) || outputs.contains(t))
            .collect();
        SideSpec {
            side,
            nodes,
            inputs,
            outputs,
            initializers,
        }
    }

    /// A side with no op node to run.
    pub fn is_empty(&self, cut: &Cut) -> bool {
        self.nodes.iter().all(|&n| cut.is_constant(n))
    }
}

/// The side's nodes plus, transitively, the constant-only nodes whose outputs they read or that
/// compute a graph output the side gives (a model whose output is a `Constant`'s).
fn with_needed_constants(
    graph: &ModelGraph,
    own: &[NodeIndex],
    outputs: &[TensorId],
    cut: &Cut,
) -> Vec<NodeIndex> {
    let mut keep: HashSet<NodeIndex> = own.iter().copied().collect();
    let mut stack: Vec<NodeIndex> = own.to_vec();
    for &t in outputs {
        if let Producer::Node(p, _) = graph.tensor(t).producer {
            if cut.is_constant(p) && keep.insert(p) {
                stack.push(p);
            }
        }
    }
    while let Some(n) = stack.pop() {
        for t in graph.op(n).reads() {
            if let Producer::Node(p, _) = graph.tensor(t).producer {
                if cut.is_constant(p) && keep.insert(p) {
                    stack.push(p);
                }
            }
        }
    }
    graph
        .order
        .iter()
        .copied()
        .filter(|n| keep.contains(n))
        .collect()
}

/// Every tensor the nodes read, subgraph captures included.
fn reads_of(graph: &ModelGraph, nodes: &[NodeIndex]) -> HashSet<TensorId> {
    nodes.iter().flat_map(|&n| graph.op(n).reads()).collect()
}

fn produced_by(graph: &ModelGraph, t: TensorId, nodes: &[NodeIndex]) -> bool {
    matches!(graph.tensor(t).producer, Producer::Node(n, _) if nodes.contains(&n))
}

/// The original outputs a side must give: those its own nodes compute; outputs that no placed
/// node computes (an initializer, a graph input, a constant-only node's result) go to the tail,
/// or to the head when the tail has no work.
fn owned_outputs(graph: &ModelGraph, cut: &Cut, side: Side) -> Vec<TensorId> {
    let unplaced_side = if cut.is_all_mobile(graph) {
        Side::Head
    } else {
        Side::Tail
    };
    graph
        .outputs
        .iter()
        .copied()
        .filter(|&t| match graph.tensor(t).producer {
            Producer::Node(n, _) if !cut.is_constant(n) => cut.side(n) == side,
            _ => unplaced_side == side,
        })
        .collect()
}
