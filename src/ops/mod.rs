//! The ONNX ops nsplit has rules for, by family, and the validating reader of their attributes.
//!
//! One list of op names per family: the shape rules (`shapes/ops/<family>.rs`) and the cost rules
//! (`cost/ops/<family>.rs`) both dispatch on [`family`], so an op is in a family once and both
//! stages agree on it. Attributes are read only through [`Attrs`], which checks each against what
//! the ONNX specification requires and names the node and attribute when it does not hold.

pub mod attrs;
pub mod schema;

pub use attrs::{Attrs, Window};

/// A family of ops that share a shape rule and a cost rule.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Family {
    Conv,
    Matmul,
    /// Windowed and global pooling, reductions, ArgMax/ArgMin.
    Pool,
    Norm,
    Softmax,
    Recurrent,
    /// Arithmetic, comparison, logic and elementwise math.
    Elementwise,
    Activation,
    /// Ops that copy, reshape, select or generate values without arithmetic.
    Movement,
    Control,
}

pub const CONV: &[&str] = &[
    "Conv",
    "ConvInteger",
    "DeformConv",
    "NhwcConv",
    "FusedConv",
    "QLinearConv",
    "ConvTranspose",
];

pub const MATMUL: &[&str] = &[
    "Gemm",
    "MatMul",
    "MatMulInteger",
    "FusedMatMul",
    "QLinearMatMul",
];

/// Pooling over a sliding window (`kernel_shape`, `strides`, `pads`, ...).
pub const WINDOW_POOL: &[&str] = &["MaxPool", "AveragePool", "LpPool", "MaxRoiPool"];
/// Pooling over the whole spatial map.
pub const GLOBAL_POOL: &[&str] = &["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"];
/// Reductions over `axes` (any other `Reduce*` op counts too) and the arg-reductions.
pub const REDUCE: &[&str] = &[
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
    "ArgMax",
    "ArgMin",
];

pub const NORM: &[&str] = &[
    "BatchNormalization",
    "InstanceNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "MeanVarianceNormalization",
    "LpNormalization",
    "LRN",
    "SkipLayerNormalization",
    "SimplifiedLayerNormalization",
    "SkipSimplifiedLayerNormalization",
];

pub const SOFTMAX: &[&str] = &["Softmax", "LogSoftmax", "Hardmax"];

pub const RECURRENT: &[&str] = &["LSTM", "GRU", "RNN"];

/// Elementwise ops of one input whose output has the input's shape (and type, but for IsNaN and
/// IsInf, which give bools).
pub const UNARY: &[&str] = &[
    "Neg",
    "Abs",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Sqrt",
    "Not",
    "BitwiseNot",
    "IsNaN",
    "IsInf",
    "CumSum",
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Acosh",
    "Atanh",
    "Exp",
    "Log",
    "Erf",
    "Scaler",
    "Binarizer",
    "Normalizer",
];
/// Binary arithmetic, numpy-broadcast, of the first input's type.
pub const BINARY: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Mod",
    "BitShift",
    "BitwiseAnd",
    "BitwiseOr",
    "BitwiseXor",
];
/// Arithmetic over any number of broadcast inputs.
pub const VARIADIC: &[&str] = &["Sum", "Max", "Min", "Mean"];
/// Comparisons and logic: broadcast, bool output.
pub const COMPARE: &[&str] = &[
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "And",
    "Or",
    "Xor",
];
/// Losses: an elementwise pass and a reduction (to a scalar, unless `reduction` is `none`).
pub const LOSS: &[&str] = &["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"];
/// Elementwise arithmetic without a shape rule of ours (tract types them).
pub const OTHER_ELEMENTWISE: &[&str] = &[
    "Where",
    "Einsum",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
];

pub const ACTIVATION: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "PRelu",
    "ThresholdedRelu",
    "Clip",
    "HardSigmoid",
    "HardSwish",
    "Shrink",
    "Softsign",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Elu",
    "Selu",
    "Celu",
    "Mish",
    "Gelu",
    "FastGelu",
    "BiasGelu",
    "QuickGelu",
];

pub const MOVEMENT: &[&str] = &[
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

pub const CONTROL: &[&str] = &["If", "Loop", "Scan", "SequenceMap"];

/// The family of an op, by type. The domain is not consulted: com.microsoft's fused ops and
/// a custom domain's `Conv` are counted as the standard op of their name.
pub fn family(_domain: &str, op: &str) -> Option<Family> {
    let families: [(&[&str], Family); 10] = [
        (CONV, Family::Conv),
        (MATMUL, Family::Matmul),
        (NORM, Family::Norm),
        (SOFTMAX, Family::Softmax),
        (RECURRENT, Family::Recurrent),
        (ACTIVATION, Family::Activation),
        (MOVEMENT, Family::Movement),
        (CONTROL, Family::Control),
        (WINDOW_POOL, Family::Pool),
        (GLOBAL_POOL, Family::Pool),
    ];
    if let Some((_, f)) = families.iter().find(|(ops, _)| ops.contains(&op)) {
        return Some(*f);
    }
    if REDUCE.contains(&op) || op.starts_with("Reduce") {
        return Some(Family::Pool);
    }
    [UNARY, BINARY, VARIADIC, COMPARE, LOSS, OTHER_ELEMENTWISE]
        .iter()
        .any(|ops| ops.contains(&op))
        .then_some(Family::Elementwise)
}

/// Ops whose first output has their first input's shape, whatever their attributes: shapes can
/// be learnt through them in either direction.
pub fn keeps_shape(op: &str) -> bool {
    UNARY.contains(&op)
        || ACTIVATION.contains(&op)
        || NORM.contains(&op)
        || SOFTMAX.contains(&op)
        || matches!(
            op,
            "Identity" | "Dropout" | "Trilu" | "ReverseSequence" | "Cast" | "CastLike"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_is_in_one_family() {
        let lists = [
            CONV,
            MATMUL,
            WINDOW_POOL,
            GLOBAL_POOL,
            REDUCE,
            NORM,
            SOFTMAX,
            RECURRENT,
            UNARY,
            BINARY,
            VARIADIC,
            COMPARE,
            LOSS,
            OTHER_ELEMENTWISE,
            ACTIVATION,
            MOVEMENT,
            CONTROL,
        ];
        let mut seen = std::collections::HashSet::new();
        for op in lists.iter().flat_map(|l| l.iter()) {
            assert!(seen.insert(*op), "{op} is listed twice");
        }
        assert_eq!(family("", "Conv"), Some(Family::Conv));
        assert_eq!(family("", "ReduceSum"), Some(Family::Pool));
        assert_eq!(family("", "Sum"), Some(Family::Elementwise));
        assert_eq!(family("", "Relu"), Some(Family::Activation));
        assert_eq!(family("", "NoSuchOp"), None);
    }
}
