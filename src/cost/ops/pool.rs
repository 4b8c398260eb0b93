//! Pooling and reductions.
//!
//! Windowed pooling (MaxPool, AveragePool, LpPool): one operation per window element per output,
//! output elements x kernel size. Global pooling and Reduce*/ArgMax/ArgMin: one operation per
//! input element.

use super::{Rule, Work};
use crate::cost::{NodeCtx, OpClass};

pub fn rule(_domain: &str, op: &str) -> Option<Rule> {
    let work: fn(&NodeCtx) -> Work = match op {
        "MaxPool" | "AveragePool" | "LpPool" | "MaxRoiPool" => |c| {
            let window = c
                .attr_ints("kernel_shape")
                .map(|k| k.iter().product::<i64>().max(1) as u64);
            Work::flops(c.output_elements().zip(window).map(|(o, w)| o * w))
        },
        // A reduction over the whole map: a streaming pass, its own regression.
        "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => |c| Work {
            variant: Some("GlobalPool"),
            ..Work::flops(c.input_elements(0))
        },
        "ArgMax" | "ArgMin" => |c| Work::flops(c.input_elements(0)),
        op if op.starts_with("Reduce") => |c| Work::flops(c.input_elements(0)),
        _ => return None,
    };
    Some(Rule {
        class: OpClass::Pool,
        work,
    })
}
