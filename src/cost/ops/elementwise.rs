//! Elementwise arithmetic and activations.
//!
//! Operations per output element: arithmetic, comparisons and logic 1 (Sum/Max/Min/Mean of n
//! inputs: n - 1); activations by their usual cost: piecewise-linear ones (Relu, LeakyRelu, PRelu,
//! Clip, HardSigmoid, HardSwish) 1-3, transcendental ones (Sigmoid, Tanh, Exp, Log, Erf, Softplus,
//! Elu, Selu, ...) 4, Gelu 8.

use super::{per_output_element, Rule, Work};
use crate::cost::{NodeCtx, OpClass};

const ARITHMETIC: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Mod",
    "Neg",
    "Abs",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Sqrt",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "And",
    "Or",
    "Xor",
    "Not",
    "Where",
    "BitShift",
    "BitwiseAnd",
    "BitwiseOr",
    "BitwiseXor",
    "BitwiseNot",
    "IsNaN",
    "IsInf",
    "CumSum",
    "Einsum",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Acosh",
    "Atanh",
    "Exp",
    "Log",
    "Erf",
    "Scaler",
    "Binarizer",
    "Normalizer",
];
const VARIADIC: &[&str] = &["Sum", "Max", "Min", "Mean"];

/// Activation functions and their operations per element.
const ACTIVATIONS: &[(&str, u64)] = &[
    ("Relu", 1),
    ("LeakyRelu", 2),
    ("PRelu", 2),
    ("ThresholdedRelu", 1),
    ("Clip", 2),
    ("HardSigmoid", 3),
    ("HardSwish", 3),
    ("Shrink", 2),
    ("Softsign", 3),
    ("Sigmoid", 4),
    ("Tanh", 4),
    ("Softplus", 4),
    ("Elu", 4),
    ("Selu", 4),
    ("Celu", 4),
    ("Mish", 8),
    ("Gelu", 8),
    ("FastGelu", 8),
    ("BiasGelu", 8),
    ("QuickGelu", 5),
];

pub fn rule(_domain: &str, op: &str) -> Option<Rule> {
    if ACTIVATIONS.iter().any(|(name, _)| *name == op) {
        return Some(Rule {
            class: OpClass::Activation,
            work: activation_work,
        });
    }
    if VARIADIC.contains(&op) {
        return Some(Rule {
            class: OpClass::Elementwise,
            work: |c| {
                let n = c.op.inputs.iter().flatten().count().max(2) as u64;
                Work::flops(per_output_element(c, n - 1))
            },
        });
    }
    ARITHMETIC.contains(&op).then_some(Rule {
        class: OpClass::Elementwise,
        work: |c| Work {
            variant: broadcast(c).then_some("Broadcast"),
            ..Work::flops(per_output_element(c, 1))
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
        if d.iter().product::<u64>() == 1 {
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

/// A rule is a plain `fn`, so the per-element cost is looked up by op type when evaluated.
fn activation_work(c: &NodeCtx) -> Work {
    let k = ACTIVATIONS
        .iter()
        .find(|(name, _)| *name == c.op.op_type)
        .map_or(1, |&(_, k)| k);
    Work::flops(per_output_element(c, k))
}
