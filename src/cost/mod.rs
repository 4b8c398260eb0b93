//! Stage 4, **cost**: per-node features the latency and energy models read.
//!
//! For every op node: its [`OpClass`], FLOPs (a multiply-accumulate counts as 2), bytes read
//! (every distinct input, weights included), bytes written (its outputs) and weight bytes (inputs
//! that are initializers or `Constant` outputs). The FLOP rule of each op family lives in its own
//! file under [`ops`], next to the list of ops it covers. A value that depends on an unknown shape
//! is `None`, never a guess; an op without a rule gets a stated estimate.

pub mod fusion;
pub mod ops;
pub mod predict;
pub mod profile;

pub use predict::{NodeCost, NodeCosts, NodePrediction};
pub use profile::{Profiles, ALL_CLASSES};

use crate::graph::{ModelGraph, OpNode, TensorId};
use crate::ops::Attrs;
use crate::shapes::ShapeTable;
use anyhow::{Context, Result};
use onnx_protobuf::NodeProto;
use petgraph::graph::NodeIndex;
use serde::Serialize;
use std::collections::HashMap;

/// The kind of work a node does; the cost model fits one regression per class.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum OpClass {
    Conv,
    /// Gemm and MatMul.
    Matmul,
    /// Pooling and reductions.
    Pool,
    Elementwise,
    Activation,
    Norm,
    Softmax,
    Recurrent,
    DataMovement,
    ControlFlow,
    Other,
}

impl OpClass {
    pub fn name(self) -> &'static str {
        match self {
            OpClass::Conv => "conv",
            OpClass::Matmul => "matmul",
            OpClass::Pool => "pool",
            OpClass::Elementwise => "elementwise",
            OpClass::Activation => "activation",
            OpClass::Norm => "norm",
            OpClass::Softmax => "softmax",
            OpClass::Recurrent => "recurrent",
            OpClass::DataMovement => "data_movement",
            OpClass::ControlFlow => "control_flow",
            OpClass::Other => "other",
        }
    }
}

/// Cost features of one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeFeatures {
    pub class: OpClass,
    /// Floating-point (or integer) operations; `None` when a needed shape is unknown.
    pub flops: Option<u64>,
    /// Multiply-accumulates, for conv, matmul and recurrent nodes.
    pub macs: Option<u64>,
    pub bytes_read: Option<u64>,
    pub bytes_written: Option<u64>,
    pub weight_bytes: u64,
    /// Why a figure is an estimate or missing.
    pub note: Option<String>,
    /// The op's own regression key in a profile (`op:<this>`): the op type, or a variant of it
    /// that runs differently (`Conv1x1`).
    pub regression_op: String,
    /// The variant `regression_op` names, if it is one.
    #[serde(skip)]
    pub variant: Option<ops::Variant>,
    /// Gives its input another shape without copying it ([`ops::movement::VIEWS`]): no time of
    /// its own.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub view: bool,
    /// Runs inside the kernel of the conv or matmul before it ([`fusion`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fused: Option<fusion::Epilogue>,
    /// Bytes of input patches a convolution multiplies (its im2col matrix); `None` for other
    /// ops or unknown shapes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_bytes: Option<u64>,
    /// Steps a recurrent op takes one after another (sequence length x directions), each at a
    /// fixed cost apart from its FLOPs; `None` for other ops or unknown shapes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
}

/// What a FLOP rule sees of a node.
pub struct NodeCtx<'a> {
    pub op: &'a OpNode,
    pub node: &'a NodeProto,
    /// The node's attributes, read with checks.
    pub attrs: Attrs<'a>,
    pub shapes: &'a ShapeTable,
}

impl NodeCtx<'_> {
    /// Concrete dims of declared input `i`.
    pub fn input_dims(&self, i: usize) -> Option<Vec<u64>> {
        self.op
            .inputs
            .get(i)
            .copied()
            .flatten()
            .and_then(|t| self.shapes.get(t).concrete_dims())
    }
    pub fn output_dims(&self, i: usize) -> Option<Vec<u64>> {
        self.op
            .outputs
            .get(i)
            .copied()
            .flatten()
            .and_then(|t| self.shapes.get(t).concrete_dims())
    }
    /// Element count of input `i` (it fits in 64 bits: the shapes stage checks every tensor).
    pub fn input_elements(&self, i: usize) -> Option<u64> {
        let t = self.op.inputs.get(i).copied().flatten()?;
        self.shapes.get(t).elements()
    }
    /// Element count of the first output.
    pub fn output_elements(&self) -> Option<u64> {
        let t = self.op.outputs.first().copied().flatten()?;
        self.shapes.get(t).elements()
    }
}

