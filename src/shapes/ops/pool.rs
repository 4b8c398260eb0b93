//! Pooling and reductions: windowed pooling `[N, C, spatial out...]` (window attributes
//! checked as for Conv; `kernel_shape` is required), global pooling `[N, C, 1, ...]`, and
//! reductions over `axes` (each checked against the rank) keeping or dropping them.

use super::{one, Outputs, RuleCtx};
use crate::ops::{Window, GLOBAL_POOL, WINDOW_POOL};
use crate::tensor::{DType, TensorInfo};
use anyhow::{bail, Result};

pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    let op = c.op.op_type.as_str();
    if WINDOW_POOL.contains(&op) {
        return window(c);
    }
    if GLOBAL_POOL.contains(&op) {
        if let Some(r) = c.rank(0).filter(|&r| r < 2) {
            bail!(c.attrs.error(format!(
                "input has rank {r}; global pooling needs N x C x ..."
            )));
        }
        return Ok(one(
            c.dtype(0),
            c.dims(0).map(|d| {
                d.iter()
                    .enumerate()
                    .map(|(i, &v)| if i < 2 { v } else { 1 })
                    .collect()
            }),
        ));
    }
    reduce(c)
}

fn window(c: &RuleCtx) -> Result<Outputs> {
    let op = c.op.op_type.as_str();
    if op == "MaxRoiPool" {
        return Ok(vec![]);
    }
    let rank = c.rank(0);
    if let Some(r) = rank.filter(|&r| r < 3) {
        bail!(c.attrs.error(format!(
            "input has rank {r}, but pooling needs N x C x at least one spatial axis"
        )));
    }
    let window = Window::parse(&c.attrs, rank.map(|r| r - 2))?;
    let Some(kernel) = window.kernel.clone() else {
        bail!(c
            .attrs
            .error("the required attribute `kernel_shape` is missing"));
    };
    if op == "LpPool" {
        c.attrs.positive_int("p", 2)?;
    }
    let Some(x) = c.dims(0) else {
        return Ok(vec![]);
    };
    let Some(spatial) = window.output(&c.attrs, &x[2..], &kernel)? else {
        return Err(c.mismatch(format!(
            "its window {kernel:?} does not fit the input {x:?} with its padding"
        )));
    };
    let d = [x[..2].to_vec(), spatial].concat();
    let mut out = one(c.dtype(0), Some(d.clone()));
    if op == "MaxPool" && c.op.outputs.len() > 1 {
        out.push((1, TensorInfo::new(DType::INT64, d)));
    }
    Ok(out)
}

/// Reduce* over `axes` (attribute or constant input), ArgMax/ArgMin over `axis`.
fn reduce(c: &RuleCtx) -> Result<Outputs> {
    let op = c.op.op_type.as_str();
    let arg = op == "ArgMax" || op == "ArgMin";
    let keep = c.attrs.is_one("keepdims", 1)?;
    let rank = c.rank(0);
    let axes: Option<Vec<usize>> = if arg {
        match rank {
            Some(r) => Some(vec![c.attrs.axis("axis", 0, r, false)?]),
            None => None,
        }
    } else {
        match (c.axes()?, rank) {
            (Some(Some(a)), Some(r)) if !a.is_empty() => Some(
                a.iter()
                    .map(|&x| {
                        crate::ops::attrs::resolve_axis(x, r, false).ok_or_else(|| {
                            c.attrs.error(format!(
                                "axis {x} in `axes` is out of range for a rank-{r} input"
                            ))
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
            (Some(_), Some(_)) if c.attrs.is_one("noop_with_empty_axes", 0)? => Some(vec![]),
            (Some(_), Some(r)) => Some((0..r).collect()),
            _ => None,
        }
    };
    let (Some(d), Some(axes)) = (c.dims(0), axes) else {
        return Ok(vec![]);
    };
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
    Ok(one(
        if arg { Some(DType::INT64) } else { c.dtype(0) },
        Some(out),
    ))
}
