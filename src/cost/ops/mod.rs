//! FLOP rules, one file per op family (the layout of tract's `onnx/src/ops`).
//!
//! Each family file lists the ops it covers and says how it counts their work; [`rule_for`] finds
//! the family of an op. Ops of no family are [`OpClass::Other`] and estimated at one operation per
//! output element.

pub mod control;
pub mod conv;
pub mod elementwise;
pub mod matmul;
pub mod movement;
pub mod norm;
pub mod pool;
pub mod recurrent;
pub mod softmax;

use super::{NodeCtx, OpClass};

/// The work a node does, as a FLOP rule counts it.
#[derive(Clone, Debug, Default)]
pub struct Work {
    pub flops: Option<u64>,
    pub macs: Option<u64>,
    pub note: Option<String>,
    /// A kind of the op that runs differently enough to have its own regression in a profile
    /// (`op:<variant>`), e.g. `Conv1x1`.
    pub variant: Option<&'static str>,
    /// Elements of the input patches a convolution multiplies (its im2col matrix).
    pub patches: Option<u64>,
}

impl Work {
    /// Work made of multiply-accumulates: FLOPs = 2 x MACs.
    pub fn macs(macs: Option<u64>) -> Work {
        Work {
            flops: macs.map(|m| 2 * m),
            macs,
            ..Work::default()
        }
    }
    pub fn flops(flops: Option<u64>) -> Work {
        Work {
            flops,
            ..Work::default()
        }
    }
}

/// How one op is classified and counted.
#[derive(Copy, Clone)]
pub struct Rule {
    pub class: OpClass,
    pub work: fn(&NodeCtx) -> Work,
}

/// Families in lookup order. Each entry: (ops it covers, its rule lookup).
const FAMILIES: &[fn(&str, &str) -> Option<Rule>] = &[
    conv::rule,
    matmul::rule,
    pool::rule,
    norm::rule,
    softmax::rule,
    recurrent::rule,
    elementwise::rule,
    movement::rule,
    control::rule,
];

/// The rule for an op, by domain and type.
pub fn rule_for(domain: &str, op_type: &str) -> Rule {
    FAMILIES
        .iter()
        .find_map(|family| family(domain, op_type))
        .unwrap_or(Rule {
            class: OpClass::Other,
            work: |ctx| Work::flops(per_output_element(ctx, 1)),
        })
}

/// `k` operations per element of the first output.
pub fn per_output_element(ctx: &NodeCtx, k: u64) -> Option<u64> {
    ctx.output_elements().map(|e| e * k)
}
