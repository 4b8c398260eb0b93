//! Pooling and reductions.
//!
//! Windowed pooling (MaxPool, AveragePool, LpPool): one operation per window element per output,
//! output elements x kernel size. Global pooling and Reduce*/ArgMax/ArgMin: one operation per
//! input element.

use super::{times, Rule, Variant, Work};
use crate::cost::{NodeCtx, OpClass};
use crate::ops::{GLOBAL_POOL, WINDOW_POOL};
use anyhow::Result;

pub fn rule(op: &str) -> Option<Rule> {
    let work: fn(&NodeCtx) -> Result<Work> = if WINDOW_POOL.contains(&op) {
        |c| {
            let window = match c.attrs.ints_at_least("kernel_shape", 1, None)? {
                Some(k) => Some(k.iter().try_fold(1u64, |a, &b| times(c, a, b as u64))?),
                None => None,
            };
            let flops = match (c.output_elements(), window) {
                (Some(o), Some(w)) => Some(times(c, o, w)?),
                _ => None,
            };
            Ok(Work::flops(flops))
        }
    } else if GLOBAL_POOL.contains(&op) {
        // A reduction over the whole map: a streaming pass, its own regression.
        |c| {
            Ok(Work {
                variant: Some(Variant::GlobalPool),
                ..Work::flops(c.input_elements(0))
            })
        }
    } else {
        |c| Ok(Work::flops(c.input_elements(0)))
    };
    Some(Rule {
        class: OpClass::Pool,
        work,
    })
}
