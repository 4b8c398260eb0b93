//! The grid of one-node models the profiler times: every op class and kernel variant over the
//! sizes real networks have, each model written and analysed once and timed in every pass.

use super::fitting::{Samples, Timing};
use super::{time_model, Reference, PARTS, RUNS, WARMUP};
use crate::analysis::Analysis;
use crate::cost::profile::Figures;
use crate::cost::OpClass;
use crate::profiler::measure::trimmed_mean;
use crate::proto::{attr_int, attr_ints, float_value_info, node, tensor_f32};
use crate::runtime::Runtime;
use crate::shapes::InputShapes;
use anyhow::{Context, Result};
use onnx_protobuf::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};
use std::path::{Path, PathBuf};

/// One configuration to time: its class, a name, and the model.
pub(super) struct Config {
    pub(super) class: OpClass,
    /// Timed for a regression of the op's own (`op:<OpType>`), not its class's.
    pub(super) own_op: bool,
    pub(super) label: String,
    pub(super) model: ModelProto,
    /// Time it on values whose neighbours along this axis share their signs, as a conv's
    /// outputs do (`smoothed` in the profiler); `None`: independent values.
    pub(super) smooth_axis: Option<usize>,
}

/// The grid's models, written and analysed, with each one's timings so far.
pub(super) struct Grid {
    entries: Vec<Entry>,
    runtime: Runtime,
}

struct Entry {
    /// The regression the model is a sample of (`conv`, `op:Conv1x1`, ...).
    key: String,
    class: OpClass,
    work: Figures,
    path: PathBuf,
    smooth_axis: Option<usize>,
    /// The median of each pass.
    medians: Vec<f64>,
    /// The reference's time around each pass's median ([`Reference::around`]).
    states: Vec<f64>,
}

impl Grid {
    /// Write and analyse every configuration into `dir`.
    /// `progress` is told each one's label.
    pub(super) fn build(
        dir: &Path,
        configs: Vec<Config>,
        runtime: Runtime,
        mut progress: impl FnMut(&str),
    ) -> Result<Grid> {
        let mut entries = vec![];
        for (i, c) in configs.into_iter().enumerate() {
            progress(&c.label);
            let path = super::write_model(dir, &format!("{i}.onnx"), &c.model)?;
            let a = Analysis::run(&path, &InputShapes::default())
                .with_context(|| format!("analysing {}", c.label))?;
            let mut work = Figures::default();
            // Regression key: the op's own when asked for or when the cost rules make it a
            // variant (`op:Conv1x1`, ...), else its class's; exactly the key predictions will
            // look up first.
            let mut key = c.class.name().to_string();
            for (n, op) in a.graph.ops() {
                let f = a.features.get(n);
                work +=
                    Figures::of_node(f).with_context(|| format!("{}: work unknown", c.label))?;
                if c.own_op || f.regression_op != op.op_type {
                    key = format!("op:{}", f.regression_op);
                }
            }
            entries.push(Entry {
                key,
                class: c.class,
                work,
                path,
                smooth_axis: c.smooth_axis,
                medians: vec![],
                states: vec![],
            });
        }
        Ok(Grid { entries, runtime })
    }

    /// Time part `part` of [`PARTS`] of pass `pass`: every model once more over the pass,
    /// forwards in even passes and backwards in odd ones (a machine that slows down over a pass
    /// then slows different models each time), the reference before and after each.
    pub(super) fn time_part(
        &mut self,
        pass: usize,
        part: usize,
        reference: &mut Reference,
        mut progress: impl FnMut(&str),
    ) -> Result<()> {
        let n = self.entries.len();
        let runtime = self.runtime;
        let (from, to) = (part * n / PARTS, (part + 1) * n / PARTS);
        for k in from..to {
            let e = &mut self.entries[if pass % 2 == 1 { n - 1 - k } else { k }];
            progress(&e.key);
            let (ms, state) = reference.around(|| {
                time_model(&e.path, runtime, e.smooth_axis, WARMUP, RUNS)
                    .with_context(|| format!("timing {}", e.key))
            })?;
            e.medians.push(ms);
            e.states.push(state);
        }
        Ok(())
    }

