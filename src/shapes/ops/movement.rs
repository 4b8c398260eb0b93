//! Data movement: reshapes, transposes, concatenation, squeezes, gathers, casts, constants, and
//! the ops that pass their input's shape through. Axis and permutation attributes are checked
//! against the input's rank wherever it is known.

use super::{one, same_as_input, Outputs, RuleCtx};
use crate::ops::attrs::resolve_axis;
use crate::tensor::{DType, Dim, TensorInfo};
use anyhow::{bail, Result};

pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    let op = c.op.op_type.as_str();
    match op {
        "Identity" | "Trilu" | "ReverseSequence" => Ok(same_as_input(c)),
        "Dropout" => dropout(c),
        "Cast" => cast(c),
        "CastLike" => Ok(one(c.dtype(1), c.dims(0))),
        "EyeLike" => eye_like(c),
        "Flatten" => flatten(c),
        "Reshape" => reshape(c),
        "Transpose" => transpose(c),
        "Concat" => concat(c),
        "Squeeze" | "Unsqueeze" => squeeze(c, op == "Squeeze"),
        "Slice" => slice(c),
        "Shape" => shape_of(c),
        "Size" => Ok(one(Some(DType::INT64), Some(vec![]))),
        "Gather" => gather(c),
        "Constant" => constant(c),
        "ConstantOfShape" => constant_of_shape(c),
        "OneHot" | "Split" | "GatherElements" | "ScatterElements" | "TopK" | "CumSum"
        | "Compress" | "DepthToSpace" | "SpaceToDepth" => {
            check_attributes(c, op)?;
            Ok(vec![])
        }
        _ => Ok(vec![]),
    }
}

fn dropout(c: &RuleCtx) -> Result<Outputs> {
    let (Some(dt), Some(d)) = (c.dtype(0), c.dims(0)) else {
        return Ok(vec![]);
    };
    // The mask is bool from opset 10; before, it had the input's type.
    let mask = if c.opset >= 10 { DType::BOOL } else { dt };
    Ok(vec![
        (0, TensorInfo::new(dt, d.clone())),
        (1, TensorInfo::new(mask, d)),
    ])
}

fn cast(c: &RuleCtx) -> Result<Outputs> {
    let dt = match c.attrs.int("to")? {
        // Types newer than this build are let through: only 0 (undefined) and values that are
        // no type number at all are refused.
        Some(v) if v > 0 && v <= i32::MAX as i64 => DType(v as i32),
        Some(v) => bail!(c
            .attrs
            .error(format!("`to` = {v} is not an ONNX element type"))),
        None => bail!(c.attrs.error("the required attribute `to` is missing")),
    };
    Ok(one(Some(dt), c.dims(0)))
}

fn eye_like(c: &RuleCtx) -> Result<Outputs> {
    let dt = match c.attrs.int("dtype")? {
        Some(v) if v > 0 && v <= i32::MAX as i64 => Some(DType(v as i32)),
        Some(v) => bail!(c
            .attrs
            .error(format!("`dtype` = {v} is not an ONNX element type"))),
        None => c.dtype(0),
    };
    if let Some(r) = c.rank(0).filter(|&r| r != 2) {
        bail!(c.attrs.error(format!(
            "its input has rank {r}, but EyeLike takes a 2-D input"
        )));
    }
    Ok(one(dt, c.dims(0)))
}

fn shape_of(c: &RuleCtx) -> Result<Outputs> {
    // Opset 15 slices the shape with `start`/`end`, clamped to [0, rank].
    let Some(rank) = c.rank(0).map(|r| r as i64) else {
        return Ok(vec![]);
    };
    let clamp = |v: i64| if v < 0 { v.saturating_add(rank) } else { v }.clamp(0, rank);
    let start = clamp(c.attrs.int_or("start", 0)?);
    let end = clamp(c.attrs.int_or("end", rank)?);
    Ok(one(
        Some(DType::INT64),
        Some(vec![(end - start).max(0) as u64]),
    ))
}

fn gather(c: &RuleCtx) -> Result<Outputs> {
    let Some(r) = c.rank(0) else {
        return Ok(vec![]);
    };
    let a = c.attrs.axis("axis", 0, r, false)?;
    let (Some(d), Some(idx)) = (c.dims(0), c.dims(1)) else {
        return Ok(vec![]);
    };
    Ok(one(
        c.dtype(0),
        Some([&d[..a], &idx[..], &d[a + 1..]].concat()),
    ))
}

