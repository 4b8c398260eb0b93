//! Recurrent cells: LSTM, GRU, RNN.
//!
//! MACs = sequence length x batch x directions x gates x hidden x (input size + hidden), the
//! input and recurrent matrix products of every step (gates: LSTM 4, GRU 3, RNN 1). Gate
//! activations and the cell update (a few operations per hidden unit per step) are not counted.
//! Steps = sequence length x directions: the products run one step after another, and each
//! step has a cost of its own that the FLOPs do not show.

use super::{product, Rule, Variant, Work};
use crate::cost::{NodeCtx, OpClass};
use anyhow::Result;

pub fn rule(op: &str) -> Option<Rule> {
    let work: fn(&NodeCtx) -> Result<Work> = match op {
        "LSTM" => |c| cell_macs(c, 4),
        // tract runs a GRU that applies the linear transformation before the reset gate (as
        // PyTorch exports every GRU) as one fused sequence kernel, far faster than the scan of
        // cell ops it runs the others as: a variant with its own regression.
        "GRU" => |c| {
            Ok(Work {
                variant: c
                    .attrs
                    .flag("linear_before_reset", false)?
                    .then_some(Variant::GruLinearBeforeReset),
                ..cell_macs(c, 3)?
            })
        },
        _ => |c| cell_macs(c, 1),
    };
    Some(Rule {
        class: OpClass::Recurrent,
        work,
    })
}

fn cell_macs(c: &NodeCtx, gates: u64) -> Result<Work> {
    let dirs = match c.attrs.string("direction")?.as_deref() {
        Some("bidirectional") => 2,
        _ => 1,
    };
    let hidden = c.attrs.int("hidden_size")?;
    // `layout` 1 puts the batch first: [batch, seq, input].
    let batch_first = c.attrs.int("layout")? == Some(1);
    let (macs, steps) = match (c.input_dims(0).as_deref(), hidden) {
        (Some(&[a, b, input]), Some(h)) => {
            let h = c.attrs.positive_int("hidden_size", h)?;
            let width = input.saturating_add(h);
            let seq = if batch_first { b } else { a };
            (
                Some(product(c, &[a, b, dirs, gates, h, width])?),
                Some(product(c, &[seq, dirs])?),
            )
        }
        _ => (None, None),
    };
    // Each step is a small matrix product and the gates, in turn: on tract a step of a
    // 32-unit LSTM costs about as much as one of an 8-unit one, and a regression on FLOPs and
    // bytes alone missed the grid's own LSTMs by 30% on average (docs/profiles.md).
    Ok(Work {
        steps,
        ..Work::macs(c, macs)?
    })
}
