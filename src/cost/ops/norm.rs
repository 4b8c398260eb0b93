//! Normalisation: BatchNormalization, InstanceNormalization, LayerNormalization, GroupNormalization,
//! LRN, and the com.microsoft fused layer norms.
//!
//! Per output element: BatchNormalization 2 (at inference it folds to one scale and one shift);
//! the statistics-computing norms 5 (mean, variance, subtract-divide, scale, shift); LRN
//! `2 x size + 3` (sum of squares over `size` channels, then power and divide).

use super::{per_output_element, times, Rule, Work};
use crate::cost::{NodeCtx, OpClass};
use anyhow::Result;

pub fn rule(op: &str) -> Option<Rule> {
    let work: fn(&NodeCtx) -> Result<Work> = match op {
        "BatchNormalization" => |c| Ok(Work::flops(per_output_element(c, 2)?)),
        "LRN" => |c| {
            let size = c.attrs.positive_int("size", 1)?;
            let k = times(c, size, 2)?.saturating_add(3);
            Ok(Work::flops(per_output_element(c, k)?))
        },
        _ => |c| Ok(Work::flops(per_output_element(c, 5)?)),
    };
    Some(Rule {
        class: OpClass::Norm,
        work,
    })
}
