//! Our ONNX shape rules, one file per op family (the families of [`crate::ops`], as the cost
//! rules in `cost/ops/` are).
//!
//! A rule first reads its node's attributes through the validating [`Attrs`] reader, checking
//! them against the input ranks where those are known, so an invalid node is refused whether or
//! not its shapes are known. It then tells the outputs it can from the inputs that are fully
//! known, following the ONNX operator specification; where the inputs do not fit together at
//! the sizes tried (a Reshape constant that holds only at batch 1), it tells nothing.

mod control;
mod conv;
mod elementwise;
mod matmul;
mod movement;
mod norm;
mod pool;
mod quantized;
mod recurrent;
mod softmax;

use crate::graph::{ModelGraph, OpNode, Producer, TensorId};
use crate::load::{decode_i64, Model};
use crate::ops::{family, Attrs, Family};
use crate::tensor::{DType, TensorInfo};
use anyhow::Result;
use onnx_protobuf::{NodeProto, TensorProto};
use std::collections::HashMap;

use super::ShapeTable;

/// A node whose inputs do not fit together at the sizes tried (shapes that do not broadcast, a
/// Reshape to another element count): an error at sizes the user chose, since the model cannot
/// run there, and nothing learnt at sizes nsplit picked.
#[derive(Debug)]
pub struct Mismatch(pub String);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

/// Output (slot, info) pairs a rule can tell.
pub type Outputs = Vec<(usize, TensorInfo)>;

/// The outputs of one node that its family's rule can tell from the table so far; an error where
/// the node breaks the specification.
pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    let op = c.op.op_type.as_str();
    if quantized::handles(&c.op.domain, op) {
        return quantized::infer(c);
    }
    if c.op.domain == "com.microsoft" && op == "DynamicQuantizeLSTM" {
        return recurrent::infer(c);
    }
    match family(&c.op.domain, op) {
        Some(Family::Conv) => conv::infer(c),
        Some(Family::Matmul) => matmul::infer(c),
        Some(Family::Pool) => pool::infer(c),
        Some(Family::Norm) => norm::infer(c),
        Some(Family::Softmax) => softmax::infer(c),
        Some(Family::Recurrent) => recurrent::infer(c),
        Some(Family::Elementwise) | Some(Family::Activation) => elementwise::infer(c),
        Some(Family::Movement) => movement::infer(c),
        Some(Family::Control) => control::infer(c),
        None => Ok(vec![]),
    }
}

/// The model-wide facts rules read besides the table: constant values.
pub struct Consts<'a> {
    model: &'a Model,
    graph: &'a ModelGraph,
    initializers: HashMap<&'a str, &'a TensorProto>,
}

impl<'a> Consts<'a> {
    pub fn new(model: &'a Model, graph: &'a ModelGraph) -> Consts<'a> {
        Consts {
            model,
            graph,
            initializers: model
                .graph()
                .initializer
                .iter()
                .map(|t| (t.name.as_str(), t))
                .collect(),
        }
    }

    /// Values of a constant integer tensor: an initializer or a `Constant` node's `value`.
    fn ints(&self, t: TensorId) -> Option<Vec<i64>> {
        let tensor = match self.graph.tensor(t).producer {
            Producer::Initializer => *self.initializers.get(self.graph.tensor(t).name.as_str())?,
            Producer::Node(n, 0) => {
                let op = self.graph.op(n);
                if op.op_type != "Constant" {
                    return None;
                }
                let node = self.model.graph().node.get(op.index)?;
                if let Some(a) = node.attribute.iter().find(|a| a.name == "value_ints") {
                    return Some(a.ints.clone());
                }
                if let Some(a) = node.attribute.iter().find(|a| a.name == "value_int") {
                    return Some(vec![a.i]);
                }
                node.attribute
                    .iter()
                    .find(|a| a.name == "value")?
                    .t
                    .as_ref()?
            }
            _ => return None,
        };
        decode_i64(self.model, tensor).ok()
    }
}

/// What a shape rule sees of one node.
pub struct RuleCtx<'a> {
    pub op: &'a OpNode,
    pub node: &'a NodeProto,
    pub attrs: Attrs<'a>,
    pub opset: i64,
    table: &'a ShapeTable,
    consts: &'a Consts<'a>,
    graph: &'a ModelGraph,
}

