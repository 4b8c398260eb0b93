//! Control flow: an `If` output is typed where both branches declare the same type for it (its
//! shape may otherwise depend on which branch runs). Loop and Scan are left to tract.

use super::{Outputs, RuleCtx};
use crate::shapes::info_from_type;
use crate::tensor::TensorInfo;
use anyhow::Result;

pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    if c.op.op_type != "If" {
        return Ok(vec![]);
    }
    let branch = |name: &str| {
        c.node
            .attribute
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.g.as_ref())
    };
    let (Some(then), Some(els)) = (branch("then_branch"), branch("else_branch")) else {
        return Ok(vec![]);
    };
    Ok(then
        .output
        .iter()
        .zip(&els.output)
        .enumerate()
        .filter_map(|(slot, (a, b))| {
            let (a, b) = (info_from_type(&a.type_), info_from_type(&b.type_));
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
        .collect())
}