    /// Each model's typical median (the trimmed mean over the passes: [`trimmed_mean`]) at the
    /// machine's typical speed (each pass's median scaled by `reference_ms` over the
    /// reference's time around it) less the run overhead, by regression, and each model's
    /// rerun spread.
    pub(super) fn samples(&self, run_overhead_ms: f64, reference_ms: f64) -> Samples {
        let mut samples = Samples::default();
        for e in &self.entries {
            let medians: Vec<f64> = e
                .medians
                .iter()
                .zip(&e.states)
                .map(|(&ms, &state)| ms * reference_ms / state)
                .collect();
            if let Some(s) = rerun_spread(&medians) {
                samples.spreads.entry(e.key.clone()).or_default().push(s);
            }
            let typical = trimmed_mean(medians);
            samples
                .timings
                .entry(e.key.clone())
                .or_insert((e.class, vec![]))
                .1
                .push(Timing {
                    work: e.work,
                    ms: (typical - run_overhead_ms).max(1e-6),
                });
        }
        samples
    }
}

/// How far a rerun of half the passes would move a model's sample: the odd passes and the even
/// ones each give their typical median ([`trimmed_mean`]), as a profile of half the passes
/// would, and the spread is their difference over the lower. `None` with a single pass.
fn rerun_spread(medians: &[f64]) -> Option<f64> {
    let half =
        |parity: usize| -> Vec<f64> { medians.iter().skip(parity).step_by(2).copied().collect() };
    let (odd, even) = (half(0), half(1));
    (!even.is_empty()).then(|| {
        let (a, b) = (trimmed_mean(odd), trimmed_mean(even));
        (a - b).abs() / a.min(b).max(1e-9)
    })
}

// ---- the grid of one-node models -------------------------------------------------------------

