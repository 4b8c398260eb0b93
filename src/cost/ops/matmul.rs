//! Gemm and MatMul (and their integer / quantised forms).
//!
//! MACs = output elements x K, the reduced dimension: Gemm's `A` is `[M, K]` (or `[K, M]` with
//! `transA`), MatMul's `A` is `[..., M, K]` (a vector `[K]` when rank 1). Gemm's `alpha`/`beta`
//! scaling and `C` addition are not counted.

use super::{times, Rule, Work};
use crate::cost::{NodeCtx, OpClass};
use anyhow::Result;

pub fn rule(op: &str) -> Option<Rule> {
    let work: fn(&NodeCtx) -> Result<Work> = match op {
        "Gemm" => |c| {
            let trans_a = c.attrs.flag("transA", false)?;
            let k = c.input_dims(0).and_then(|a| {
                if trans_a {
                    a.first().copied()
                } else {
                    a.get(1).copied()
                }
            });
            macs(c, k)
        },
        _ => |c| macs(c, c.input_dims(0).and_then(|a| a.last().copied())),
    };
    Some(Rule {
        class: OpClass::Matmul,
        work,
    })
}

/// Output elements x `k`.
fn macs(c: &NodeCtx, k: Option<u64>) -> Result<Work> {
    let macs = match (c.output_elements(), k) {
        (Some(o), Some(k)) => Some(times(c, o, k)?),
        _ => None,
    };
    Work::macs(c, macs)
}
