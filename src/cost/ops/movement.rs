//! Data movement: ops that copy, reshape, select or generate values without arithmetic.
//!
//! They cost no FLOPs; their cost is the bytes they read and write, which every node reports.
//! A view (a Reshape, Flatten, Squeeze, Unsqueeze or Identity) copies nothing: runtimes give
//! its output the input's buffer under another shape (tract's reshape of a contiguous tensor,
//! onnxruntime's in-place Reshape), so it takes no time of its own. Charged its bytes, the 33
//! reshapes of ShuffleNet's channel shuffles were predicted at 4 ms and measured at 0.02 ms.

use super::{Rule, Variant, Work};
use crate::cost::OpClass;

/// Ops that only give their input another shape.
pub const VIEWS: &[&str] = &["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"];

pub fn rule(op: &str) -> Option<Rule> {
    Some(Rule {
        class: OpClass::DataMovement,
        work: if VIEWS.contains(&op) {
            |_| {
                Ok(Work {
                    view: true,
                    note: Some(
                        "a view of its input (another shape, no copy): no time of its own".into(),
                    ),
                    ..Work::flops(Some(0))
                })
            }
        } else if op == "Transpose" {
            |c| {
                Ok(Work {
                    variant: keeps_rows(c.attrs.ints("perm")?).then_some(Variant::TransposeRows),
                    ..Work::flops(Some(0))
                })
            }
        } else {
            |_| Ok(Work::flops(Some(0)))
        },
    })
}

/// A transpose that leaves the innermost axis in place moves whole contiguous rows, as a
/// channel shuffle (`[N, g, C/g, H, W]` by `[0, 2, 1, 3, 4]`) does: a copy at a concat's rate.
/// Fitted with the others, strided gathers of single elements, ShuffleNet's shuffles were
/// predicted at 3x their time (docs/accuracy.md). Without `perm` the axes reverse.
fn keeps_rows(perm: Option<&[i64]>) -> bool {
    perm.is_some_and(|p| p.len() >= 2 && p.last() == Some(&(p.len() as i64 - 1)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn transposes_of_whole_rows() {
        assert!(super::keeps_rows(Some(&[0, 2, 1, 3, 4])));
        assert!(super::keeps_rows(Some(&[1, 0, 2])));
        assert!(!super::keeps_rows(Some(&[1, 0])));
        assert!(!super::keeps_rows(Some(&[0])));
        assert!(!super::keeps_rows(None));
    }
}
