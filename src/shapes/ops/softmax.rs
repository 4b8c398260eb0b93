//! Softmax, LogSoftmax, Hardmax: the output has the input's shape; `axis` must lie in the
//! input's rank.

use super::{same_as_input, Outputs, RuleCtx};
use anyhow::Result;

pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    if let Some(r) = c.rank(0) {
        // Before opset 13 the default axis is 1 (the input is coerced to 2-D there).
        let default = if c.opset >= 13 { -1 } else { 1 };
        if r > 0 {
            c.attrs.axis("axis", default, r, false)?;
        }
    }
    Ok(same_as_input(c))
}
