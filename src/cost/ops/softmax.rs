//! Softmax, LogSoftmax and Hardmax.
//!
//! 5 operations per element: running max, subtract, exponential, sum, divide (Hardmax counted
//! alike: a max pass and a write pass dominate the same memory traffic).

use super::{per_output_element, Rule, Work};
use crate::cost::OpClass;

pub fn rule(_op: &str) -> Option<Rule> {
    Some(Rule {
        class: OpClass::Softmax,
        work: |c| Ok(Work::flops(per_output_element(c, 5)?)),
    })
}
