//! FLOP rules, one file per op family (the families of [`crate::ops`], the layout of tract's
//! `onnx/src/ops`).
//!
//! Each family file says how it counts the work of its ops; [`rule_for`] finds an op's family.
//! Ops of no family are [`OpClass::Other`] and estimated at one operation per output element.
//! Counts use checked arithmetic: one beyond 64 bits is an error naming the node.

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
use crate::ops::{family, Family};
use anyhow::Result;

/// A kind of an op that runs differently enough (another kernel) to have its own regression in
/// a measured profile, under `op:<name>`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Variant {
    /// A pointwise convolution ([`conv`]).
    Conv1x1,
    /// One input channel per group, as many groups as channels.
    ConvDepthwise,
    /// tract's direct spatial convolution.
    ConvDirect,
    /// A first layer: im2col with at most 4 input channels, a thin product.
    ConvThin,
    /// An elementwise op broadcasting a constant of lower rank, element by element.
    Broadcast,
    /// A reduction over the whole map.
    GlobalPool,
    /// A GRU with `linear_before_reset` (as PyTorch exports it), one fused sequence kernel.
    GruLinearBeforeReset,
    /// A transpose of whole rows: the innermost axis stays in place ([`movement`]).
    TransposeRows,
}

impl Variant {
    /// The name in a profile's regression key.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Conv1x1 => "Conv1x1",
            Variant::ConvDepthwise => "ConvDepthwise",
            Variant::ConvDirect => "ConvDirect",
            Variant::ConvThin => "ConvThin",
            Variant::Broadcast => "Broadcast",
            Variant::GlobalPool => "GlobalPool",
            Variant::GruLinearBeforeReset => "GRULinearBeforeReset",
            Variant::TransposeRows => "TransposeRows",
        }
    }

    /// The profile's regression key: `op:<name>`.
    pub fn key(self) -> String {
        format!("op:{}", self.name())
    }
}

/// The work a node does, as a FLOP rule counts it.
#[derive(Clone, Debug, Default)]
pub struct Work {
    pub flops: Option<u64>,
    pub macs: Option<u64>,
    pub note: Option<String>,
    /// A kind of the op that runs differently enough to have its own regression in a profile
    /// (`op:<variant>`), e.g. `Conv1x1`.
    pub variant: Option<Variant>,
    /// Elements of the input patches a convolution multiplies (its im2col matrix).
    pub patches: Option<u64>,
    /// Steps a recurrent op takes one after another (sequence length x directions).
    pub steps: Option<u64>,
    /// The op only gives its input another shape: no time of its own ([`movement::VIEWS`]).
    pub view: bool,
}

impl Work {
    /// Work made of multiply-accumulates: FLOPs = 2 x MACs.
    pub fn macs(c: &NodeCtx, macs: Option<u64>) -> Result<Work> {
        Ok(Work {
            flops: macs.map(|m| times(c, m, 2)).transpose()?,
            macs,
            ..Work::default()
        })
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
    pub work: fn(&NodeCtx) -> Result<Work>,
}

/// The rule for an op, by domain and type.
pub fn rule_for(domain: &str, op_type: &str) -> Rule {
    let rule = match family(domain, op_type) {
        Some(Family::Conv) => conv::rule(op_type),
        Some(Family::Matmul) => matmul::rule(op_type),
        Some(Family::Pool) => pool::rule(op_type),
        Some(Family::Norm) => norm::rule(op_type),
        Some(Family::Softmax) => softmax::rule(op_type),
        Some(Family::Recurrent) => recurrent::rule(op_type),
        Some(Family::Elementwise) | Some(Family::Activation) => elementwise::rule(op_type),
        Some(Family::Movement) => movement::rule(op_type),
        Some(Family::Control) => control::rule(op_type),
        None => None,
    };
    rule.unwrap_or(Rule {
        class: OpClass::Other,
        work: |ctx| Ok(Work::flops(per_output_element(ctx, 1)?)),
    })
}

/// `k` operations per element of the first output.
pub fn per_output_element(ctx: &NodeCtx, k: u64) -> Result<Option<u64>> {
    ctx.output_elements().map(|e| times(ctx, e, k)).transpose()
}

/// `a * b`, or an error naming the node where the count exceeds 64 bits.
pub fn times(c: &NodeCtx, a: u64, b: u64) -> Result<u64> {
    a.checked_mul(b).ok_or_else(|| {
        c.attrs
            .error("its operation count exceeds 64 bits; is a dimension wrong?")
    })
}

/// The product of `values`, checked as [`times`].
pub fn product(c: &NodeCtx, values: &[u64]) -> Result<u64> {
    values.iter().try_fold(1, |acc, &v| times(c, acc, v))
}
