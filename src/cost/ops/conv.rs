//! Convolutions: Conv, ConvInteger, QLinearConv, ConvTranspose (and the fused and NHWC forms).
//!
//! MACs = output elements x (input channels per group x kernel size), i.e. every output value is
//! one dot product over its receptive field; `W` is `[Cout, Cin/group, k...]`, so the per-output
//! term is `W`'s element count / `Cout`. ConvTranspose scatters instead: MACs = input elements x
//! (`W`'s element count / `Cin`). Bias additions are not counted (one per output, negligible).

use super::{product, times, Rule, Variant, Work};
use crate::cost::{NodeCtx, OpClass};
use anyhow::Result;

pub fn rule(op: &str) -> Option<Rule> {
    let work: fn(&NodeCtx) -> Result<Work> = match op {
        "QLinearConv" => |c| conv_macs(c, 3),
        "ConvTranspose" => |c| {
            let macs = match (c.input_elements(0), c.input_dims(1)) {
                (Some(x), Some(w)) if !w.is_empty() => Some(times(c, x, product(c, &w[1..])?)?),
                _ => None,
            };
            Work::macs(c, macs)
        },
        _ => |c| conv_macs(c, 1),
    };
    Some(Rule {
        class: OpClass::Conv,
        work,
    })
}

/// Output elements x weights per output channel; `w_input` is the position of `W`. Patches:
/// every output point of every group reads `W`'s per-output-channel count of inputs.
fn conv_macs(c: &NodeCtx, w_input: usize) -> Result<Work> {
    let w = c.input_dims(w_input).filter(|w| !w.is_empty());
    let group = c.attrs.positive_int("group", 1)?;
    let macs = match (c.output_elements(), w.as_ref()) {
        (Some(out), Some(w)) => Some(times(c, out, product(c, &w[1..])?)?),
        _ => None,
    };
    let patches = match (macs, w.as_ref()) {
        (Some(m), Some(w)) if w[0] > 0 => Some(times(c, m / w[0], group)?),
        _ => None,
    };
    Ok(Work {
        variant: w.as_ref().and_then(|w| variant(c, w, group)),
        patches,
        ..Work::macs(c, macs)?
    })
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
/// - `ConvThin`: other group-1 convolutions of at most 4 input channels (first layers): im2col
///   into a product only `Cin x k x k` deep, whose time goes to the patches and the wide output;
///   fitted with the larger convs they were under-predicted by 25-40% (docs/accuracy.md).
fn variant(c: &NodeCtx, w: &[u64], group: u64) -> Option<Variant> {
    if w.len() < 3 {
        return None;
    }
    let taps = w[2..].iter().try_fold(1u64, |a, &b| a.checked_mul(b))?;
    if group > 1 && w[1] == 1 && w[0] == group {
        return Some(Variant::ConvDepthwise);
    }
    if taps == 1 {
        return Some(Variant::Conv1x1);
    }
    let rows = |d: Option<Vec<u64>>| d.and_then(|d| d.last().copied()).unwrap_or(0);
    let direct = group == 1
        && w.len() == 4
        && w[1].checked_mul(taps).is_some_and(|n| n <= 576)
        && w[0].is_multiple_of(4)
        && rows(c.input_dims(0)) >= 128
        && rows(c.output_dims(0)) >= 128;
    if direct {
        return Some(Variant::ConvDirect);
    }
    (group == 1 && w.len() == 4 && w[1] <= 4).then_some(Variant::ConvThin)
}
