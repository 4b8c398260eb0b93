//! Elementwise ops and activations: the output has the input's shape (unary ops, activations),
//! or the numpy broadcast of the inputs' shapes (arithmetic, comparisons, `Where`).

use super::{broadcast, one, same_as_input, Outputs, RuleCtx};
use crate::ops::{BINARY, COMPARE, LOSS, UNARY, VARIADIC};
use crate::tensor::DType;
use anyhow::Result;

pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    let op = c.op.op_type.as_str();
    if op == "BitShift" {
        c.attrs.one_of("direction", &["LEFT", "RIGHT"])?;
    }
    if LOSS.contains(&op) {
        return loss(c);
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

/// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: the loss is a scalar, or has the
/// target's shape where `reduction` is `none`; SoftmaxCrossEntropyLoss's optional second output
/// (the log-probabilities) has the scores' shape.
fn loss(c: &RuleCtx) -> Result<Outputs> {
    let reduction = c.attrs.one_of("reduction", &["mean", "sum", "none"])?;
    if let Some(r) = c.rank(2).filter(|&r| r != 1) {
        return Err(c.attrs.error(format!(
            "the weights have rank {r}; they must be a vector of one weight per class"
        )));
    }
    // Scores are [N, C, d...], the target [N, d...].
    if let (Some(scores), Some(target)) = (c.dims(0), c.dims(1)) {
        let expected: Vec<u64> = scores
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != 1)
            .map(|(_, &d)| d)
            .collect();
        if scores.len() < 2 || target != expected {
            return Err(c.mismatch(format!(
                "the target {target:?} does not match the scores {scores:?} (N x C x d... against N x d...)"
            )));
        }
    }
    let loss = if reduction == "none" {
        c.dims(1)
    } else {
        Some(vec![])
    };
    let mut out = one(c.dtype(0), loss);
    if c.op.op_type == "SoftmaxCrossEntropyLoss" {
        if let (Some(dt), Some(d)) = (c.dtype(0), c.dims(0)) {
            out.push((1, crate::tensor::TensorInfo::new(dt, d)));
        }
    }
    Ok(out)
}
