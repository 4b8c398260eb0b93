//! Convolutions. Every member of the family has its window attributes checked (positive strides,
//! dilations and kernel, non-negative pads, one entry per spatial axis, a positive `group`);
//! Conv, ConvInteger and QLinearConv have a shape rule: `[N, C_out, spatial out...]`.

use super::{one, Outputs, RuleCtx};
use crate::ops::Window;
use crate::tensor::DType;
use anyhow::{bail, Result};

pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    let op = c.op.op_type.as_str();
    // QLinearConv's data is input 0 as for the others; its weights are input 3.
    let w_input = if op == "QLinearConv" { 3 } else { 1 };
    let rank = c.rank(0);
    if let Some(r) = rank.filter(|&r| r < 3) {
        bail!(c.attrs.error(format!(
            "input `X` has rank {r}, but a convolution needs N x C x at least one spatial axis"
        )));
    }
    if let (Some(x), Some(w)) = (rank, c.rank(w_input)) {
        if x != w {
            bail!(c.attrs.error(format!(
                "input `X` has rank {x} but the weights `W` rank {w}; they must be equal"
            )));
        }
    }
    let window = Window::parse(&c.attrs, rank.map(|r| r - 2))?;
    let group = c.attrs.positive_int("group", 1)?;
    if !matches!(op, "Conv" | "ConvInteger" | "QLinearConv") {
        return Ok(vec![]);
    }
    let (Some(x), Some(w)) = (c.dims(0), c.dims(w_input)) else {
        return Ok(vec![]);
    };
    if let Some(k) = window.kernel.as_ref().filter(|k| k[..] != w[2..]) {
        bail!(c.attrs.error(format!(
            "`kernel_shape` = {k:?}, but the weights `W` have kernel {:?}",
            &w[2..]
        )));
    }
    if Some(x[1]) != w[1].checked_mul(group) {
        return Err(c.mismatch(format!(
            "input `X` has {} channels, but `W` {:?} with group {group} takes {}",
            x[1],
            w,
            w[1].saturating_mul(group)
        )));
    }
    let dt = match op {
        "Conv" => c.dtype(0),
        // The output zero point's type (input 7), else x's.
        "QLinearConv" => c.dtype(7).or(c.dtype(0)),
        _ => Some(DType::INT32),
    };
    let spatial = window.output(&c.attrs, &x[2..], &w[2..])?;
    Ok(one(dt, spatial.map(|s| [vec![x[0], w[0]], s].concat())))
}
