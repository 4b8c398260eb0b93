//! Gemm and MatMul: `[M, K] x [K, N] -> [M, N]`, MatMul with numpy batch broadcasting and
//! rank-1 operands promoted and then dropped.

use super::{broadcast, one, Outputs, RuleCtx};
use crate::tensor::DType;
use anyhow::Result;

pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    match c.op.op_type.as_str() {
        "Gemm" => {
            let trans_a = c.attrs.flag("transA", false)?;
            let trans_b = c.attrs.flag("transB", false)?;
            let (Some(a), Some(b)) = (c.dims(0), c.dims(1)) else {
                return Ok(vec![]);
            };
            let (&[a0, a1], &[b0, b1]) = (&a[..], &b[..]) else {
                return Ok(vec![]);
            };
            let (m, k) = if trans_a { (a1, a0) } else { (a0, a1) };
            let (kb, n) = if trans_b { (b1, b0) } else { (b0, b1) };
            if k != kb {
                return Err(c.mismatch(format!(
                    "`A` {a:?} and `B` {b:?} do not share their inner dimension ({k} vs {kb})"
                )));
            }
            Ok(one(c.dtype(0), Some(vec![m, n])))
        }
        "MatMul" | "FusedMatMul" | "MatMulInteger" => {
            let (Some(a), Some(b)) = (c.dims(0), c.dims(1)) else {
                return Ok(vec![]);
            };
            let Some(out) = matmul(a, b) else {
                return Err(c.mismatch(format!(
                    "its inputs of shapes {} cannot be multiplied",
                    c.shapes_text()
                )));
            };
            let dt = if c.op.op_type == "MatMulInteger" {
                Some(DType::INT32)
            } else {
                c.dtype(0)
            };
            Ok(one(dt, Some(out)))
        }
        _ => Ok(vec![]),
    }
}

/// numpy matmul's shape rule; `None` where the shapes do not multiply.
pub(super) fn matmul(mut a: Vec<u64>, mut b: Vec<u64>) -> Option<Vec<u64>> {
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
