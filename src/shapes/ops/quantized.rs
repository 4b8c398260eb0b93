//! Quantization, as onnxruntime's quantizer writes it: QuantizeLinear / DequantizeLinear /
//! DynamicQuantizeLinear at the edges (QDQ and dynamic models), and the QOperator ops that
//! compute on the quantized values (QLinearConv and QLinearMatMul in the default domain, and
//! com.microsoft's QLinearAdd, QLinearMul, QLinearSoftmax, QLinearSigmoid, QLinearLeakyRelu,
//! QLinearAveragePool and QLinearGlobalAveragePool). Each QOperator op's output has the type of
//! its output zero point and the shape its float counterpart gives.

use super::{broadcast, one, Outputs, RuleCtx};
use crate::ops::Window;
use crate::tensor::{DType, TensorInfo};
use anyhow::Result;

/// Whether [`infer`] has a rule for this op.
pub fn handles(domain: &str, op: &str) -> bool {
    match domain {
        "" | "ai.onnx" => matches!(
            op,
            "QuantizeLinear" | "DequantizeLinear" | "DynamicQuantizeLinear" | "QLinearMatMul"
        ),
        "com.microsoft" => matches!(
            op,
            "QLinearAdd"
                | "QLinearMul"
                | "QLinearSoftmax"
                | "QLinearSigmoid"
                | "QLinearLeakyRelu"
                | "QLinearAveragePool"
                | "QLinearGlobalAveragePool"
        ),
        _ => false,
    }
}

pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    match c.op.op_type.as_str() {
        // y has x's shape and its zero point's type (uint8 without one; opset 21's
        // `output_dtype` where set).
        "QuantizeLinear" => {
            // Without a zero point, the attribute's type or uint8; with one, its type once known.
            let has_zero_point = c.op.inputs.get(2).is_some_and(Option::is_some);
            let dt = if has_zero_point {
                c.dtype(2)
            } else {
                let attr = c
                    .attrs
                    .int("output_dtype")
                    .ok()
                    .flatten()
                    .filter(|&t| t != 0);
                Some(attr.map_or(DType::UINT8, |t| DType(t as i32)))
            };
            Ok(one(dt, c.dims(0)))
        }
        // x's shape, the scale's type.
        "DequantizeLinear" => Ok(one(c.dtype(1), c.dims(0))),
        "DynamicQuantizeLinear" => {
            let Some(x) = c.dims(0) else {
                return Ok(vec![]);
            };
            Ok(vec![
                (0, TensorInfo::new(DType::UINT8, x)),
                (1, TensorInfo::new(DType::FLOAT, vec![])),
                (2, TensorInfo::new(DType::UINT8, vec![])),
            ])
        }
        "QLinearMatMul" => {
            let (Some(a), Some(b)) = (c.dims(0), c.dims(3)) else {
                return Ok(vec![]);
            };
            let Some(out) = super::matmul::matmul(a, b) else {
                return Err(c.mismatch(format!(
                    "its inputs of shapes {} cannot be multiplied",
                    c.shapes_text()
                )));
            };
            Ok(one(c.dtype(7).or(c.dtype(0)), Some(out)))
        }
        // A, its scale and zero point, B, its scale and zero point, C's scale and zero point.
        "QLinearAdd" | "QLinearMul" => {
            let (Some(a), Some(b)) = (c.dims(0), c.dims(3)) else {
                return Ok(vec![]);
            };
            let Some(out) = broadcast(&[a, b]) else {
                return Err(c.mismatch(format!(
                    "its inputs of shapes {} do not broadcast",
                    c.shapes_text()
                )));
            };
            Ok(one(c.dtype(0), Some(out)))
        }
        "QLinearSoftmax" | "QLinearSigmoid" | "QLinearLeakyRelu" => Ok(one(c.dtype(0), c.dims(0))),
        "QLinearGlobalAveragePool" => {
            let channels_last = c.attrs.int("channels_last").ok().flatten() == Some(1);
            Ok(one(
                c.dtype(0),
                c.dims(0).map(|d| {
                    let keep = |i: usize| {
                        if channels_last {
                            i == 0 || i == d.len() - 1
                        } else {
                            i < 2
                        }
                    };
                    d.iter()
                        .enumerate()
                        .map(|(i, &v)| if keep(i) { v } else { 1 })
                        .collect()
                }),
            ))
        }
        "QLinearAveragePool" => {
            if c.attrs.int("channels_last").ok().flatten() == Some(1) {
                return Ok(vec![]);
            }
            let rank = c.rank(0);
            let window = Window::parse(&c.attrs, rank.map(|r| r.saturating_sub(2)))?;
            let (Some(kernel), Some(x)) = (window.kernel.clone(), c.dims(0)) else {
                return Ok(vec![]);
            };
            if x.len() < 3 {
                return Ok(vec![]);
            }
            let Some(spatial) = window.output(&c.attrs, &x[2..], &kernel)? else {
                return Err(c.mismatch(format!(
                    "its window {kernel:?} does not fit the input {x:?} with its padding"
                )));
            };
            Ok(one(c.dtype(0), Some([x[..2].to_vec(), spatial].concat())))
        }
        _ => Ok(vec![]),
    }
}
