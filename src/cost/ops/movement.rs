//! Data movement: ops that copy, reshape, select or generate values without arithmetic.
//!
//! They cost no FLOPs; their cost is the bytes they read and write, which every node reports.

use super::{Rule, Work};
use crate::cost::OpClass;

pub fn rule(_op: &str) -> Option<Rule> {
    Some(Rule {
        class: OpClass::DataMovement,
        work: |_| Ok(Work::flops(Some(0))),
    })
}