/// The configurations to time: the full grid, or with `quick` a small one.
pub(super) fn grid(quick: bool) -> Vec<Config> {
    let mut out = vec![];
    let pick = |full: &[i64], q: &[i64]| if quick { q.to_vec() } else { full.to_vec() };
    for &cin in &pick(&[8, 32, 64, 128], &[16, 64]) {
        for &cout in &pick(&[16, 64, 128], &[32, 64]) {
            for &hw in &pick(&[14, 28, 56], &[14, 28]) {
                for &k in &pick(&[1, 3, 5], &[1, 3, 5]) {
                    out.push(conv(cin, cout, hw, k, 1));
                }
            }
        }
    }
    if !quick {
        // Real networks' first layers (large kernels, strides 2 and 4) and fully connected layers
        // whose weights do not fit in cache: without them the fits extrapolate from small shapes.
        for (cin, cout, hw, k, stride) in [
            (3, 64, 224, 11, 4),
            (3, 96, 224, 7, 2),
            (3, 64, 224, 7, 2),
            (3, 24, 224, 3, 2),
            (3, 32, 224, 3, 2),
            // Small nets' first layers (MNIST, CIFAR): one or three channels on 28-32 pixel
            // maps, microseconds that an intercept fitted on larger convs under-predicted 2x.
            (1, 6, 28, 5, 1),
            (1, 20, 28, 5, 1),
            (1, 32, 28, 3, 1),
            (3, 6, 32, 5, 1),
            (3, 16, 32, 3, 1),
            (3, 32, 32, 3, 1),
            (1, 8, 28, 3, 1),
            (3, 16, 64, 3, 1),
            (4, 32, 64, 3, 1),
            (3, 32, 56, 5, 1),
            (3, 64, 112, 3, 1),
            (64, 192, 56, 5, 1),
            // Wide layers of VGG-style nets, where im2col reaches its best rate.
            (256, 256, 56, 3, 1),
            (256, 512, 28, 3, 1),
            (512, 512, 28, 3, 1),
            (512, 512, 14, 3, 1),
            (128, 256, 56, 3, 2),
            // Bottleneck and DenseNet-style pointwise convolutions, wide and narrow.
            (256, 64, 56, 1, 1),
            (64, 256, 56, 1, 1),
            (512, 128, 28, 1, 1),
            (1024, 256, 14, 1, 1),
            (256, 128, 28, 1, 1),
            (96, 128, 56, 1, 1),
        ] {
            out.push(conv(cin, cout, hw, k, stride));
        }
        for (k, n) in [(9216, 4096), (25088, 4096), (4096, 4096), (2048, 1000)] {
            out.push(gemm(k, n));
        }
    }
    // tract's direct spatial convolutions: rows of 128 points or more, few inputs per point.
    for &(cin, cout, hw, k) in pick_of(
        quick,
        &[
            (3, 64, 224, 3),
            (3, 32, 256, 3),
            (16, 32, 128, 3),
            (32, 32, 160, 3),
            (32, 64, 128, 3),
            (64, 64, 128, 3),
            (64, 64, 224, 3),
            (8, 16, 224, 5),
        ],
        &[
            (3, 16, 128, 3),
            (8, 16, 128, 3),
            (16, 16, 128, 3),
            (8, 8, 160, 3),
            (4, 16, 128, 5),
            (3, 8, 192, 3),
            (4, 8, 256, 3),
        ],
    )
    .iter()
    {
        out.push(conv(cin, cout, hw, k, 1));
    }
    // Depthwise convolutions (MobileNet, ShuffleNet).
    for &(c, hw, stride) in pick_of(
        quick,
        &[
            (32, 112, 1),
            (96, 112, 2),
            (144, 56, 1),
            (112, 28, 1),
            (192, 28, 1),
            (272, 14, 1),
            (576, 14, 1),
            (544, 7, 1),
            (960, 7, 1),
        ],
        &[
            (32, 56, 1),
            (64, 28, 1),
            (128, 28, 2),
            (256, 14, 1),
            (512, 7, 1),
        ],
    )
    .iter()
    {
        out.push(depthwise(c, hw, 3, stride));
    }
    // Per-channel constants of a lower rank than the data (`[C, 1, 1]`): tract's generic
    // broadcasting path.
    for &(c, hw) in pick_of(
        quick,
        &[
            (16, 56),
            (64, 56),
            (128, 28),
            (256, 56),
            (512, 28),
            (1024, 14),
            (64, 112),
        ],
        &[(16, 28), (64, 28), (64, 56), (256, 14)],
    )
    .iter()
    {
        out.push(binary("Mul", &[1, c, hw, hw], &[c, 1, 1]));
        out.push(binary("Add", &[1, c, hw, hw], &[c, 1, 1]));
    }
    for &k in &pick(&[256, 512, 1024, 2048, 4096], &[256, 1024, 4096]) {
        for &n in &pick(&[64, 256, 1024, 4096], &[256, 1024]) {
            out.push(gemm(k, n));
        }
    }
    // Classifier heads and the layers of small MLPs: microseconds, where the intercept is most
    // of the answer.
    for &(k, n) in pick_of(
        quick,
        &[(16, 16), (32, 8), (64, 32), (128, 10), (120, 84)],
        &[(16, 16), (128, 10)],
    )
    .iter()
    {
        out.push(gemm(k, n));
    }
    for &c in &pick(&[16, 64, 128], &[16, 64]) {
        for &hw in &pick(&[14, 28, 56, 112], &[14, 28, 56, 112]) {
            out.push(unary(
                "MaxPool",
                OpClass::Pool,
                &[1, c, hw, hw],
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("strides", &[2, 2]),
                ],
            ));
            out.push(unary(
                "LRN",
                OpClass::Norm,
                &[1, c, hw, hw],
                vec![attr_int("size", 5)],
            ));
            out.push(unary(
                "BatchNormalization",
                OpClass::Norm,
                &[1, c, hw, hw],
                vec![],
            ));
        }
    }
    // LRN at the sizes of the nets that use it (AlexNet, ZFNet, GoogLeNet): its fit has one
    // variable, and on the twelve points above alone its slope moved 13% between two profiles,
    // and every net with LRN as much (docs/accuracy.md).
    for &(c, hw) in pick_of(
        quick,
        &[
            (32, 27),
            (64, 56),
            (96, 55),
            (96, 27),
            (192, 56),
            (192, 28),
            (256, 27),
            (256, 13),
            (384, 13),
            (480, 14),
            (48, 112),
            (128, 40),
        ],
        &[],
    )
    .iter()
    {
        out.push(unary(
            "LRN",
            OpClass::Norm,
            &[1, c, hw, hw],
            vec![attr_int("size", 5)],
        ));
    }
    // Pools of other windows and strides (GoogLeNet's 3x3 stride-1 branches, ResNet's 3x3
    // stride-2 stem) and global pools.
    for &(c, hw) in pick_of(
        quick,
        &[(32, 28), (64, 56), (192, 28), (480, 14), (832, 7)],
        &[(16, 14), (32, 28), (64, 56), (128, 28)],
    )
    .iter()
    {
        for (op_type, k, stride) in [
            ("MaxPool", 3, 1),
            ("MaxPool", 3, 2),
            ("AveragePool", 3, 1),
            ("AveragePool", 3, 2),
        ] {
            out.push(unary(
                op_type,
                OpClass::Pool,
                &[1, c, hw, hw],
                vec![
                    attr_ints("kernel_shape", &[k, k]),
                    attr_ints("strides", &[stride, stride]),
                    attr_ints("pads", &[1, 1, 1, 1]),
                ],
            ));
        }
        out.push(unary(
            "GlobalAveragePool",
            OpClass::Pool,
            &[1, c, hw, hw],
            vec![],
        ));
    }
    // PRelu with a per-channel slope, as PyTorch exports it (`[C, 1, 1]` on NCHW maps) and as
    // TensorFlow's exporters do (`[1, 1, C]` on NHWC maps).
    for &(c, hw) in pick_of(
        quick,
        &[(16, 56), (28, 46), (48, 22), (64, 28), (128, 14)],
        &[(16, 28), (64, 14)],
    )
    .iter()
    {
        out.push(prelu(&[1, c, hw, hw], &[c, 1, 1], 3));
        out.push(prelu(&[1, hw, hw, c], &[1, 1, c], 2));
    }
    // Small nets' heads: a few channels pooled from 8-32 pixel maps, microseconds that the
    // intercept of the larger pools above decided alone.
    for &(c, hw) in pick_of(quick, &[(16, 32), (64, 8)], &[]).iter() {
        out.push(unary(
            "GlobalAveragePool",
            OpClass::Pool,
            &[1, c, hw, hw],
            vec![],
        ));
    }
    for &n in &pick(
        &[1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22],
        &[1 << 12, 1 << 14, 1 << 16, 1 << 20],
    ) {
        out.push(unary("Relu", OpClass::Activation, &[1, n], vec![]));
        out.push(unary("Sigmoid", OpClass::Activation, &[1, n], vec![]));
        out.push(binary("Add", &[1, n], &[1, n]));
        out.push(unary("Softmax", OpClass::Softmax, &[1, n], vec![]));
        out.push(unary(
            "Transpose",
            OpClass::DataMovement,
            &[n / 64, 64],
            vec![attr_ints("perm", &[1, 0])],
        ));
    }
    // Concat, apart: contiguous copies of whole maps, 3-4x faster per byte than a transpose's
    // strided gather, whose fit had put an inception block's concat at 4x its time.
    for &(c, hw, parts) in pick_of(
        quick,
        &[
            (16, 28, 4),
            (32, 14, 2),
            (64, 28, 4),
            (32, 56, 2),
            (128, 28, 2),
            (256, 14, 4),
            (64, 56, 4),
            (128, 56, 2),
        ],
        &[],
    )
    .iter()
    {
        out.push(concat(c, hw, parts));
    }
    // Channel shuffles (ShuffleNet): transposes of whole rows, `op:TransposeRows`.
    for &(groups, c, hw) in pick_of(
        quick,
        &[
            (3, 240, 28),
            (3, 480, 14),
            (3, 960, 7),
            (4, 64, 56),
            (2, 128, 28),
            (8, 384, 28),
        ],
        &[],
    )
    .iter()
    {
        out.push(unary(
            "Transpose",
            OpClass::DataMovement,
            &[1, groups, c / groups, hw, hw],
            vec![attr_ints("perm", &[0, 2, 1, 3, 4])],
        ));
    }
    // Recurrent ops step through their sequence: the steps cost apart from the FLOPs.
    for &(seq, h) in pick_of(
        quick,
        &[
            (16, 8),
            (16, 16),
            (16, 32),
            (16, 64),
            (16, 128),
            (16, 256),
            (4, 32),
            (64, 32),
            (4, 128),
            (64, 128),
        ],
        &[(16, 16), (16, 32), (16, 64), (4, 32), (64, 32)],
    )
    .iter()
    {
        out.push(lstm(seq, h));
        out.push(gru(seq, h));
    }
    out
}

