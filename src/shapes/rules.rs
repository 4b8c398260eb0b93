//! Our own ONNX shape rules, for tensors tract could not type.
//!
//! They cover the ops that carry most real models (elementwise, activations, normalisation,
//! Conv, pooling, Gemm/MatMul, recurrent cells, the common data-movement ops) and the
//! com.microsoft / ai.onnx.ml ops that keep their input's shape. Each rule only fires when every
//! input it needs is fully known, and follows the ONNX operator specification.

use super::{ShapeSource, ShapeTable};
use crate::graph::{ModelGraph, OpNode, Producer, TensorId};
use crate::load::{decode_i64, Model};
use crate::tensor::{DType, Dim, TensorInfo};
use onnx_protobuf::{NodeProto, TensorProto};
use std::collections::HashMap;

/// Apply the rules until nothing new is learnt: forward in topological order, then backward
/// through ops whose input has their output's shape.
pub fn apply(model: &Model, graph: &ModelGraph, table: &mut ShapeTable) {
    let ctx = Ctx::new(model, graph);
    loop {
        let mut learnt = false;
        for (_, op) in graph.ops() {
            let node = &model.graph().node[op.index];
            let mut outputs = infer_node(&ctx, op, node, table);
            if outputs.is_empty() {
                outputs = keep_dtype(op, table);
            }
            for (slot, info) in outputs {
                if let Some(Some(t)) = op.outputs.get(slot) {
                    learnt |= table.merge(*t, info.clone(), ShapeSource::Rule);
                    learnt |= overrule_tract(table, *t, info, &graph.tensor(*t).name);
                }
            }
        }
        for (_, op) in graph.ops().collect::<Vec<_>>().into_iter().rev() {
            learnt |= backward(op, table);
        }
        if !learnt {
            break;
        }
    }
}

/// Where a rule and tract disagree, the rule wins: the rules follow the ONNX specification and
/// are checked against the conformance tests' recorded outputs, while tract has known departures
/// (its ConstantOfShape defaults to a double zero where ONNX says float). Each tensor is overruled
/// at most once, so the fixed point is reached.
fn overrule_tract(table: &mut ShapeTable, t: TensorId, info: TensorInfo, name: &str) -> bool {
    if table.source[t.0] != ShapeSource::Tract || table.info[t.0] == info {
        return false;
    }
    if !info.is_complete() {
        // A rule that knows only the type still corrects tract's type.
        let (Some(ours), Some(theirs)) = (info.dtype, table.info[t.0].dtype) else {
            return false;
        };
        if ours == theirs {
            return false;
        }
        table.conflicts.push(format!(
            "`{name}`: tract says {theirs}, the ONNX rule {ours}"
        ));
        table.info[t.0].dtype = Some(ours);
        table.source[t.0] = ShapeSource::Rule;
        return true;
    }
    table.conflicts.push(format!(
        "`{name}`: tract says {} {}, the ONNX rule {} {}",
        table.info[t.0].dtype.map_or("?", DType::name),
        table.info[t.0].shape_string(),
        info.dtype.map_or("?", DType::name),
        info.shape_string()
    ));
    table.info[t.0] = info;
    table.source[t.0] = ShapeSource::Rule;
    true
}

/// Ops whose output 0 has the element type of input 0 whatever its shape: when no shape rule
/// applies, they still tell the output's type.
const KEEPS_DTYPE: &[&str] = &[
    "Pad",
    "Slice",
    "Reshape",
    "Expand",
    "Tile",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Gather",
    "GatherElements",
    "GatherND",
    "Split",
    "Resize",
    "Upsample",
    "Compress",
    "TopK",
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
    "Flatten",
    "DepthToSpace",
    "SpaceToDepth",
    "ScatterND",
    "ScatterElements",
    "Unique",
];

fn keep_dtype(op: &OpNode, table: &ShapeTable) -> Vec<(usize, TensorInfo)> {
    let dtype = op
        .inputs
        .first()
        .copied()
        .flatten()
        .and_then(|t| table.get(t).dtype);
    match dtype {
        Some(dt) if KEEPS_DTYPE.contains(&op.op_type.as_str()) => {
            vec![(
                0,
                TensorInfo {
                    dtype: Some(dt),
                    dims: None,
                },
            )]
        }
        _ => vec![],
    }
}

