//! Normalisation: BatchNormalization, InstanceNormalization, LayerNormalization, GroupNormalization,
//! LRN, and the com.microsoft fused layer norms.
//!
//! Per output element: BatchNormalization 2 (at inference it folds to one scale and one shift);
//! the statistics-computing norms 5 (mean, variance, subtract-divide, scale, shift); LRN
//! `2 x size + 3` (sum of squares over `size` channels, then power and divide).

use super::{per_output_element, Rule, Work};
use crate::cost::{NodeCtx, OpClass};

pub fn rule(_domain: &str, op: &str) -> Option<Rule> {
    let work: fn(&NodeCtx) -> Work = match op {
        "BatchNormalization" => |c| Work::flops(per_output_element(c, 2)),
        "InstanceNormalization"
        | "LayerNormalization"
        | "GroupNormalization"
        | "MeanVarianceNormalization"
        | "LpNormalization"
        | "SkipLayerNormalization"
        | "SimplifiedLayerNormalization"
        | "SkipSimplifiedLayerNormalization" => |c| Work::flops(per_output_element(c, 5)),
        "LRN" => |c| {
            let size = c.attr_i("size").unwrap_or(1).max(1) as u64;
            Work::flops(per_output_element(c, 2 * size + 3))
        },
        _ => return None,
    };
    Some(Rule {
        class: OpClass::Norm,
        work,
    })
}
