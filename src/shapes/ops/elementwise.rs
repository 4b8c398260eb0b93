//! Elementwise ops and activations: the output has the input's shape (unary ops, activations),
//! or the numpy broadcast of the inputs' shapes (arithmetic, comparisons, `Where`).

use super::{broadcast, one, same_as_input, Outputs, RuleCtx};
use crate::ops::{BINARY, COMPARE, UNARY, VARIADIC};
use crate::tensor::DType;
use anyhow::Result;

pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    let op = c.op.op_type.as_str();
    if op == "BitShift" {
        c.attrs.one_of("direction", &["LEFT", "RIGHT"])?;
    }
    if matches!(op, "IsNaN" | "IsInf") {
        return Ok(one(Some(DType::BOOL), c.dims(0)));
    }
    let broadcasting = BINARY.contains(&op) || VARIADIC.contains(&op) || COMPARE.contains(&op);
    if broadcasting || op == "Where" {
        let shapes: Option<Vec<Vec<u64>>> = c.present().iter().map(|&i| c.dims(i)).collect();
        let dt = if COMPARE.contains(&op) {
            Some(DType::BOOL)
        } else if op == "Where" {
            c.dtype(1)
        } else {
            c.dtype(0)
        };
        let Some(shapes) = shapes else {
            return Ok(vec![]);
        };
        let Some(out) = broadcast(&shapes) else {
            return Err(c.mismatch(format!(
                "its inputs of shapes {} do not broadcast together",
                c.shapes_text()
            )));
        };
        return Ok(one(dt, Some(out)));
    }
    if UNARY.contains(&op) || crate::ops::ACTIVATION.contains(&op) {
        return Ok(same_as_input(c));
    }
    Ok(vec![])
}