/// An elementwise op's input 0 has its output's shape: learn it backwards when only the output is
/// known (e.g. a declared output after a reduction over axes known only at run time).
fn backward(op: &OpNode, table: &mut ShapeTable) -> bool {
    let same = SAME_SHAPE.contains(&op.op_type.as_str())
        || matches!(op.op_type.as_str(), "Cast" | "CastLike" | "IsNaN" | "IsInf");
    let (Some(Some(input)), Some(Some(output))) = (op.inputs.first(), op.outputs.first()) else {
        return false;
    };
    let Some(dims) = table
        .get(*output)
        .dims
        .clone()
        .filter(|_| same && table.get(*output).concrete_dims().is_some())
    else {
        return false;
    };
    let dtype = table.get(*input).dtype;
    table.merge(
        *input,
        TensorInfo {
            dtype,
            dims: Some(dims),
        },
        ShapeSource::Rule,
    )
}

struct Ctx<'a> {
    model: &'a Model,
    graph: &'a ModelGraph,
    initializers: HashMap<&'a str, &'a TensorProto>,
}

impl<'a> Ctx<'a> {
    fn new(model: &'a Model, graph: &'a ModelGraph) -> Ctx<'a> {
        Ctx {
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
    fn const_ints(&self, t: TensorId) -> Option<Vec<i64>> {
        let tensor = match self.graph.tensor(t).producer {
            Producer::Initializer => *self.initializers.get(self.graph.tensor(t).name.as_str())?,
            Producer::Node(n, 0) => {
                let op = self.graph.op(n);
                if op.op_type != "Constant" {
                    return None;
                }
                let node = &self.model.graph().node[op.index];
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

impl Ctx<'_> {
    /// Axes from the `axes` attribute (older opsets) or the constant second input (newer ones).
    /// `Ok(None)`: no axes given; `Err`: given by a tensor whose value is not known statically.
    fn axes(&self, op: &OpNode, node: &NodeProto) -> Result<Option<Vec<i64>>, ()> {
        if let Some(a) = attr_ints(node, "axes") {
            return Ok(Some(a));
        }
        match op.inputs.get(1).copied().flatten() {
            Some(t) => self.const_ints(t).map(Some).ok_or(()),
            None => Ok(None),
        }
    }
}

fn attr_i(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

fn attr_s(node: &NodeProto, name: &str) -> Option<String> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// Resolve a possibly negative axis against a rank.
fn axis(a: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    (0..r).contains(&a).then_some(a as usize)
}

/// numpy-style broadcasting of several shapes.
fn broadcast(shapes: &[Vec<u64>]) -> Option<Vec<u64>> {
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

const SAME_SHAPE: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Celu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Softplus",
    "Softsign",
    "Exp",
    "Log",
    "Sqrt",
    "Neg",
    "Abs",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Acosh",
    "Atanh",
    "Erf",
    "Gelu",
    "Mish",
    "Clip",
    "Identity",
    "Dropout",
    "Softmax",
    "LogSoftmax",
    "Hardmax",
    "BatchNormalization",
    "InstanceNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "LRN",
    "MeanVarianceNormalization",
    "Sign",
    "Not",
    "CumSum",
    "Shrink",
    "ThresholdedRelu",
    "LpNormalization",
    "PRelu",
    "FastGelu",
    "BiasGelu",
    "QuickGelu",
    "SkipLayerNormalization",
    "SimplifiedLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "Normalizer",
    "Binarizer",
    "Scaler",
    "Trilu",
    "ReverseSequence",
];
const BROADCAST: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Max",
    "Min",
    "Sum",
    "Mean",
    "Mod",
    "BitShift",
    "BitwiseAnd",
    "BitwiseOr",
    "BitwiseXor",
];
const COMPARE: &[&str] = &[
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "And",
    "Or",
    "Xor",
];

/// Output (slot, info) pairs a rule can tell, given the inputs known so far.
fn infer_node(
    ctx: &Ctx,
    op: &OpNode,
    node: &NodeProto,
    table: &ShapeTable,
) -> Vec<(usize, TensorInfo)> {
    let input = |i: usize| -> Option<&TensorInfo> {
        op.inputs.get(i).copied().flatten().map(|t| table.get(t))
    };
    let dims = |i: usize| input(i).and_then(TensorInfo::concrete_dims);
    let dtype = |i: usize| input(i).and_then(|t| t.dtype);
    let one = |dt: Option<DType>, d: Option<Vec<u64>>| match (dt, d) {
        (Some(dt), Some(d)) => vec![(0, TensorInfo::new(dt, d))],
        _ => vec![],
    };
    let op_type = op.op_type.as_str();
    let present: Vec<usize> = (0..op.inputs.len())
        .filter(|&i| op.inputs[i].is_some())
        .collect();
    match op_type {
        t if SAME_SHAPE.contains(&t) => {
            let (Some(dt), Some(d)) = (dtype(0), dims(0)) else {
                return vec![];
            };
            let mut out = vec![(0, TensorInfo::new(dt, d.clone()))];
            if t == "Dropout" {
                // The mask is bool from opset 10; before, it had the input's type.
                let opset = ctx.model.opset("").unwrap_or(1);
                let mask = if opset >= 10 { DType::BOOL } else { dt };
                out.push((1, TensorInfo::new(mask, d)));
            }
            out
        }
        "IsNaN" | "IsInf" => one(Some(DType::BOOL), dims(0)),
        "Cast" => one(attr_i(node, "to").map(|v| DType(v as i32)), dims(0)),
        "CastLike" => one(dtype(1), dims(0)),
        t if BROADCAST.contains(&t) || COMPARE.contains(&t) || t == "Where" => {
            let shapes: Option<Vec<Vec<u64>>> = present.iter().map(|&i| dims(i)).collect();
            let dt = if COMPARE.contains(&t) {
                Some(DType::BOOL)
            } else if t == "Where" {
                dtype(1)
            } else {
                dtype(0)
            };
            one(dt, shapes.and_then(|s| broadcast(&s)))
        }
        "MatMul" | "MatMulInteger" | "FusedMatMul" => one(
            if op_type == "MatMulInteger" {
                Some(DType::INT32)
            } else {
                dtype(0)
            },
            matmul(dims(0), dims(1)),
        ),
        "Gemm" => {
            let (Some(a), Some(b)) = (dims(0), dims(1)) else {
                return vec![];
            };
            if a.len() != 2 || b.len() != 2 {
                return vec![];
            }
            let m = if attr_i(node, "transA") == Some(1) {
                a[1]
            } else {
                a[0]
            };
            let n = if attr_i(node, "transB") == Some(1) {
                b[0]
            } else {
                b[1]
            };
            one(dtype(0), Some(vec![m, n]))
        }
        "Conv" | "ConvInteger" => one(
            if op_type == "Conv" {
                dtype(0)
            } else {
                Some(DType::INT32)
            },
            conv(node, dims(0), dims(1)),
        ),
        "MaxPool" | "AveragePool" | "LpPool" => {
            let d = pool(node, dims(0));
            let mut out = one(dtype(0), d.clone());
            if op_type == "MaxPool" && op.outputs.len() > 1 {
                if let Some(d) = d {
                    out.push((1, TensorInfo::new(DType::INT64, d)));
                }
            }
            out
        }
        "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => one(
            dtype(0),
            dims(0).map(|d| {
                d.iter()
                    .enumerate()
                    .map(|(i, &v)| if i < 2 { v } else { 1 })
                    .collect()
            }),
        ),
        "Flatten" => {
            let Some(d) = dims(0) else { return vec![] };
            // Flatten's axis ranges over [-r, r]: a negative one counts from the rank, not rank + 1.
            let a = attr_i(node, "axis").unwrap_or(1);
            let a = if a < 0 { a + d.len() as i64 } else { a };
            if !(0..=d.len() as i64).contains(&a) {
                return vec![];
            }
            let a = a as usize;
            one(
                dtype(0),
                Some(vec![d[..a].iter().product(), d[a..].iter().product()]),
            )
        }
        "Reshape" => {
            let (Some(d), Some(shape)) = (
                dims(0),
                op.inputs
                    .get(1)
                    .copied()
                    .flatten()
                    .and_then(|t| ctx.const_ints(t)),
            ) else {
                return vec![];
            };
            one(
                dtype(0),
                reshape(&d, &shape, attr_i(node, "allowzero") == Some(1)),
            )
        }
        "Transpose" => {
            let Some(d) = dims(0) else { return vec![] };
            let perm =
                attr_ints(node, "perm").unwrap_or_else(|| (0..d.len() as i64).rev().collect());
            one(
                dtype(0),
                perm.iter().map(|&p| d.get(p as usize).copied()).collect(),
            )
        }
        "Concat" => {
            let shapes: Option<Vec<Vec<u64>>> = present.iter().map(|&i| dims(i)).collect();
            let Some(shapes) = shapes else { return vec![] };
            let Some(a) = shapes
                .first()
                .and_then(|s| axis(attr_i(node, "axis").unwrap_or(0), s.len()))
            else {
                return vec![];
            };
            let mut out = shapes[0].clone();
            out[a] = shapes.iter().map(|s| s.get(a).copied().unwrap_or(0)).sum();
            one(dtype(0), Some(out))
        }
        "Squeeze" | "Unsqueeze" => {
            let Some(d) = dims(0) else { return vec![] };
            let Ok(axes) = ctx.axes(op, node) else {
                return vec![];
            };
            one(
                dtype(0),
                if op_type == "Squeeze" {
                    squeeze(&d, axes)
                } else {
                    axes.and_then(|a| unsqueeze(&d, a))
                },
            )
        }
        "Shape" => {
            // Opset 15 slices the shape with `start`/`end`, clamped to [0, rank].
            let Some(rank) = input(0)
                .and_then(|i| i.dims.as_ref())
                .map(|d| d.len() as i64)
            else {
                return vec![];
            };
            let clamp = |v: i64| if v < 0 { v + rank } else { v }.clamp(0, rank);
            let start = clamp(attr_i(node, "start").unwrap_or(0));
            let end = clamp(attr_i(node, "end").unwrap_or(rank));
            one(Some(DType::INT64), Some(vec![(end - start).max(0) as u64]))
        }
        "Size" => one(Some(DType::INT64), Some(vec![])),
        "Gather" => {
            let (Some(d), Some(idx)) = (dims(0), dims(1)) else {
                return vec![];
            };
            let Some(a) = axis(attr_i(node, "axis").unwrap_or(0), d.len()) else {
                return vec![];
            };
            one(dtype(0), Some([&d[..a], &idx[..], &d[a + 1..]].concat()))
        }
        t if t.starts_with("Reduce") || t == "ArgMax" || t == "ArgMin" => {
            let Some(d) = dims(0) else { return vec![] };
            let keep = attr_i(node, "keepdims").unwrap_or(1) == 1;
            let axes = if t.starts_with("Arg") {
                Some(vec![attr_i(node, "axis").unwrap_or(0)])
            } else {
                let Ok(axes) = ctx.axes(op, node) else {
                    return vec![];
                };
                axes
            };
            let axes: Option<Vec<usize>> = match axes {
                Some(a) if !a.is_empty() => a.iter().map(|&x| axis(x, d.len())).collect(),
                _ if attr_i(node, "noop_with_empty_axes") == Some(1) => Some(vec![]),
                _ => Some((0..d.len()).collect()),
            };
            let Some(axes) = axes else { return vec![] };
            let out = d
                .iter()
                .enumerate()
                .filter_map(|(i, &v)| {
                    if axes.contains(&i) {
                        keep.then_some(1)
                    } else {
                        Some(v)
                    }
                })
                .collect();
            one(
                if t.starts_with("Arg") {
                    Some(DType::INT64)
                } else {
                    dtype(0)
                },
                Some(out),
            )
        }
        "Constant" => constant(node).map(|i| vec![(0, i)]).unwrap_or_default(),
        "ConstantOfShape" => {
            let shape = op
                .inputs
                .first()
                .copied()
                .flatten()
                .and_then(|t| ctx.const_ints(t));
            let dt = node
                .attribute
                .iter()
                .find(|a| a.name == "value")
                .and_then(|a| a.t.as_ref())
                .map_or(DType::FLOAT, |t| DType(t.data_type));
            // The type is known from the attribute (float when absent) even when the shape is not.
            let dims = shape.map(|s| s.iter().map(|&v| Dim::Known(v.max(0) as u64)).collect());
            vec![(
                0,
                TensorInfo {
                    dtype: Some(dt),
                    dims,
                },
            )]
        }
        "If" => if_outputs(node),
        "LSTM" | "GRU" | "RNN" => recurrent(node, dims(0), dtype(0), op_type == "LSTM"),
        _ => vec![],
    }
}

fn matmul(a: Option<Vec<u64>>, b: Option<Vec<u64>>) -> Option<Vec<u64>> {
    let (mut a, mut b) = (a?, b?);
    let (a1, b1) = (a.len() == 1, b.len() == 1);
    if a1 {
        a.insert(0, 1);
    }
    if b1 {
        b.push(1);
    }
    if a.len() < 2 || b.len() < 2 || a[a.len() - 1] != b[b.len() - 2] {
        return None;
    }
    let mut out = broadcast(&[a[..a.len() - 2].to_vec(), b[..b.len() - 2].to_vec()])?;
    if !a1 {
        out.push(a[a.len() - 2]);
    }
    if !b1 {
        out.push(b[b.len() - 1]);
    }
    Some(out)
}

/// Output spatial size per ONNX Conv/Pool rules (explicit pads or auto_pad), with ceil_mode.
fn spatial_out(node: &NodeProto, input: &[u64], kernel: &[u64], ceil: bool) -> Option<Vec<u64>> {
    let n = input.len();
    let strides = attr_ints(node, "strides")
        .filter(|v| !v.is_empty())
        .unwrap_or(vec![1; n]);
    let dil = attr_ints(node, "dilations")
        .filter(|v| !v.is_empty())
        .unwrap_or(vec![1; n]);
    let pads = attr_ints(node, "pads")
        .filter(|v| !v.is_empty())
        .unwrap_or(vec![0; 2 * n]);
    let auto = attr_s(node, "auto_pad").unwrap_or_default();
    (0..n)
        .map(|i| {
            let (x, s) = (input[i] as i64, *strides.get(i)?);
            let k = (kernel[i] as i64 - 1) * dil.get(i)? + 1;
            let v = match auto.as_str() {
                "SAME_UPPER" | "SAME_LOWER" => (x + s - 1) / s,
                "VALID" => (x - k) / s + 1,
                _ => {
                    let (begin, end) = (*pads.get(i)?, *pads.get(i + n)?);
                    let span = x + begin + end - k;
                    if ceil {
                        let out = (span + s - 1).div_euclid(s) + 1;
                        // A window may not start inside the end padding.
                        if (out - 1) * s >= x + begin {
                            out - 1
                        } else {
                            out
                        }
                    } else {
                        span.div_euclid(s) + 1
                    }
                }
            };
            (v >= 0).then_some(v as u64)
        })
        .collect()
}

fn conv(node: &NodeProto, x: Option<Vec<u64>>, w: Option<Vec<u64>>) -> Option<Vec<u64>> {
    let (x, w) = (x?, w?);
    if x.len() < 3 || w.len() != x.len() {
        return None;
    }
    let kernel = attr_ints(node, "kernel_shape")
        .map(|k| k.iter().map(|&v| v as u64).collect())
        .unwrap_or(w[2..].to_vec());
    let mut out = vec![x[0], w[0]];
    out.extend(spatial_out(node, &x[2..], &kernel, false)?);
    Some(out)
}

fn pool(node: &NodeProto, x: Option<Vec<u64>>) -> Option<Vec<u64>> {
    let x = x?;
    let kernel: Vec<u64> = attr_ints(node, "kernel_shape")?
        .iter()
        .map(|&v| v as u64)
        .collect();
    if x.len() != kernel.len() + 2 {
        return None;
    }
    let mut out = x[..2].to_vec();
    out.extend(spatial_out(
        node,
        &x[2..],
        &kernel,
        attr_i(node, "ceil_mode") == Some(1),
    )?);
    Some(out)
}

fn reshape(d: &[u64], shape: &[i64], allowzero: bool) -> Option<Vec<u64>> {
    let total: u64 = d.iter().product();
    let mut out: Vec<Option<u64>> = shape
        .iter()
        .enumerate()
        .map(|(i, &s)| match s {
            -1 => None,
            0 if !allowzero => d.get(i).copied(),
            s if s >= 0 => Some(s as u64),
            _ => Some(u64::MAX),
        })
        .collect();
    if out.contains(&Some(u64::MAX)) || out.iter().filter(|v| v.is_none()).count() > 1 {
        return None;
    }
    let known: u64 = out.iter().flatten().product();
    if let Some(slot) = out.iter_mut().find(|v| v.is_none()) {
        if known == 0 || !total.is_multiple_of(known) {
            return None;
        }
        *slot = Some(total / known);
    }
    out.into_iter().collect()
}

fn squeeze(d: &[u64], axes: Option<Vec<i64>>) -> Option<Vec<u64>> {
    match axes {
        Some(a) if !a.is_empty() => {
            let a: Vec<usize> = a.iter().map(|&x| axis(x, d.len())).collect::<Option<_>>()?;
            Some(
                d.iter()
                    .enumerate()
                    .filter(|(i, _)| !a.contains(i))
                    .map(|(_, &v)| v)
                    .collect(),
            )
        }
        _ => Some(d.iter().copied().filter(|&v| v != 1).collect()),
    }
}

fn unsqueeze(d: &[u64], axes: Vec<i64>) -> Option<Vec<u64>> {
    let rank = d.len() + axes.len();
    let a: Vec<usize> = axes.iter().map(|&x| axis(x, rank)).collect::<Option<_>>()?;
    let mut rest = d.iter();
    (0..rank)
        .map(|i| {
            if a.contains(&i) {
                Some(1)
            } else {
                rest.next().copied()
            }
        })
        .collect()
}

fn constant(node: &NodeProto) -> Option<TensorInfo> {
    let a = node.attribute.first()?;
    match a.name.as_str() {
        "value" => {
            let t = a.t.as_ref()?;
            Some(TensorInfo::new(
                DType(t.data_type),
                t.dims.iter().map(|&d| d.max(0) as u64).collect(),
            ))
        }
        "value_float" => Some(TensorInfo::new(DType::FLOAT, vec![])),
        "value_floats" => Some(TensorInfo::new(DType::FLOAT, vec![a.floats.len() as u64])),
        "value_int" => Some(TensorInfo::new(DType::INT64, vec![])),
        "value_ints" => Some(TensorInfo::new(DType::INT64, vec![a.ints.len() as u64])),
        "value_string" => Some(TensorInfo::new(DType::STRING, vec![])),
        "value_strings" => Some(TensorInfo::new(DType::STRING, vec![a.strings.len() as u64])),
        _ => None,
    }
}

/// An `If` output is typed where both branches declare the same type for it (its shape may
/// otherwise depend on which branch runs).
fn if_outputs(node: &NodeProto) -> Vec<(usize, TensorInfo)> {
    let branch = |name: &str| {
        node.attribute
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.g.as_ref())
    };
    let (Some(then), Some(els)) = (branch("then_branch"), branch("else_branch")) else {
        return vec![];
    };
    then.output
        .iter()
        .zip(&els.output)
        .enumerate()
        .filter_map(|(slot, (a, b))| {
            let (a, b) = (
                super::info_from_type(&a.type_),
                super::info_from_type(&b.type_),
            );
            if a == b {
                Some((slot, a))
            } else if a.dtype.is_some() && a.dtype == b.dtype {
                Some((
                    slot,
                    TensorInfo {
                        dtype: a.dtype,
                        dims: None,
                    },
                ))
            } else {
                None
            }
        })
        .collect()
}

/// LSTM/GRU/RNN outputs: Y [seq, dirs, batch, hidden], Y_h (and LSTM's Y_c) [dirs, batch, hidden];
/// `layout = 1` puts batch first.
fn recurrent(
    node: &NodeProto,
    x: Option<Vec<u64>>,
    dt: Option<DType>,
    lstm: bool,
) -> Vec<(usize, TensorInfo)> {
    let (Some(x), Some(dt), Some(hidden)) = (x, dt, attr_i(node, "hidden_size")) else {
        return vec![];
    };
    if x.len() != 3 {
        return vec![];
    }
    let dirs = if attr_s(node, "direction").as_deref() == Some("bidirectional") {
        2
    } else {
        1
    };
    let h = hidden as u64;
    let batch_first = attr_i(node, "layout") == Some(1);
    let (seq, batch) = if batch_first {
        (x[1], x[0])
    } else {
        (x[0], x[1])
    };
    let (y, yh) = if batch_first {
        (vec![batch, seq, dirs, h], vec![batch, dirs, h])
    } else {
        (vec![seq, dirs, batch, h], vec![dirs, batch, h])
    };
    let mut out = vec![
        (0, TensorInfo::new(dt, y)),
        (1, TensorInfo::new(dt, yh.clone())),
    ];
    if lstm {
        out.push((2, TensorInfo::new(dt, yh)));
    }
    out
}
