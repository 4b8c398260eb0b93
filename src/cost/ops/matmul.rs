//! Gemm and MatMul (and their integer / quantised forms).
//!
//! MACs = output elements x K, the reduced dimension: Gemm's `A` is `[M, K]` (or `[K, M]` with
//! `transA`), MatMul's `A` is `[..., M, K]` (a vector `[K]` when rank 1). Gemm's `alpha`/`beta`
//! scaling and `C` addition are not counted.

use super::{Rule, Work};
use crate::cost::{NodeCtx, OpClass};

pub fn rule(_domain: &str, op: &str) -> Option<Rule> {
    let work: fn(&NodeCtx) -> Work = match op {
        "Gemm" => |c| {
            let k = c.input_dims(0).and_then(|a| {
                if c.attr_i("transA") == Some(1) {
                    a.first().copied()
                } else {
                    a.get(1).copied()
                }
            });
            Work::macs(c.output_elements().zip(k).map(|(o, k)| o * k))
        },
        "MatMul" | "MatMulInteger" | "FusedMatMul" => |c| matmul_macs(c, 0),
        "QLinearMatMul" => |c| matmul_macs(c, 0),
        _ => return None,
    };
    Some(Rule {
        class: OpClass::Matmul,
        work,
    })
}

fn matmul_macs(c: &NodeCtx, a_input: usize) -> Work {
    let k = c.input_dims(a_input).and_then(|a| a.last().copied());
    Work::macs(c.output_elements().zip(k).map(|(o, k)| o * k))
}