fn constant_of_shape(c: &RuleCtx) -> Result<Outputs> {
    let dt = c
        .node
        .attribute
        .iter()
        .find(|a| a.name == "value")
        .and_then(|a| a.t.as_ref())
        .map_or(DType::FLOAT, |t| DType(t.data_type));
    let dims = match c.const_ints(0) {
        Some(s) => {
            if let Some(bad) = s.iter().find(|&&v| v < 0) {
                bail!(c
                    .attrs
                    .error(format!("the shape {s:?} has a negative dimension {bad}")));
            }
            let d: Vec<u64> = s.iter().map(|&v| v as u64).collect();
            c.product(&d, 0)?;
            Some(d.into_iter().map(Dim::Known).collect())
        }
        None => None,
    };
    // The type is known from the attribute (float when absent) even when the shape is not.
    Ok(vec![(
        0,
        TensorInfo {
            dtype: Some(dt),
            dims,
        },
    )])
}

/// The attributes of ops whose shapes are left to tract, checked against the input's rank.
fn check_attributes(c: &RuleCtx, op: &str) -> Result<()> {
    match op {
        "OneHot" => {
            // The output has one more axis than the indices; `axis` may name any of them.
            if let Some(r) = c.rank(0) {
                c.attrs.axis("axis", -1, r + 1, false)?;
            }
        }
        "Compress" => {
            if let (Some(r), Some(_)) = (c.rank(0), c.attrs.int("axis")?) {
                c.attrs.axis("axis", 0, r, false)?;
            }
        }
        "DepthToSpace" | "SpaceToDepth" => {
            c.attrs.positive_int("blocksize", 1)?;
        }
        _ => {
            if let Some(r) = c.rank(0).filter(|&r| r > 0) {
                let default = if op == "TopK" { -1 } else { 0 };
                c.attrs.axis("axis", default, r, false)?;
            }
        }
    }
    Ok(())
}

/// The largest rank a rule builds from a tensor's length rather than from stored data.
const MAX_RANK: u64 = 1024;

fn flatten(c: &RuleCtx) -> Result<Outputs> {
    let Some(r) = c.rank(0) else {
        return Ok(vec![]);
    };
    // Flatten's axis ranges over [-r, r]: a negative one counts from the rank, not rank + 1.
    let a = c.attrs.axis("axis", 1, r, true)?;
    let Some(d) = c.dims(0) else {
        return Ok(vec![]);
    };
    let (outer, inner) = (c.product(&d[..a], 0)?, c.product(&d[a..], 0)?);
    Ok(one(c.dtype(0), Some(vec![outer, inner])))
}

/// Reshape to the constant `shape`: `0` copies the input's dim (unless `allowzero`), one `-1`
/// takes what is left.
fn reshape(c: &RuleCtx) -> Result<Outputs> {
    let allowzero = c.attrs.is_one("allowzero", 0)?;
    let Some(shape) = c.const_ints(1) else {
        // A shape computed at run time still fixes the rank: its own length (a length beyond
        // any real rank, from a wrong declaration, tells nothing and allocates nothing).
        return Ok(match c.dims(1).as_deref() {
            Some(&[n]) if n <= MAX_RANK => vec![(
                0,
                TensorInfo {
                    dtype: c.dtype(0),
                    dims: Some(vec![Dim::Unknown; n as usize]),
                },
            )],
            _ => vec![],
        });
    };
    if let Some(bad) = shape.iter().find(|&&s| s < -1) {
        bail!(c.attrs.error(format!(
            "the target shape {shape:?} has {bad}; only -1 (infer) and dims >= 0 are allowed"
        )));
    }
    if shape.iter().filter(|&&s| s == -1).count() > 1 {
        bail!(c
            .attrs
            .error(format!("the target shape {shape:?} has more than one -1")));
    }
    if allowzero && shape.contains(&0) && shape.contains(&-1) {
        bail!(c.attrs.error(format!(
            "the target shape {shape:?} has both 0 and -1, which `allowzero` = 1 forbids"
        )));
    }
    let Some(d) = c.dims(0) else {
        return Ok(vec![]);
    };
    let total = c.product(&d, 0)?;
    let mut out: Vec<Option<u64>> = vec![];
    for (i, &s) in shape.iter().enumerate() {
        out.push(match s {
            -1 => None,
            0 if !allowzero => match d.get(i) {
                Some(&v) => Some(v),
                // A 0 past the input's rank copies nothing: not at these sizes.
                None => return Ok(vec![]),
            },
            s => Some(s as u64),
        });
    }
    let known: Vec<u64> = out.iter().flatten().copied().collect();
    let known = c.product(&known, 0)?;
    let fits = match out.iter_mut().find(|v| v.is_none()) {
        Some(slot) if known != 0 && total.is_multiple_of(known) => {
            *slot = Some(total / known);
            true
        }
        Some(_) => false,
        None => known == total,
    };
    if !fits {
        return Err(c.mismatch(format!(
            "its input {d:?} ({total} elements) cannot take the shape {shape:?}"
        )));
    }
    Ok(one(c.dtype(0), out.into_iter().collect()))
}