/// Features of every op node, keyed by graph node.
#[derive(Clone, Debug, Default)]
pub struct Features(pub HashMap<NodeIndex, NodeFeatures>);

impl Features {
    pub fn get(&self, n: NodeIndex) -> &NodeFeatures {
        &self.0[&n]
    }
}

/// Compute the features of every op node; an error where a node's attributes break the
/// specification or its work does not fit in 64 bits.
pub fn features(
    model: &crate::load::Model,
    graph: &ModelGraph,
    shapes: &ShapeTable,
) -> Result<Features> {
    let weights = graph.weight_tensors();
    let bytes = |t: TensorId| shapes.get(t).bytes();
    let mut out = HashMap::new();
    for (n, op) in graph.ops() {
        let node = model
            .graph()
            .node
            .get(op.index)
            .context("the graph does not match the model's nodes")?;
        let ctx = NodeCtx {
            op,
            node,
            attrs: Attrs::of(node, op.index),
            shapes,
        };
        let rule = ops::rule_for(&op.domain, &op.op_type);
        let reads = op.reads();
        let work = (rule.work)(&ctx)?;
        let note = match (rule.class, work.flops) {
            (OpClass::Other, Some(_)) => Some(format!(
                "no cost rule for {}: FLOPs estimated as one per output element",
                op.qualified_op()
            )),
            (_, None) if !op.outputs.is_empty() => {
                Some("FLOPs unknown: a tensor this node uses has an unknown shape".into())
            }
            _ => work.note,
        };
        out.insert(
            n,
            NodeFeatures {
                class: rule.class,
                flops: work.flops,
                macs: work.macs,
                bytes_read: total(&ctx, reads.iter().map(|&t| bytes(t)))?,
                bytes_written: total(&ctx, op.outputs.iter().flatten().map(|&t| bytes(t)))?,
                weight_bytes: total(
                    &ctx,
                    reads
                        .iter()
                        .filter(|t| weights[t.0])
                        .filter_map(|&t| bytes(t))
                        .map(Some),
                )?
                .unwrap_or(0),
                note,
                regression_op: work
                    .variant
                    .map_or(op.op_type.clone(), |v| v.name().to_string()),
                variant: work.variant,
                view: work.view,
                fused: None,
                patch_bytes: match (work.patches, element_bytes(&ctx)) {
                    (Some(p), Some(b)) => Some(ops::times(&ctx, p, b)?),
                    _ => None,
                },
                steps: work.steps,
            },
        );
    }
    for (n, epilogue) in fusion::epilogues(model, graph, shapes, &out)? {
        let Some(f) = out.get_mut(&n) else { continue };
        f.fused = Some(epilogue);
        let said = match epilogue {
            fusion::Epilogue::Free => "fused into the conv or matmul before it: no time of its own",
            fusion::Epilogue::ReadsActivation => {
                "fused into the conv or matmul before it, still reading another activation"
            }
        };
        f.note = Some(match f.note.take() {
            Some(note) => format!("{note}; {said}"),
            None => said.into(),
        });
    }
    Ok(Features(out))
}

/// The sum of byte counts; `None` when one is unknown, an error naming the node beyond 64 bits.
fn total(ctx: &NodeCtx, sizes: impl Iterator<Item = Option<u64>>) -> Result<Option<u64>> {
    let mut sum = 0u64;
    for size in sizes {
        let Some(size) = size else { return Ok(None) };
        sum = sum.checked_add(size).ok_or_else(|| {
            ctx.attrs
                .error("the bytes it reads or writes exceed 64 bits")
        })?;
    }
    Ok(Some(sum))
}

/// Bytes per element of a node's first input.
fn element_bytes(ctx: &NodeCtx) -> Option<u64> {
    let t = ctx.op.inputs.first().copied().flatten()?;
    let info = ctx.shapes.get(t);
    let elements = info.elements()?;
    info.bytes().filter(|_| elements > 0).map(|b| b / elements)
}
