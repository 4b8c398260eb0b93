//! Normalisations: the output has the input's shape. Their axis and group attributes are
//! checked against the input.

use super::{same_as_input, Outputs, RuleCtx};
use anyhow::{bail, Result};

pub fn infer(c: &RuleCtx) -> Result<Outputs> {
    let rank = c.rank(0);
    match c.op.op_type.as_str() {
        "LRN" => {
            c.attrs.positive_int("size", 1)?;
        }
        "LayerNormalization" | "LpNormalization" => {
            if let Some(r) = rank {
                c.attrs.axis("axis", -1, r, false)?;
            }
            if c.op.op_type == "LpNormalization" && !matches!(c.attrs.int_or("p", 2)?, 1 | 2) {
                bail!(c.attrs.error("`p` must be 1 or 2"));
            }
        }
        "GroupNormalization" => {
            let groups = c.attrs.positive_int("num_groups", 1)?;
            if let Some(channels) = c.dims(0).and_then(|d| d.get(1).copied()) {
                if channels % groups != 0 {
                    bail!(c.attrs.error(format!(
                        "`num_groups` = {groups} does not divide the {channels} channels"
                    )));
                }
            }
        }
        _ => {}
    }
    Ok(same_as_input(c))
}
