//! Data movement: ops that copy, reshape, select or generate values without arithmetic.
//!
//! They cost no FLOPs; their cost is the bytes they read and write, which every node reports.

use super::{Rule, Work};
use crate::cost::OpClass;

const OPS: &[&str] = &[
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Concat",
    "Split",
    "Slice",
    "Gather",
    "GatherElements",
    "GatherND",
    "Scatter",
    "ScatterElements",
    "ScatterND",
    "Pad",
    "Tile",
    "Expand",
    "Identity",
    "Shape",
    "Size",
    "Constant",
    "ConstantOfShape",
    "Cast",
    "CastLike",
    "DepthToSpace",
    "SpaceToDepth",
    "Resize",
    "Upsample",
    "Compress",
    "NonZero",
    "OneHot",
    "Range",
    "EyeLike",
    "ReverseSequence",
    "Trilu",
    "SequenceAt",
    "SequenceConstruct",
    "SequenceEmpty",
    "SequenceInsert",
    "SequenceErase",
    "SequenceLength",
    "SplitToSequence",
    "ConcatFromSequence",
    "Optional",
    "OptionalGetElement",
    "OptionalHasElement",
    "Dropout",
    "TopK",
    "Unique",
    "CenterCropPad",
    "Col2Im",
];

pub fn rule(_domain: &str, op: &str) -> Option<Rule> {
    OPS.contains(&op).then_some(Rule {
        class: OpClass::DataMovement,
        work: |_| Work::flops(Some(0)),
    })
}
