//! Elementwise arithmetic and activations.
//!
//! Operations per output element: arithmetic, comparisons and logic 1 (Sum/Max/Min/Mean of n
//! inputs: n - 1); activations by their usual cost: piecewise-linear ones (Relu, LeakyRelu, PRelu,
//! Clip, HardSigmoid, HardSwish) 1-3, transcendental ones (Sigmoid, Tanh, Exp, Log, Erf, Softplus,
//! Elu, Selu, ...) 4, Gelu 8.

use super::{per_output_element, Rule, Variant, Work};
use crate::cost::{NodeCtx, OpClass};
use crate::ops::{ACTIVATION, VARIADIC};

/// Operations per element of an activation.
fn activation_cost(op: &str) -> u64 {
    match op {
        "Relu" | "ThresholdedRelu" => 1,
        "LeakyRelu" | "PRelu" | "Clip" | "Shrink" => 2,
        "HardSigmoid" | "HardSwish" | "Softsign" => 3,
        "QuickGelu" => 5,
        "Mish" | "Gelu" | "FastGelu" | "BiasGelu" => 8,
        // Sigmoid, Tanh, Softplus, Elu, Selu, Celu: transcendental.
        _ => 4,
    }
}

pub fn rule(op: &str) -> Option<Rule> {
    if ACTIVATION.contains(&op) {
        return Some(Rule {
            class: OpClass::Activation,
            work: |c| {
                Ok(Work::flops(per_output_element(
                    c,
                    activation_cost(&c.op.op_type),
                )?))
            },
        });
    }
    if VARIADIC.contains(&op) {
        return Some(Rule {
            class: OpClass::Elementwise,
            work: |c| {
                let n = c.op.inputs.iter().flatten().count().max(2) as u64;
                Ok(Work::flops(per_output_element(c, n - 1)?))
            },
        });
    }
    Some(Rule {
        class: OpClass::Elementwise,
        work: |c| {
            Ok(Work {
                variant: broadcast(c).then_some(Variant::Broadcast),
                ..Work::flops(per_output_element(c, 1)?)
            })
        },
    })
}

/// An operand that must be broadcast element by element: not a single value, and, at the output's
/// rank, neither the output's shape nor a per-axis constant (`[1, C, 1, 1]`); at a lower rank, not
/// the output's trailing dims (`[C]` against `[N, C]`). tract runs these (e.g. a `[C, 1, 1]`
/// scale, as exported BatchNormalizations often are) on a generic path up to 8x slower per
/// element: the variant `Broadcast` has its own regression in a measured profile.
fn broadcast(c: &NodeCtx) -> bool {
    let Some(out) = c.output_dims(0) else {
        return false;
    };
    (0..c.op.inputs.len()).any(|i| {
        let Some(d) = c.input_dims(i) else {
            return false;
        };
        if d.iter().all(|&x| x == 1) {
            return false;
        }
        if d.len() == out.len() {
            // Equal leading axes (a batch of one against any batch counts as equal), then ones.
            let per_axis = d
                .iter()
                .zip(&out)
                .enumerate()
                .skip_while(|(i, (a, b))| a == b || (*i == 0 && **a == 1))
                .all(|(_, (a, _))| *a == 1);
            return !per_axis;
        }
        let mut trimmed = d.as_slice();
        while trimmed.len() > 1 && trimmed[0] == 1 {
            trimmed = &trimmed[1..];
        }
        !out.ends_with(trimmed)
    })
}
