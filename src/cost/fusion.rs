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
//! - its data input (an input that is not a weight) comes from a matmul or a group-1 conv,
//!   or from another epilogue of one; but into a conv whose kernel is larger than 1x1 (tract
//!   runs those as a lazy im2col product and the ops after it apart) only what folds into its
//!   weights and bias fuses: a BatchNormalization, or a Mul, Add, Sub or Div by a weight;
//! - that input is read by this node alone and is not a graph output;
//! - its output has that input's shape (nothing broadcasts it larger).
//!
//! An epilogue is free when its other operands are weights. One that reads another activation
//! (a residual sum) runs in the kernel too, so the ops after it can, but it still streams that
//! tensor through the kernel's tiles: it keeps its own prediction.

use super::ops::Variant;
use super::{NodeFeatures, OpClass};
use crate::graph::ModelGraph;
use crate::ops::Attrs;
use crate::shapes::ShapeTable;
use anyhow::Result;
use petgraph::graph::NodeIndex;
use serde::Serialize;
use std::collections::HashMap;

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

/// How an epilogue costs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Epilogue {
    /// Its other operands are weights: no time of its own.
    Free,
    /// It reads another activation (a residual sum): its own prediction.
    ReadsActivation,
}

/// The epilogue nodes of a model, given every op node's features.
pub fn epilogues(
    model: &crate::load::Model,
    graph: &ModelGraph,
    shapes: &ShapeTable,
    features: &HashMap<NodeIndex, NodeFeatures>,
) -> Result<HashMap<NodeIndex, Epilogue>> {
    let weights = graph.weight_tensors();
    let group = |p: NodeIndex| -> Result<u64> {
        let op = graph.op(p);
        match model.graph().node.get(op.index) {
            Some(node) => Attrs::of(node, op.index).positive_int("group", 1),
            None => Ok(1),
        }
    };
    // Each epilogue, and whether the kernel it runs in takes any epilogue (a matmul or a 1x1
    // conv) or only what folds into its weights.
    let mut fused: HashMap<NodeIndex, bool> = HashMap::new();
    let mut kinds = HashMap::new();
    for (n, op) in graph.ops() {
        let default_domain = op.domain.is_empty() || op.domain == "ai.onnx";
        if !default_domain || !EPILOGUE_OPS.contains(&op.op_type.as_str()) {
            continue;
        }
        let Some(&out) = op.outputs.first().and_then(Option::as_ref) else {
            continue;
        };
        // The data is whichever activation input comes from a kernel (a residual sum may list
        // the skip branch first); its other operands are what it reads besides.
        let activations: Vec<_> = op
            .inputs
            .iter()
            .flatten()
            .filter(|t| !weights[t.0])
            .collect();
        for &&data in &activations {
            let tensor = graph.tensor(data);
            let Some(p) = graph.producer_op(data) else {
                continue;
            };
            let Some(f) = features.get(&p) else {
                continue;
            };
            let takes_any = match f.class {
                OpClass::Conv if group(p)? == 1 => Some(f.variant == Some(Variant::Conv1x1)),
                OpClass::Matmul => Some(true),
                _ => fused.get(&p).copied(),
            };
            // Read once (not `x * x`), and every other operand a weight.
            let free = activations.len() == 1;
            // An affine map per channel: x * c, x + c, c + x, x - c, x / c (not c - x, c / x).
            let data_first = op.inputs.first().copied().flatten() == Some(data);
            let folds = op.op_type == "BatchNormalization"
                || free
                    && (matches!(op.op_type.as_str(), "Mul" | "Add")
                        || matches!(op.op_type.as_str(), "Sub" | "Div") && data_first);
            let producer_fuses = match takes_any {
                Some(any) => any || folds,
                None => false,
            };
            let alone = tensor.consumers.len() == 1 && !tensor.is_output;
            let dims = shapes.get(data).concrete_dims();
            if producer_fuses && alone && dims.is_some() && dims == shapes.get(out).concrete_dims()
            {
                fused.insert(n, takes_any == Some(true));
                let kind = if free {
                    Epilogue::Free
                } else {
                    Epilogue::ReadsActivation
                };
                kinds.insert(n, kind);
                break;
            }
        }
    }
    Ok(kinds)
}
