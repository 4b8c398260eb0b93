//! Recurrent cells: LSTM, GRU, RNN.
//!
//! MACs = sequence length x batch x directions x gates x hidden x (input size + hidden), the
//! input and recurrent matrix products of every step (gates: LSTM 4, GRU 3, RNN 1). Gate
//! activations and the cell update (a few operations per hidden unit per step) are not counted.

use super::{Rule, Work};
use crate::cost::{NodeCtx, OpClass};

pub fn rule(_domain: &str, op: &str) -> Option<Rule> {
    let work: fn(&NodeCtx) -> Work = match op {
        "LSTM" => |c| cell_macs(c, 4),
        // tract runs a GRU that applies the linear transformation before the reset gate (as
        // PyTorch exports every GRU) as one fused sequence kernel, far faster than the scan of
        // cell ops it runs the others as: a variant with its own regression.
        "GRU" => |c| Work {
            variant: (c.attr_i("linear_before_reset") == Some(1)).then_some("GRULinearBeforeReset"),
            ..cell_macs(c, 3)
        },
        "RNN" => |c| cell_macs(c, 1),
        _ => return None,
    };
    Some(Rule {
        class: OpClass::Recurrent,
        work,
    })
}

fn cell_macs(c: &NodeCtx, gates: u64) -> Work {
    let macs = (|| {
        let x = c.input_dims(0)?;
        let hidden = c.attr_i("hidden_size")? as u64;
        let dirs = if c.attr_s("direction").as_deref() == Some("bidirectional") {
            2
        } else {
            1
        };
        let [a, b, input] = x[..] else { return None };
        Some(a * b * dirs * gates * hidden * (input + hidden))
    })();
    Work::macs(macs)
}