impl<'a> RuleCtx<'a> {
    pub fn new(
        op: &'a OpNode,
        node: &'a NodeProto,
        table: &'a ShapeTable,
        consts: &'a Consts<'a>,
    ) -> RuleCtx<'a> {
        RuleCtx {
            op,
            node,
            attrs: Attrs::of(node, op.index),
            opset: consts.model.opset("").unwrap_or(1),
            table,
            consts,
            graph: consts.graph,
        }
    }

    fn input(&self, i: usize) -> Option<&TensorInfo> {
        self.op
            .inputs
            .get(i)
            .copied()
            .flatten()
            .map(|t| self.table.get(t))
    }

    /// Concrete dims of input `i`.
    pub fn dims(&self, i: usize) -> Option<Vec<u64>> {
        self.input(i).and_then(TensorInfo::concrete_dims)
    }

    /// Rank of input `i`, known even where some dims are symbolic.
    pub fn rank(&self, i: usize) -> Option<usize> {
        self.input(i).and_then(|t| t.dims.as_ref()).map(Vec::len)
    }

    pub fn dtype(&self, i: usize) -> Option<DType> {
        self.input(i).and_then(|t| t.dtype)
    }

    /// Positions of the inputs that are given (not omitted optional ones).
    pub fn present(&self) -> Vec<usize> {
        (0..self.op.inputs.len())
            .filter(|&i| self.op.inputs[i].is_some())
            .collect()
    }

    /// Values of input `i` where it is a constant integer tensor.
    pub fn const_ints(&self, i: usize) -> Option<Vec<i64>> {
        self.op
            .inputs
            .get(i)
            .copied()
            .flatten()
            .and_then(|t| self.consts.ints(t))
    }

    /// Axes from the `axes` attribute (older opsets) or the constant second input (newer
    /// ones). `Ok(Some(None))`: no axes given; `Ok(None)`: given by a tensor whose value is not
    /// known statically.
    pub fn axes(&self) -> Result<Option<Option<Vec<i64>>>> {
        if let Some(a) = self.attrs.ints("axes")? {
            return Ok(Some(Some(a.to_vec())));
        }
        Ok(match self.op.inputs.get(1).copied().flatten() {
            Some(t) => self.consts.ints(t).map(Some),
            None => Some(None),
        })
    }

    /// The name of output `slot`, for messages.
    pub fn output_name(&self, slot: usize) -> String {
        self.op.outputs.get(slot).copied().flatten().map_or_else(
            || format!("output {slot}"),
            |t| self.graph.tensor(t).name.clone(),
        )
    }

    /// A [`Mismatch`] of this node's inputs, described.
    pub fn mismatch(&self, what: impl std::fmt::Display) -> anyhow::Error {
        anyhow::Error::new(Mismatch(format!(
            "{}; the model cannot run at these input sizes",
            self.attrs.error(what)
        )))
    }

    /// Shapes of the present inputs, for messages.
    pub fn shapes_text(&self) -> String {
        self.present()
            .iter()
            .map(|&i| self.input(i).map_or("?".into(), |t| t.shape_string()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The product of `dims`, or an error naming output `slot` when it exceeds 64 bits.
    pub fn product(&self, dims: &[u64], slot: usize) -> Result<u64> {
        checked_product(dims).ok_or_else(|| {
            self.attrs.error(format!(
                "`{}` would hold {} elements, more than 64 bits can count",
                self.output_name(slot),
                crate::tensor::magnitude(dims)
            ))
        })
    }
}

/// The product of `dims`, `None` when it exceeds `u64`.
pub fn checked_product(dims: &[u64]) -> Option<u64> {
    dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// Output 0 of type `dt` and dims `d`, when both are known.
pub fn one(dt: Option<DType>, d: Option<Vec<u64>>) -> Outputs {
    match (dt, d) {
        (Some(dt), Some(d)) => vec![(0, TensorInfo::new(dt, d))],
        _ => vec![],
    }
}

/// Output 0 with input 0's type and shape.
pub fn same_as_input(c: &RuleCtx) -> Outputs {
    one(c.dtype(0), c.dims(0))
}

/// numpy-style broadcasting of several shapes; `None` where they do not broadcast.
pub fn broadcast(shapes: &[Vec<u64>]) -> Option<Vec<u64>> {
    let rank = shapes.iter().map(Vec::len).max()?;
    let mut out = vec![1u64; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}
