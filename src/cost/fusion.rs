//! Epilogue fusion: which nodes run inside the kernel of the convolution or matrix product
//! before them, and so take no time of their own.
//!
//! Runtimes fold a BatchNormalization into the weights of the conv before it and apply a bias,
//! a scale, a residual sum or a piecewise-linear activation to the product's tiles while they are
//! still in registers (tract's fused matmul specs, cuDNN/TensorRT epilogues, ONNX Runtime's
//! FusedConv). A profile times each op alone, so without this rule every such node would be
//! charged its standalone time, and a model's total the per-node overhead of ops that never run.
//!
//! A node is an epilogue when all hold:
//! - it is a BatchNormalization, a piecewise-linear activation (Relu, LeakyRelu, Clip), or binary
//!   arithmetic (Add, Sub, Mul, Div, Sum, Max, Min);
//! - its data input (the first input that is not a weight) comes from a group-1 conv or a
//!   matmul, or from another epilogue of one;
//! - that input is read by this node alone and is not a graph output;
//! - its output has that input's shape (nothing broadcasts it larger).

use super::{weight_tensors, OpClass};
use crate::graph::{ModelGraph, Producer};
use crate::shapes::ShapeTable;
use petgraph::graph::NodeIndex;
use std::collections::{HashMap, HashSet};

const EPILOGUE_OPS: &[&str] = &[
    "BatchNormalization",
    "Relu",
    "LeakyRelu",
    "Clip",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Sum",
    "Max",
    "Min",
];

/// The epilogue nodes of a model, given every op node's class.
pub fn epilogues(
    model: &crate::load::Model,
    graph: &ModelGraph,
    shapes: &ShapeTable,
    class: &HashMap<NodeIndex, OpClass>,
) -> HashSet<NodeIndex> {
    let weights = weight_tensors(graph);
    let group = |p: NodeIndex| {
        model.graph().node[graph.op(p).index]
            .attribute
            .iter()
            .find(|a| a.name == "group")
            .map_or(1, |a| a.i)
    };
    let mut fused = HashSet::new();
    for (n, op) in graph.ops() {
        let default_domain = op.domain.is_empty() || op.domain == "ai.onnx";
        if !default_domain || !EPILOGUE_OPS.contains(&op.op_type.as_str()) {
            continue;
        }
        let Some(&data) = op.inputs.iter().flatten().find(|t| !weights[t.0]) else {
            continue;
        };
        let Some(&out) = op.outputs.first().and_then(Option::as_ref) else {
            continue;
        };
        let tensor = graph.tensor(data);
        let Producer::Node(p, _) = tensor.producer else {
            continue;
        };
        let producer_fuses = match class[&p] {
            OpClass::Conv => group(p) == 1,
            OpClass::Matmul => true,
            _ => fused.contains(&p),
        };
        let alone = tensor.consumers.len() == 1 && !tensor.is_output;
        let dims = shapes.get(data).concrete_dims();
        if producer_fuses && alone && dims.is_some() && dims == shapes.get(out).concrete_dims() {
            fused.insert(n);
        }
    }
    fused
}
