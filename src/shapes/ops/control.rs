//! Control flow: an `If` output is typed where both branches agree on it. A branch output's
//! type is its declaration or, where the exporter left it out (torch's TorchScript exporter
//! declares none inside nested `If`s), the type the branch computes: its nodes' schemas read
//! from the outer scope's types. Its shape may depend on which branch runs, so it is kept only
//! where both branches declare the same one. Loop and Scan are left to tract.

use super::{Outputs, RuleCtx};
use crate::ops::schema::output_dtypes;
use crate::shapes::info_from_type;
use crate::tensor::{DType, TensorInfo};
use anyhow::Result;
use onnx_protobuf::{GraphProto, ModelProto, NodeProto};
use std::collections::HashMap;

pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    if c.op.op_type != "If" {
        return Ok(vec![]);
    }
    let outer = |name: &str| {
        c.graph
            .tensor_id(name)
            .and_then(|t| c.table.get(t).dtype)
            .map(|d| d.0)
    };
    let model = &c.consts.model.proto;
    let Some([then, els]) = branches(c.node) else {
        return Ok(vec![]);
    };
    let then_types = branch_output_dtypes(model, then, &outer);
    let else_types = branch_output_dtypes(model, els, &outer);
    Ok(then
        .output
        .iter()
        .zip(&els.output)
        .enumerate()
        .filter_map(|(slot, (a, b))| {
            let (a, b) = (info_from_type(&a.type_), info_from_type(&b.type_));
            if a == b && a.dtype.is_some() {
                return Some((slot, a));
            }
            let dtype = then_types.get(slot).copied().flatten()?;
            (else_types.get(slot).copied().flatten() == Some(dtype)).then_some((
                slot,
                TensorInfo {
                    dtype: Some(DType(dtype)),
                    dims: None,
                },
            ))
        })
        .collect())
}

/// An `If` node's then and else branches.
fn branches(node: &NodeProto) -> Option<[&GraphProto; 2]> {
    let branch = |name: &str| {
        node.attribute
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.g.as_ref())
    };
    Some([branch("then_branch")?, branch("else_branch")?])
}

/// The element type of each of `branch`'s outputs: declared, or computed by the branch's nodes
/// from the types of what they read (the branch's own tensors, then `outer`'s).
fn branch_output_dtypes(
    model: &ModelProto,
    branch: &GraphProto,
    outer: &dyn Fn(&str) -> Option<i32>,
) -> Vec<Option<i32>> {
    let mut known: HashMap<&str, i32> = HashMap::new();
    let declared = branch
        .input
        .iter()
        .chain(&branch.value_info)
        .chain(&branch.output)
        .filter_map(|v| Some((v.name.as_str(), info_from_type(&v.type_).dtype?.0)));
    known.extend(declared);
    known.extend(
        branch
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t.data_type)),
    );
    // Nodes are in topological order (the checker requires it), so one pass types them.
    for node in &branch.node {
        let lookup = |name: &str| known.get(name).copied().or_else(|| outer(name));
        let types = match branches(node).filter(|_| node.op_type == "If") {
            Some([then, els]) => {
                let (a, b) = (
                    branch_output_dtypes(model, then, &lookup),
                    branch_output_dtypes(model, els, &lookup),
                );
                a.iter()
                    .zip(&b)
                    .map(|(a, b)| a.filter(|_| a == b))
                    .collect()
            }
            None => output_dtypes(model, node, &|i| node.input.get(i).and_then(|n| lookup(n))),
        };
        for (name, dt) in node.output.iter().zip(types) {
            if let (false, Some(dt)) = (name.is_empty(), dt) {
                known.entry(name.as_str()).or_insert(dt);
            }
        }
    }
    branch
        .output
        .iter()
        .map(|o| known.get(o.name.as_str()).copied())
        .collect()
}