/// The full grid's values, or the quick grid's.
fn pick_of<T: Clone>(quick: bool, full: &[T], q: &[T]) -> Vec<T> {
    if quick { q } else { full }.to_vec()
}

pub(super) fn conv(cin: i64, cout: i64, hw: i64, k: i64, stride: i64) -> Config {
    grouped_conv(cin, cout, hw, k, stride, 1)
}

/// A depthwise convolution: one group per channel.
fn depthwise(c: i64, hw: i64, k: i64, stride: i64) -> Config {
    grouped_conv(c, c, hw, k, stride, c)
}

fn grouped_conv(cin: i64, cout: i64, hw: i64, k: i64, stride: i64, group: i64) -> Config {
    let node = op(
        "Conv",
        &["x", "w", "b"],
        &["y"],
        vec![
            attr_ints("pads", &[k / 2; 4]),
            attr_ints("strides", &[stride, stride]),
            attr_int("group", group),
        ],
    );
    Config {
        class: OpClass::Conv,
        own_op: false,
        smooth_axis: None,
        label: format!("conv {cin}->{cout} {hw}x{hw} k{k} s{stride} g{group}"),
        model: model(
            node,
            float_value_info("x", &[1, cin, hw, hw]),
            "y",
            vec![
                weight("w", &[cout, cin / group, k, k]),
                weight("b", &[cout]),
            ],
        ),
    }
}

