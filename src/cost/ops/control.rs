//! Control flow: If, Loop, Scan.
//!
//! The node itself computes nothing; its bodies' work depends on run-time values (which branch,
//! how many iterations), so it is reported as unknown rather than guessed.

use super::{Rule, Work};
use crate::cost::OpClass;

pub fn rule(_op: &str) -> Option<Rule> {
    Some(Rule {
        class: OpClass::ControlFlow,
        work: |_| {
            Ok(Work {
                flops: Some(0),
                macs: None,
                note: Some(
                    "subgraph bodies run a data-dependent amount of work; not counted".into(),
                ),
                ..Work::default()
            })
        },
    })
}