/// Slice by constant `starts`, `ends`, `axes`, `steps` (inputs from opset 10, attributes
/// before), with the specification's clamping: a start or end past the axis is clamped to it,
/// so an over-large start gives an empty axis.
fn slice(c: &RuleCtx) -> Result<Outputs> {
    let attr =
        |name: &str| -> Result<Option<Vec<i64>>> { Ok(c.attrs.ints(name)?.map(<[i64]>::to_vec)) };
    let (starts, ends, axes, steps) = if c.opset < 10 {
        (attr("starts")?, attr("ends")?, attr("axes")?, None)
    } else {
        let input = |i: usize| {
            if c.op.inputs.get(i).copied().flatten().is_some() {
                c.const_ints(i).map(Some)
            } else {
                Some(None)
            }
        };
        let (Some(Some(starts)), Some(Some(ends)), Some(axes), Some(steps)) =
            (input(1), input(2), input(3), input(4))
        else {
            return Ok(vec![]);
        };
        (Some(starts), Some(ends), axes, steps)
    };
    let (Some(starts), Some(ends)) = (starts, ends) else {
        return Ok(vec![]);
    };
    let Some(rank) = c.rank(0) else {
        return Ok(vec![]);
    };
    let axes: Vec<i64> = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps: Vec<i64> = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        bail!(c.attrs.error(format!(
            "`starts` ({}), `ends` ({}), `axes` ({}) and `steps` ({}) must have one entry each per sliced axis",
            starts.len(), ends.len(), axes.len(), steps.len()
        )));
    }
    let mut resolved = vec![];
    for &a in &axes {
        let Some(a) = resolve_axis(a, rank, false) else {
            bail!(c
                .attrs
                .error(format!("axis {a} is out of range for a rank-{rank} input")));
        };
        if resolved.contains(&a) {
            bail!(c.attrs.error(format!("the axes {axes:?} repeat an axis")));
        }
        resolved.push(a);
    }
    if steps.contains(&0) {
        bail!(c.attrs.error("a step of 0 is not allowed"));
    }
    let Some(mut out) = c.dims(0) else {
        return Ok(vec![]);
    };
    for (k, &a) in resolved.iter().enumerate() {
        // i128: starts and ends may be any i64, and adding the dim must not overflow.
        let d = out[a] as i128;
        let (step, mut start, mut end) = (steps[k] as i128, starts[k] as i128, ends[k] as i128);
        if start < 0 {
            start += d;
        }
        if end < 0 {
            end += d;
        }
        let len = if d == 0 {
            0
        } else if step > 0 {
            let (start, end) = (start.clamp(0, d), end.clamp(0, d));
            (end - start + step - 1).div_euclid(step)
        } else {
            let (start, end) = (start.clamp(0, d - 1), end.clamp(-1, d - 1));
            (start - end + (-step) - 1).div_euclid(-step)
        };
        out[a] = len.max(0) as u64;
    }
    Ok(one(c.dtype(0), Some(out)))
}

fn transpose(c: &RuleCtx) -> Result<Outputs> {
    let rank = c.rank(0);
    // An explicit `perm`, empty included, is the permutation (onnx's inference reads `[]` as
    // rank 0, onnxruntime refuses it on a rank-3 input); only an absent one reverses.
    let perm = match c.attrs.ints("perm")? {
        Some(p) => p.to_vec(),
        None => match rank {
            Some(r) => (0..r as i64).rev().collect(),
            None => return Ok(vec![]),
        },
    };
    let mut seen = vec![false; perm.len()];
    for &p in &perm {
        match usize::try_from(p).ok().filter(|&p| p < perm.len()) {
            Some(p) if !seen[p] => seen[p] = true,
            _ => bail!(c.attrs.error(format!(
                "`perm` = {perm:?} is not a permutation of 0..{}",
                perm.len()
            ))),
        }
    }
    if let Some(r) = rank.filter(|&r| r != perm.len()) {
        bail!(c.attrs.error(format!(
            "`perm` = {perm:?} has {} entries, but the input has rank {r}",
            perm.len()
        )));
    }
    let Some(d) = c.dims(0) else {
        return Ok(vec![]);
    };
    Ok(one(
        c.dtype(0),
        Some(perm.iter().map(|&p| d[p as usize]).collect()),
    ))
}