fn gemm(k: i64, n: i64) -> Config {
    let node = op(
        "Gemm",
        &["x", "w", "b"],
        &["y"],
        vec![attr_int("transB", 1)],
    );
    Config {
        class: OpClass::Matmul,
        own_op: false,
        smooth_axis: None,
        label: format!("gemm 1x{k} -> {n}"),
        model: model(
            node,
            float_value_info("x", &[1, k]),
            "y",
            vec![weight("w", &[n, k]), weight("b", &[n])],
        ),
    }
}

fn unary(op_type: &str, class: OpClass, dims: &[i64], attrs: Vec<AttributeProto>) -> Config {
    let (inputs, inits): (Vec<&str>, Vec<TensorProto>) = if op_type == "BatchNormalization" {
        (vec!["x", "s", "b", "m", "v"], bn_stats("", dims[1]))
    } else {
        (vec!["x"], vec![])
    };
    Config {
        class,
        // tract's LRN runs ~30x slower per element than the other norms, its AveragePool ~3x
        // slower than its MaxPool.
        own_op: op_type == "LRN" || op_type == "AveragePool",
        smooth_axis: None,
        label: shape_label(op_type, dims),
        model: model(
            op(op_type, &inputs, &["y"], attrs),
            float_value_info("x", dims),
            "y",
            inits,
        ),
    }
}

/// `relu 1x64x56x56`: an op and its input shape.
fn shape_label(op_type: &str, dims: &[i64]) -> String {
    let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("{} {}", op_type.to_lowercase(), dims.join("x"))
}

/// `x op c` with a constant `c` of shape `c_dims` (the output's, or one to broadcast).
fn binary(op_type: &str, dims: &[i64], c_dims: &[i64]) -> Config {
    Config {
        class: OpClass::Elementwise,
        own_op: false,
        smooth_axis: None,
        label: format!("{} by {:?}", shape_label(op_type, dims), c_dims),
        model: model(
            op(op_type, &["x", "c"], &["y"], vec![]),
            float_value_info("x", dims),
            "y",
            vec![weight("c", c_dims)],
        ),
    }
}

/// A PRelu on `dims` with a learned slope of `slope_dims`, timed for a regression of its own
/// (`op:PRelu`) on values smoothed along the maps' width (`width_axis`). onnxruntime runs it
/// element by element with a branch on each sign, so its time is the sign pattern's: on signs
/// drawn independently about 1.5 ms/MB here, 4x what MTCNN's first PRelu takes inside the net,
/// where a conv's neighbouring outputs share their signs (77-91% of neighbours in MTCNN's
/// PRelus; 72% after smoothing, which times those PRelus within 5-10% of their time in the net).
fn prelu(dims: &[i64], slope_dims: &[i64], width_axis: usize) -> Config {
    Config {
        own_op: true,
        class: OpClass::Activation,
        smooth_axis: Some(width_axis),
        ..binary("PRelu", dims, slope_dims)
    }
}

