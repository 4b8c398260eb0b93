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

/// Output elements x weights per output channel; `w_input` is the position of `W`. Patches:
/// every output point of every group reads `W`'s per-output-channel count of inputs.
fn conv_macs(c: &NodeCtx, w_input: usize) -> Work {
    let w = c.input_dims(w_input);
    let group = c.attr_i("group").unwrap_or(1).max(1) as u64;
    let macs = c
        .output_elements()
        .zip(w.as_ref())
        .map(|(out, w)| out * w[1..].iter().product::<u64>());
    Work {
        variant: w.as_ref().and_then(|w| variant(c, w)),
        patches: macs
            .zip(w.as_ref())
            .filter(|(_, w)| w[0] > 0)
            .map(|(m, w)| m / w[0] * group),
        ..Work::macs(macs)
    }
}

/// Convolutions a runtime runs with a different kernel than im2col + matrix product, each with
/// its own regression in a measured profile. The rules are tract's (the runtime profiles are
/// measured with):
/// - `ConvDepthwise`: one input channel per group and as many groups as channels; a per-channel
///   stencil, memory-bound.
/// - `Conv1x1`: pointwise, a matrix product with little reuse per input element.
/// - `ConvDirect`: tract's direct spatial convolution, taken for group-1 2-D convolutions with at
///   least two taps, at most 576 inputs per output point, output channels a multiple of 4 and
///   input and output rows of at least 128 points; it runs at a fraction of im2col's rate.
fn variant(c: &NodeCtx, w: &[u64]) -> Option<&'static str> {
    if w.len() < 3 {
        return None;
    }
    let group = c.attr_i("group").unwrap_or(1).max(1) as u64;
    let taps: u64 = w[2..].iter().product();
    if group > 1 && w[1] == 1 && w[0] == group {
        return Some("ConvDepthwise");
    }
    if taps == 1 {
        return Some("Conv1x1");
    }
    let rows = |d: Option<Vec<u64>>| d.and_then(|d| d.last().copied()).unwrap_or(0);
    let direct = group == 1
        && w.len() == 4
        && w[1] * taps <= 576
        && w[0].is_multiple_of(4)
        && rows(c.input_dims(0)) >= 128
        && rows(c.output_dims(0)) >= 128;
    direct.then_some("ConvDirect")
}