fn concat(c: &RuleCtx) -> Result<Outputs> {
    // Required from opset 4; before, it defaulted to 1.
    let a = match c.attrs.int("axis")? {
        Some(a) => a,
        None if c.opset < 4 => 1,
        None => bail!(c.attrs.error("the required attribute `axis` is missing")),
    };
    let present = c.present();
    let ranks: Vec<usize> = present.iter().filter_map(|&i| c.rank(i)).collect();
    if let Some(&r) = ranks.first() {
        if ranks.iter().any(|&x| x != r) {
            bail!(c.attrs.error(format!(
                "its inputs have ranks {ranks:?}; they must be equal"
            )));
        }
        if resolve_axis(a, r, false).is_none() {
            bail!(c.attrs.error(format!(
                "`axis` = {a} is out of range for rank-{r} inputs (allowed: {}..={})",
                -(r as i64),
                r as i64 - 1
            )));
        }
    }
    let shapes: Option<Vec<Vec<u64>>> = present.iter().map(|&i| c.dims(i)).collect();
    let Some(shapes) = shapes.filter(|s| !s.is_empty()) else {
        return Ok(vec![]);
    };
    let Some(a) = resolve_axis(a, shapes[0].len(), false) else {
        return Ok(vec![]);
    };
    let mut out = shapes[0].clone();
    let mut sum = 0u64;
    for s in &shapes {
        let joined = s.iter().enumerate().all(|(i, &v)| i == a || v == out[i]);
        if !joined {
            return Err(c.mismatch(format!(
                "its inputs of shapes {} differ beyond axis {a}",
                c.shapes_text()
            )));
        }
        sum = sum.checked_add(s[a]).ok_or_else(|| {
            c.attrs.error(format!(
                "`{}` would be too large to count",
                c.output_name(0)
            ))
        })?;
    }
    out[a] = sum;
    Ok(one(c.dtype(0), Some(out)))
}

fn squeeze(c: &RuleCtx, squeeze: bool) -> Result<Outputs> {
    let Some(r) = c.rank(0) else {
        return Ok(vec![]);
    };
    let Some(axes) = c.axes()? else {
        return Ok(vec![]);
    };
    // Unsqueeze's axes index the output, whose rank grows by their number.
    let out_rank = if squeeze {
        r
    } else {
        r + axes.as_ref().map_or(0, Vec::len)
    };
    let axes: Option<Vec<usize>> = match axes {
        Some(a) if !a.is_empty() => {
            let mut resolved = vec![];
            for &x in &a {
                let Some(i) = resolve_axis(x, out_rank, false) else {
                    bail!(c.attrs.error(format!(
                        "axis {x} in `axes` {a:?} is out of range for rank {out_rank}"
                    )));
                };
                if resolved.contains(&i) {
                    bail!(c.attrs.error(format!("`axes` {a:?} repeats an axis")));
                }
                resolved.push(i);
            }
            Some(resolved)
        }
        _ if squeeze => None,
        _ => bail!(c.attrs.error("Unsqueeze needs `axes`")),
    };
    let Some(d) = c.dims(0) else {
        return Ok(vec![]);
    };
    let out = if squeeze {
        match axes {
            Some(a) => d
                .iter()
                .enumerate()
                .filter(|(i, _)| !a.contains(i))
                .map(|(_, &v)| v)
                .collect(),
            None => d.iter().copied().filter(|&v| v != 1).collect(),
        }
    } else {
        let a = axes.unwrap_or_default();
        let mut rest = d.iter();
        (0..out_rank)
            .map(|i| {
                if a.contains(&i) {
                    1
                } else {
                    rest.next().copied().unwrap_or(1)
                }
            })
            .collect()
    };
    Ok(one(c.dtype(0), Some(out)))
}

fn constant(c: &RuleCtx) -> Result<Outputs> {
    let Some(a) = c.node.attribute.first() else {
        return Ok(vec![]);
    };
    let count = |n: usize| vec![n as u64];
    let info = match a.name.as_str() {
        "value" => {
            let Some(t) = a.t.as_ref() else {
                return Ok(vec![]);
            };
            if let Some(bad) = t.dims.iter().find(|&&d| d < 0) {
                bail!(c.attrs.error(format!(
                    "its `value` has dims {:?}, with a negative {bad}",
                    t.dims
                )));
            }
            TensorInfo::new(
                DType(t.data_type),
                t.dims.iter().map(|&d| d as u64).collect(),
            )
        }
        "value_float" => TensorInfo::new(DType::FLOAT, vec![]),
        "value_floats" => TensorInfo::new(DType::FLOAT, count(a.floats.len())),
        "value_int" => TensorInfo::new(DType::INT64, vec![]),
        "value_ints" => TensorInfo::new(DType::INT64, count(a.ints.len())),
        "value_string" => TensorInfo::new(DType::STRING, vec![]),
        "value_strings" => TensorInfo::new(DType::STRING, count(a.strings.len())),
        _ => return Ok(vec![]),
    };
    Ok(vec![(0, info)])
}