/// `parts` maps of `c` x `hw` x `hw` concatenated along the channels (the first the input,
/// the others weights: tract copies either alike).
fn concat(c: i64, hw: i64, parts: usize) -> Config {
    let dims = [1, c, hw, hw];
    let names: Vec<String> = (1..parts).map(|i| format!("c{i}")).collect();
    let inputs: Vec<&str> = std::iter::once("x")
        .chain(names.iter().map(String::as_str))
        .collect();
    Config {
        class: OpClass::DataMovement,
        own_op: true,
        smooth_axis: None,
        label: format!("{} x {parts}", shape_label("Concat", &dims)),
        model: model(
            op("Concat", &inputs, &["y"], vec![attr_int("axis", 1)]),
            float_value_info("x", &dims),
            "y",
            names.iter().map(|n| weight(n, &dims)).collect(),
        ),
    }
}

fn lstm(seq: i64, hidden: i64) -> Config {
    recurrent("LSTM", 4, seq, hidden)
}

/// A GRU as PyTorch exports it (`linear_before_reset = 1`): the variant `GRULinearBeforeReset`.
fn gru(seq: i64, hidden: i64) -> Config {
    let mut c = recurrent("GRU", 3, seq, hidden);
    let g = c.model.graph.as_mut().expect("built with a graph");
    g.node[0].attribute.push(attr_int("linear_before_reset", 1));
    c
}

/// A one-layer recurrent op with `gates` gates over `seq` steps; input size = hidden size.
fn recurrent(op_type: &str, gates: i64, seq: i64, hidden: i64) -> Config {
    let input = hidden;
    let node = op(
        op_type,
        &["x", "w", "r", "b"],
        &["y"],
        vec![attr_int("hidden_size", hidden)],
    );
    Config {
        class: OpClass::Recurrent,
        own_op: false,
        smooth_axis: None,
        label: format!("{} seq {seq} hidden {hidden}", op_type.to_lowercase()),
        model: model(
            node,
            float_value_info("x", &[seq, 1, input]),
            "y",
            vec![
                weight("w", &[1, gates * hidden, input]),
                weight("r", &[1, gates * hidden, hidden]),
                weight("b", &[1, 2 * gates * hidden]),
            ],
        ),
    }
}

/// A float weight filled with a small non-zero value (zeros could take fast paths).
pub(super) fn weight(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    let data: Vec<f32> = (0..n).map(|i| 0.001 * ((i % 7) as f32 - 3.0)).collect();
    tensor_f32(name, dims, &data)
}

/// A model of one node (more may be added) on input `input`, with output `output`.
pub(super) fn model(
    node: NodeProto,
    input: ValueInfoProto,
    output: &str,
    initializer: Vec<TensorProto>,
) -> ModelProto {
    let graph = GraphProto {
        name: "profile".into(),
        node: vec![node],
        input: vec![input],
        output: vec![ValueInfoProto {
            name: output.into(),
            ..Default::default()
        }],
        initializer,
        ..Default::default()
    };
    crate::proto::model(graph, 8, &[("", 17)])
}

/// A node named after its op.
pub(super) fn op(
    op_type: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    node(&op_type.to_lowercase(), op_type, inputs, outputs, attribute)
}

/// `n` Relus on a `[1, 4]` input: next to no work, for the run's own overhead.
pub(super) fn relu_chain(n: usize) -> ModelProto {
    let mut m = model(
        op("Relu", &["x"], &["y0"], vec![]),
        float_value_info("x", &[1, 4]),
        &format!("y{}", n - 1),
        vec![],
    );
    let g = m.graph.as_mut().expect("built with a graph");
    for i in 1..n {
        let mut node = op(
            "Relu",
            &[&format!("y{}", i - 1)],
            &[&format!("y{i}")],
            vec![],
        );
        node.name = format!("relu{i}");
        g.node.push(node);
    }
    m
}

