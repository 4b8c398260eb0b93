//! Applying our ONNX shape rules ([`super::ops`]) to a whole graph, for the tensors tract could
//! not type, and checking every node's attributes on the way.
//!
//! The rules cover the ops that carry most real models (elementwise, activations,
//! normalisation, Conv, pooling, Gemm/MatMul, recurrent cells, the common data-movement ops) and
//! the com.microsoft / ai.onnx.ml ops that keep their input's shape.

use super::ops::{infer, Consts, Mismatch, RuleCtx};
use super::{ShapeSource, ShapeTable};
use crate::graph::{ModelGraph, OpNode, TensorId};
use crate::load::Model;
use crate::ops::{keeps_shape, REDUCE};
use crate::tensor::{DType, TensorInfo};
use anyhow::{Context, Result};

/// What the rules are run for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Use {
    /// Learn shapes, and refuse a node that breaks the specification; with `sizes`, also one
    /// whose inputs do not fit together ([`Mismatch`]) at these sizes, which the user chose.
    Learn { sizes: bool },
    /// Learn shapes; a node that cannot be read at these sizes just tells nothing (the points
    /// beyond the given sizes, where a model may only work at its export size).
    LearnLeniently,
    /// Only check every node (when the rules are not a source of shapes).
    Check,
}

/// Apply the rules until nothing new is learnt: forward in topological order, then backward
/// through ops whose input has their output's shape.
pub fn apply(model: &Model, graph: &ModelGraph, table: &mut ShapeTable, using: Use) -> Result<()> {
    let consts = Consts::new(model, graph);
    loop {
        let mut learnt = false;
        for (_, op) in graph.ops() {
            let node = model
                .graph()
                .node
                .get(op.index)
                .context("the graph does not match the model's nodes")?;
            let found = infer(&RuleCtx::new(op, node, table, &consts));
            let mut outputs = match (found, using) {
                (Ok(outputs), _) => outputs,
                (Err(_), Use::LearnLeniently) => vec![],
                (Err(e), Use::Learn { sizes: true }) => return Err(e),
                (Err(e), _) if e.is::<Mismatch>() => vec![],
                (Err(e), _) => return Err(e),
            };
            if using == Use::Check {
                continue;
            }
            if outputs.is_empty() {
                outputs = keep_dtype(op, table);
            }
            for (slot, info) in outputs {
                if let Some(Some(t)) = op.outputs.get(slot) {
                    let info = respect_declaration(table, *t, info, graph, op, using);
                    learnt |= table.merge(*t, info.clone(), ShapeSource::Rule);
                    learnt |= overrule_tract(table, *t, info, &graph.tensor(*t).name);
                }
            }
        }
        if using == Use::Check {
            return Ok(());
        }
        for (_, op) in graph.ops().collect::<Vec<_>>().into_iter().rev() {
            learnt |= backward(op, table);
        }
        if !learnt {
            return Ok(());
        }
    }
}

/// A rule's answer for a tensor the model declares (value_info or a graph output), corrected
/// where it contradicts the declaration: the declaration stands, said once as a warning at the
/// sizes the user gave. Whether the model is refused for the contradiction is decided apart
/// (`shapes::check_declarations`), from what the rules derive from the inputs and weights alone.
fn respect_declaration(
    table: &mut ShapeTable,
    t: TensorId,
    computed: TensorInfo,
    graph: &ModelGraph,
    op: &OpNode,
    using: Use,
) -> TensorInfo {
    let declared = &table.info[t.0];
    if table.source[t.0] != ShapeSource::ValueInfo || !declared.contradicts(&computed) {
        return computed;
    }
    let corrected = declared.overlaid_on(&computed);
    let warning = format!(
        "`{}` is declared {} {}, but our rule for node `{}` ({}) computes {} {}; using the declaration",
        graph.tensor(t).name,
        declared.dtype.map_or("?", DType::name),
        declared.shape_string(),
        op.label(),
        op.op_type,
        computed.dtype.map_or("?", DType::name),
        computed.shape_string()
    );
    if using == (Use::Learn { sizes: true }) && !table.warnings.contains(&warning) {
        table.warnings.push(warning);
    }
    corrected
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
    "Flatten",
    "DepthToSpace",
    "SpaceToDepth",
    "ScatterND",
    "ScatterElements",
    "Unique",
];

/// Also every reduction but the arg-reductions, which give int64 indices.
fn keeps_dtype(op: &str) -> bool {
    KEEPS_DTYPE.contains(&op) || REDUCE.contains(&op) && !op.starts_with("Arg")
}

fn keep_dtype(op: &OpNode, table: &ShapeTable) -> Vec<(usize, TensorInfo)> {
    let dtype = op
        .inputs
        .first()
        .copied()
        .flatten()
        .and_then(|t| table.get(t).dtype);
    match dtype {
        Some(dt) if keeps_dtype(&op.op_type) => {
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
    let same = keeps_shape(&op.op_type);
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
