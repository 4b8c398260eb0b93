//! Convolutions: Conv, ConvInteger, QLinearConv, ConvTranspose.
//!
//! MACs = output elements x (input channels per group x kernel size), i.e. every output value is
//! one dot product over its receptive field; `W` is `[Cout, Cin/group, k...]`, so the per-output
//! term is `W`'s element count / `Cout`. ConvTranspose scatters instead: MACs = input elements x
//! (`W`'s element count / `Cin`). Bias additions are not counted (one per output, negligible).

use super::{Rule, Work};
use crate::cost::{NodeCtx, OpClass};

pub fn rule(_domain: &str, op: &str) -> Option<Rule> {
    let work: fn(&NodeCtx) -> Work = match op {
        "Conv" | "ConvInteger" | "DeformConv" | "NhwcConv" | "FusedConv" => |c| conv_macs(c, 1),
        "QLinearConv" => |c| conv_macs(c, 3),
        "ConvTranspose" => |c| {
            let w = c.input_dims(1);
            Work::macs(
                c.input_elements(0)
                    .zip(w)
                    .map(|(x, w)| x * w[1..].iter().product::<u64>()),
            )
        },
        _ => return None,
    };
    Some(Rule {
        class: OpClass::Conv,
        work,
    })
}

/// Output elements x weights per output channel; `w_input` is the position of `W`. A pointwise
/// (1x1) convolution is a matrix product with little reuse per input element, so it is the
/// variant `Conv1x1` (its own regression in a measured profile).
fn conv_macs(c: &NodeCtx, w_input: usize) -> Work {
    let w = c.input_dims(w_input);
    let pointwise = w
        .as_ref()
        .is_some_and(|w| w.len() > 2 && w[2..].iter().all(|&k| k == 1));
    Work {
        variant: pointwise.then_some("Conv1x1"),
        ..Work::macs(
            c.output_elements()
                .zip(w)
                .map(|(out, w)| out * w[1..].iter().product::<u64>()),
        )
    }
}