/// A BatchNormalization's scale, bias, mean and variance (positive) for `c` channels, named
/// `<prefix>s`, `<prefix>b`, `<prefix>m`, `<prefix>v`.
pub(super) fn bn_stats(prefix: &str, c: i64) -> Vec<TensorProto> {
    let mut stats: Vec<TensorProto> = ["s", "b", "m", "v"]
        .iter()
        .map(|p| weight(&format!("{prefix}{p}"), &[c]))
        .collect();
    stats[3].raw_data = (0..c).flat_map(|_| 1.0f32.to_le_bytes()).collect();
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiler::tests::analyse;

    #[test]
    fn rerun_spread_compares_the_odd_and_the_even_passes() {
        assert_eq!(rerun_spread(&[1.0]), None);
        // Odd passes' mean 1.0, even passes' 1.1: a rerun of half the passes moves the sample
        // by 10%.
        let s = rerun_spread(&[1.0, 1.2, 0.9, 1.0, 1.1, 1.1]).unwrap();
        assert!((s - 0.1).abs() < 1e-12, "{s}");
    }

    /// The regression key the cost rules give the one node of `c`.
    fn key(c: Config) -> String {
        let a = analyse(&c.model);
        let (n, _) = a.graph.ops().next().unwrap();
        a.features.get(n).regression_op.clone()
    }

    #[test]
    fn conv_variants_follow_the_kernel_tract_picks() {
        assert_eq!(key(conv(64, 64, 56, 3, 1)), "Conv");
        assert_eq!(key(conv(64, 64, 56, 1, 1)), "Conv1x1");
        assert_eq!(key(depthwise(32, 56, 3, 1)), "ConvDepthwise");
        // Grouped but not depthwise: im2col per group.
        assert_eq!(key(grouped_conv(64, 64, 28, 3, 1, 2)), "Conv");
        // Direct spatial: rows of 128 or more and at most 576 inputs per output point.
        assert_eq!(key(conv(64, 64, 128, 3, 1)), "ConvDirect");
        assert_eq!(key(conv(3, 64, 224, 7, 1)), "ConvDirect");
        assert_eq!(key(conv(3, 64, 224, 7, 2)), "ConvThin");
        assert_eq!(key(conv(1, 20, 28, 5, 1)), "ConvThin");
        assert_eq!(key(conv(8, 16, 28, 3, 1)), "Conv");
        assert_eq!(
            key(conv(128, 64, 128, 3, 1)),
            "Conv",
            "1152 inputs per point"
        );
        assert_eq!(key(conv(64, 64, 224, 3, 2)), "Conv", "output rows of 112");
        assert_eq!(key(conv(3, 6, 224, 3, 1)), "ConvThin", "6 output channels");
    }

    #[test]
    fn shuffles_are_transposes_of_rows() {
        let transpose = |dims: &[i64], perm: &[i64]| {
            key(unary(
                "Transpose",
                OpClass::DataMovement,
                dims,
                vec![attr_ints("perm", perm)],
            ))
        };
        assert_eq!(
            transpose(&[1, 3, 80, 28, 28], &[0, 2, 1, 3, 4]),
            "TransposeRows"
        );
        assert_eq!(transpose(&[64, 64], &[1, 0]), "Transpose");
    }

    #[test]
    fn broadcast_variant_is_the_element_by_element_path() {
        assert_eq!(
            key(binary("Mul", &[1, 64, 28, 28], &[64, 1, 1])),
            "Broadcast"
        );
        assert_eq!(
            key(binary("Mul", &[1, 64, 28, 28], &[1, 1, 1, 28])),
            "Broadcast"
        );
        for fast in [
            &[1, 64, 28, 28][..],
            &[1, 64, 1, 1],
            &[1],
            &[28, 28],
            &[64, 28, 28],
        ] {
            assert_eq!(
                key(binary("Mul", &[1, 64, 28, 28], fast)),
                "Mul",
                "{fast:?}"
            );
            // The same against a batch of two.
            if fast.len() < 4 || fast[0] == 1 && fast[1] == 64 && fast[2] == 1 {
                assert_eq!(
                    key(binary("Mul", &[2, 64, 28, 28], fast)),
                    "Mul",
                    "{fast:?}"
                );
            }
        }
    }
}
