//! The deployment phase (`nsplit profile`): time each op class on this machine with tract over a
//! grid of configurations, fit one regression per class, and write a measured [`DeviceProfile`].
//!
//! Each sample is a one-node ONNX model built here, analysed by nsplit's own pipeline (so the
//! features the regression reads are exactly those predictions will read) and run by tract:
//! warm-up runs, then the median of timed runs. Plain Rust and tract only, so the command
//! cross-compiles to a phone (aarch64) as it is.

use super::fit::{fit_best, Sample};
use super::profile::{
    DeviceProfile, Figures, Provenance, ProvenanceKind, Role, Roofline, Variable, FORMAT, VERSION,
};
use super::OpClass;
use crate::shapes::InputShapes;
use crate::Analysis;
use anyhow::{Context, Result};
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use petgraph::graph::NodeIndex;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use tract_onnx::prelude::*;

/// One measured configuration: its work and its median latency.
#[derive(Copy, Clone, Debug)]
struct Timing {
    work: Figures,
    ms: f64,
}

/// How much to measure.
#[derive(Copy, Clone, Debug)]
pub struct ProfileOptions {
    pub role: Role,
    /// A small grid and few repetitions: under a minute, for tests.
    pub quick: bool,
    /// Assumed active power (W) recorded for a mobile profile (power is not measured).
    pub power_w: f64,
}

/// One configuration to time: its class, a name, and the model.
struct Config {
    class: OpClass,
    /// Timed for a regression of the op's own (`op:<OpType>`), not its class's.
    own_op: bool,
    label: String,
    model: ModelProto,
}

/// Measure, fit and return the profile. `progress` is told the number of configurations and
/// each one done.
pub fn profile(opts: &ProfileOptions, progress: impl FnMut(usize, &str)) -> Result<DeviceProfile> {
    profile_with(opts, progress, |_| Ok(()))
}

/// [`profile`], calling `between(pass)` after each pass over the grid: a benchmark times its
/// own models there, so that they and the grid see the same states of the machine (which
/// change over minutes as well as seconds: docs/accuracy.md).
pub fn profile_with(
    opts: &ProfileOptions,
    mut progress: impl FnMut(usize, &str),
    mut between: impl FnMut(usize) -> Result<()>,
) -> Result<DeviceProfile> {
    let configs = grid(opts.quick);
    // This machine's speed changes from one second to the next (medians of the same model a few
    // seconds apart differ by up to 50%: docs/accuracy.md), so one long median is no property of
    // it. The full run times the grid in four short passes, alternately forwards and backwards,
    // and keeps each configuration's fastest median: the machine at its own speed, which any
    // later run finds again by the same statistic.
    let passes = if opts.quick { 1 } else { PASSES };
    let total = configs.len() * passes;
    let (warmup, runs) = (1, 3);
    let dir = tempfile::tempdir()?;
    let mut timed: Vec<(String, OpClass, Figures, std::path::PathBuf, Vec<f64>)> = vec![];
    for (i, c) in configs.into_iter().enumerate() {
        progress(total, &c.label);
        let path = write_model(dir.path(), &format!("{i}.onnx"), &c.model)?;
        let a = Analysis::run(&path, &InputShapes::default())
            .with_context(|| format!("analysing {}", c.label))?;
        let mut work = Figures::default();
        // Regression key: the op's own when asked for or when the cost rules make it a variant
        // (`op:Conv1x1`, ...), else its class's; exactly the key predictions will look up first.
        let mut group = c.class.name().to_string();
        for (n, op) in a.graph.ops() {
            let f = a.features.get(n);
            work += Figures::of(f.flops, f.bytes_read, f.bytes_written, f.patch_bytes)
                .with_context(|| format!("{}: work unknown", c.label))?;
            if c.own_op || f.regression_op != op.op_type {
                group = format!("op:{}", f.regression_op);
            }
        }
        let ms = time_model(&path, warmup, runs).with_context(|| format!("timing {}", c.label))?;
        timed.push((group, c.class, work, path, vec![ms]));
    }
    // The calibration network, timed three times after each pass over the grid (it runs in
    // milliseconds; each node keeps its fastest median).
    let mut calibration = Calibration::new(dir.path())?;
    calibration.time(3, runs)?;
    between(0)?;
    for pass in 1..passes {
        let order: Box<dyn Iterator<Item = &mut _>> = if pass % 2 == 1 {
            Box::new(timed.iter_mut().rev())
        } else {
            Box::new(timed.iter_mut())
        };
        for (group, _, _, path, ms) in order {
            progress(total, group);
            ms.push(time_model(path, warmup, runs).with_context(|| format!("timing {group}"))?);
        }
        calibration.time(3, runs)?;
        between(pass)?;
    }
    let mut samples: BTreeMap<String, (OpClass, Vec<Timing>)> = BTreeMap::new();
    let mut group_spreads: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (group, class, work, _, ms) in timed {
        if let Some(s) = rerun_spread(&ms) {
            group_spreads.entry(group.clone()).or_default().push(s);
        }
        samples
            .entry(group)
            .or_insert((class, vec![]))
            .1
            .push(Timing {
                work,
                ms: ms.iter().copied().fold(f64::INFINITY, f64::min),
            });
    }
    // A run's own overhead: two one-node runs less a two-node run. Taken out of every sample,
    // so the fits are per-node costs, and added back once per model run.
    let tiny = |n: usize| -> Result<f64> {
        let path = write_model(dir.path(), &format!("tiny{n}.onnx"), &relu_chain(n))?;
        time_model(&path, warmup * 10, runs * 10)
    };
    let run_overhead_ms = (2.0 * tiny(1)? - tiny(2)?).max(0.0);
    for (_, s) in samples.values_mut() {
        for t in s {
            t.ms = (t.ms - run_overhead_ms).max(1e-6);
        }
    }
    let mut regressions = BTreeMap::new();
    for (group, (class, s)) in &samples {
        let vars = variables(*class, group);
        let pts: Vec<Sample> = s
            .iter()
            .map(|t| Sample {
                x: vars.iter().map(|&v| t.work.get(v)).collect(),
                y: t.ms,
            })
            .collect();
        if let Some(mut r) = fit_best(&vars, &pts) {
            r.spread = group_spreads.get(group).map(|v| median(v.clone()));
            regressions.insert(group.clone(), r);
        }
    }
    let mut power_w = BTreeMap::new();
    if opts.role == Role::Mobile {
        power_w.insert("default".to_string(), opts.power_w);
    }
    let mut profile = DeviceProfile {
        format: FORMAT.into(),
        version: VERSION,
        name: format!("measured-{}", std::env::consts::ARCH),
        role: opts.role,
        provenance: Provenance {
            kind: ProvenanceKind::Measured,
            source: String::new(),
            date: today(),
        },
        fallback: roofline(&samples),
        regressions,
        power_w,
        run_overhead_ms,
        context_factors: BTreeMap::new(),
        spread: (passes > 1).then(|| median(group_spreads.into_values().flatten().collect())),
    };
    progress(total, "calibration network");
    profile.context_factors = context_factors(&profile, &calibration)?;
    profile.provenance.source = format!(
        "nsplit profile {}{} on {}: {} one-node models timed with tract-onnx 0.23 ({} warm-up, median of {} runs, the fastest of {} pass{}{}); run overhead {:.4} ms; context factors from a calibration CNN: {}; {}",
        env!("CARGO_PKG_VERSION"),
        if opts.quick { " --quick" } else { "" },
        machine_description(),
        samples.values().map(|(_, v)| v.len()).sum::<usize>(),
        warmup,
        runs,
        passes,
        if passes == 1 { "" } else { "es" },
        profile
            .spread
            .map_or(String::new(), |s| format!(", rerun spread {:.1}%", 100.0 * s)),
        run_overhead_ms,
        profile.context_factors_text(),
        if opts.role == Role::Mobile {
            format!("power not measured: {} W assumed for every class", opts.power_w)
        } else {
            "no power model (cloud)".into()
        }
    );
    Ok(profile)
}

/// The variables a regression reads, by class and key. Elementwise-like classes read as many
/// bytes as they write, so one of the two is enough (both would be collinear). Convolutions with
/// a kernel larger than 1x1 also read their patches: a narrow conv pays the gather per FLOP; a
/// pointwise or depthwise one's patches are its input (collinear with the bytes read).
fn variables(class: OpClass, key: &str) -> Vec<Variable> {
    match class {
        OpClass::Conv if key == "op:Conv1x1" => {
            vec![Variable::Mflops, Variable::MbRead, Variable::MbWritten]
        }
        // A first layer (3 input channels) is a thin product whose time goes to writing its
        // wide output: the bytes written count apart from the FLOPs.
        OpClass::Conv if key != "op:ConvDepthwise" => vec![
            Variable::Mflops,
            Variable::MbRead,
            Variable::MbPatches,
            Variable::MbWritten,
        ],
        OpClass::Conv | OpClass::Matmul => vec![Variable::Mflops, Variable::MbRead],
        OpClass::Pool if key == "op:GlobalPool" => vec![Variable::MbRead],
        // The output is steps x hidden units: with FLOPs, it separates the per-step cost.
        OpClass::Recurrent => vec![Variable::Mflops, Variable::MbWritten],
        // LRN's FLOPs (2 x size + 3 per element) carry its window: with bytes too they would be
        // collinear over a grid of one window size.
        OpClass::Norm if key == "op:LRN" => vec![Variable::Mflops],
        // BatchNormalization is 2 operations per element, LRN 2 x size + 3: FLOPs tell them apart.
        OpClass::Norm => vec![Variable::Mflops, Variable::MbRead],
        // FLOPs count the window: a 3x3 stride-1 pool does 9x a 2x2 stride-2 one's work per
        // output.
        OpClass::Pool => vec![Variable::Mflops, Variable::MbRead, Variable::MbWritten],
        _ => vec![Variable::MbRead],
    }
}

/// The fallback for classes without a regression, from the best throughputs seen.
fn roofline(samples: &BTreeMap<String, (OpClass, Vec<Timing>)>) -> Roofline {
    let best = |classes: &[OpClass], rate: &dyn Fn(&Timing) -> f64| {
        samples
            .values()
            .filter(|(c, _)| classes.contains(c))
            .flat_map(|(_, v)| v)
            .map(rate)
            .fold(0.0, f64::max)
    };
    let peak_gflops = best(&[OpClass::Conv, OpClass::Matmul], &|s| {
        s.work.mflops / s.ms.max(1e-6)
    })
    .max(1.0);
    let memory_gbps = best(
        &[
            OpClass::Elementwise,
            OpClass::Activation,
            OpClass::DataMovement,
        ],
        &|s| (s.work.mb_read + s.work.mb_written) / s.ms.max(1e-6),
    )
    .max(0.1);
    let overhead_ms = samples
        .values()
        .flat_map(|(_, v)| v)
        .map(|s| s.ms)
        .fold(f64::INFINITY, f64::min);
    Roofline {
        peak_gflops,
        memory_gbps,
        overhead_ms: if overhead_ms.is_finite() {
            overhead_ms
        } else {
            0.0
        },
        efficiency: BTreeMap::from([("default".to_string(), 0.5)]),
    }
}

/// Write `model` as `dir/name`.
fn write_model(
    dir: &std::path::Path,
    name: &str,
    model: &ModelProto,
) -> Result<std::path::PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, model.write_to_bytes()?)?;
    Ok(path)
}

/// Median wall time (ms) of running the model with tract, after warm-up.
fn time_model(path: &std::path::Path, warmup: usize, runs: usize) -> Result<f64> {
    let model = tract_onnx::onnx()
        .model_for_path(path)?
        .into_optimized()?
        .into_runnable()?;
    let inputs: TVec<TValue> = model
        .model()
        .input_outlets()?
        .iter()
        .map(|o| {
            let fact = model.model().outlet_fact(*o)?;
            let shape: Vec<usize> = fact.shape.as_concrete().context("symbolic input")?.to_vec();
            Ok(Tensor::zero::<f32>(&shape)?.into_tvalue())
        })
        .collect::<Result<_>>()?;
    for _ in 0..warmup {
        model.run(inputs.clone())?;
    }
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            model
                .run(inputs.clone())
                .map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<TractResult<_>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// A profile whose rerun spread is above this was taken on a machine too noisy to trust.
pub const NOISY_SPREAD: f64 = 0.10;

/// What to tell the user when `p` was measured on a machine too noisy to trust.
pub fn noise_warning(p: &DeviceProfile) -> Option<String> {
    let spread = p.spread.filter(|&s| s > NOISY_SPREAD)?;
    Some(format!(
        "the machine was noisy while profiling: half the passes against the other half, samples moved by {:.0}% (median; trusted up to {:.0}%), so predictions may move as much from one profile to the next. Profile again with nothing else running, and keep the profile with the lowest spread.",
        100.0 * spread,
        100.0 * NOISY_SPREAD
    ))
}

/// Passes over the grid in a full profile.
const PASSES: usize = 6;

/// How far a rerun of the profile would move a sample: the two halves of its passes (odd and
/// even) each give the fastest median, as a profile of half the passes would, and the spread is
/// their difference over the faster. `None` with a single pass.
fn rerun_spread(medians: &[f64]) -> Option<f64> {
    let fastest = |parity: usize| {
        medians
            .iter()
            .skip(parity)
            .step_by(2)
            .copied()
            .fold(f64::INFINITY, f64::min)
    };
    let (a, b) = (fastest(0), fastest(1));
    b.is_finite().then(|| (a - b).abs() / a.min(b).max(1e-9))
}

/// The median of `v` (0 when empty).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!(
        "{cpu}, {cores} cores, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

fn today() -> String {
    // Days since the epoch to a civil date (Howard Hinnant's algorithm), to avoid a date crate.
    let days = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        / 86400) as i64;
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}")
}

// ---- the grid of one-node models -------------------------------------------------------------

fn grid(quick: bool) -> Vec<Config> {
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
                vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
            ));
            out.push(unary(
                "LRN",
                OpClass::Norm,
                &[1, c, hw, hw],
                vec![int("size", 5)],
            ));
            out.push(unary(
                "BatchNormalization",
                OpClass::Norm,
                &[1, c, hw, hw],
                vec![],
            ));
        }
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
                    ints("kernel_shape", &[k, k]),
                    ints("strides", &[stride, stride]),
                    ints("pads", &[1, 1, 1, 1]),
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
            vec![ints("perm", &[1, 0])],
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

fn attr(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: kind.into(),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..attr(name, AttributeType::INTS)
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: v,
        ..attr(name, AttributeType::INT)
    }
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value, Dimension};
    let shape = TensorShapeProto {
        dim: dims
            .iter()
            .map(|&d| Dimension {
                value: Some(Value::DimValue(d)),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let tt = type_proto::Tensor {
        elem_type: 1,
        shape: Some(shape).into(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        type_: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tt)),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

/// A float weight filled with a small non-zero value (zeros could take fast paths).
fn weight(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        raw_data: (0..n)
            .flat_map(|i| (0.001 * ((i % 7) as f32 - 3.0)).to_le_bytes())
            .collect(),
        ..Default::default()
    }
}

fn model(
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
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
            ..Default::default()
        }],
        graph: Some(graph).into(),
        ..Default::default()
    }
}

fn op(
    op_type: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op_type.into(),
        name: op_type.to_lowercase(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn conv(cin: i64, cout: i64, hw: i64, k: i64, stride: i64) -> Config {
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
            ints("pads", &[k / 2; 4]),
            ints("strides", &[stride, stride]),
            int("group", group),
        ],
    );
    Config {
        class: OpClass::Conv,
        own_op: false,
        label: format!("conv {cin}->{cout} {hw}x{hw} k{k} s{stride} g{group}"),
        model: model(
            node,
            value_info("x", &[1, cin, hw, hw]),
            "y",
            vec![
                weight("w", &[cout, cin / group, k, k]),
                weight("b", &[cout]),
            ],
        ),
    }
}

fn gemm(k: i64, n: i64) -> Config {
    let node = op("Gemm", &["x", "w", "b"], &["y"], vec![int("transB", 1)]);
    Config {
        class: OpClass::Matmul,
        own_op: false,
        label: format!("gemm 1x{k} -> {n}"),
        model: model(
            node,
            value_info("x", &[1, k]),
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
        label: shape_label(op_type, dims),
        model: model(
            op(op_type, &inputs, &["y"], attrs),
            value_info("x", dims),
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
        label: format!("{} by {:?}", shape_label(op_type, dims), c_dims),
        model: model(
            op(op_type, &["x", "c"], &["y"], vec![]),
            value_info("x", dims),
            "y",
            vec![weight("c", c_dims)],
        ),
    }
}

/// Ops run slower inside a network than alone (each finds the caches full of the previous ones'
/// data, much of it dirty), and memory-bound ops more than compute-bound ones. Per op class: the
/// time its fusion groups take in a small CNN of the profiled families (timed in place by
/// [`Calibration`]; a group counts for the class of its heaviest predicted member) over the sum of their predictions. Only groups
/// predicted at 0.05 ms or more count (a `Flatten` that tract makes a no-op says nothing of a
/// `Concat`), and only classes whose groups agree within 25%; `default` is the whole network's
/// ratio. Clamped to [0.5, 3].
fn context_factors(
    fitted: &DeviceProfile,
    calibration: &Calibration,
) -> Result<BTreeMap<String, f64>> {
    let a = &calibration.analysis;
    let measured = calibration
        .measured
        .as_ref()
        .context("the calibration network was not timed")?;
    // Per fusion group (tract times a fused chain as one kernel): its time, its predicted time,
    // and the class of its heaviest predicted member, which the group calibrates.
    let predicted = |n: NodeIndex| fitted.node_latency_ms(a.features.get(n)).unwrap_or(0.0);
    let mut groups: HashMap<NodeIndex, Vec<NodeIndex>> = HashMap::new();
    for (n, owner) in measured.fusion_owners(a) {
        groups.entry(owner).or_default().push(n);
    }
    // (time, predicted time, lowest and highest ratio of a group of 0.05 ms or more) per class.
    let mut sums: BTreeMap<&str, (f64, f64, f64, f64)> = BTreeMap::new();
    let mut whole = (0.0, 0.0);
    for (owner, members) in groups {
        let took = measured.per_node_ms.get(&owner).copied().unwrap_or(0.0);
        let expected: f64 = members.iter().map(|&n| predicted(n)).sum();
        whole = (whole.0 + took, whole.1 + expected);
        let heaviest = members
            .iter()
            .copied()
            .max_by(|&x, &y| predicted(x).total_cmp(&predicted(y)))
            .unwrap_or(owner);
        if expected < 0.05 || took <= 0.0 {
            continue;
        }
        let s = sums
            .entry(a.features.get(heaviest).class.name())
            .or_insert((0.0, 0.0, f64::INFINITY, 0.0));
        let ratio = took / expected;
        *s = (s.0 + took, s.1 + expected, s.2.min(ratio), s.3.max(ratio));
    }
    // A class gets a factor of its own only where its groups agree (within 25%): one number is
    // no calibration for a class whose ops the network slows unevenly.
    let mut factors: BTreeMap<String, f64> = sums
        .into_iter()
        .filter(|(_, (_, _, lo, hi))| hi / lo <= 1.25)
        .map(|(class, (took, expected, _, _))| (class.to_string(), took / expected))
        .collect();
    if whole.1 > 0.0 {
        factors.insert("default".into(), whole.0 / whole.1);
    }
    Ok(factors
        .into_iter()
        .map(|(class, f)| (class, f.clamp(0.5, 3.0)))
        .collect())
}

/// The calibration network and its per-node times so far: timed a few times after each pass
/// over the grid (not all at the end), so that it sees the same states of the machine as the
/// grid, and each node keeps its fastest median. Timed all at once at the end, a slow minute
/// there moved every context factor by 20% between two profiles (docs/accuracy.md).
struct Calibration {
    analysis: Analysis,
    measured: Option<crate::measure::Measured>,
}

impl Calibration {
    fn new(dir: &std::path::Path) -> Result<Calibration> {
        let path = write_model(dir, "calibration.onnx", &calibration_net())?;
        let analysis = Analysis::run(&path, &InputShapes::default())
            .context("analysing the calibration network")?;
        Ok(Calibration {
            analysis,
            measured: None,
        })
    }

    /// Time the network `times` times (each the median of `runs`), keeping each node's fastest.
    fn time(&mut self, times: usize, runs: usize) -> Result<()> {
        for _ in 0..times {
            let again = crate::measure::measure(&self.analysis, runs)
                .context("timing the calibration network")?;
            match &mut self.measured {
                None => self.measured = Some(again),
                Some(m) => m.keep_faster(again),
            }
        }
        Ok(())
    }
}

/// A small CNN of the profiled families (convs 3x3 and 1x1 with BatchNormalization and Relu,
/// a `[C, 1, 1]`-scaled BatchNormalization as exported DenseNets have on pooled maps, max pools,
/// a global pool, a classifier), for the context factors. Not one of the models accuracy is
/// judged on.
fn calibration_net() -> ModelProto {
    let mut net = Chain::new(3);
    net.conv_bn_relu(32, 3, 2, true);
    net.conv_bn_relu(64, 3, 1, false);
    net.max_pool(2, 2, 0);
    let c = net.channels;
    let stats = bn_stats(&format!("n{}", net.nodes.len()), c);
    net.push("BatchNormalization", stats, vec![]);
    for op_type in ["Mul", "Add"] {
        let constant = weight(&format!("{op_type}{}", net.nodes.len()), &[c, 1, 1]);
        net.push(op_type, vec![constant], vec![]);
    }
    net.push("Relu", vec![], vec![]);
    net.conv_bn_relu(128, 1, 1, true);
    net.conv_bn_relu(128, 3, 1, false);
    net.max_pool(3, 2, 1);
    net.conv_bn_relu(256, 3, 1, true);
    net.push("GlobalAveragePool", vec![], vec![]);
    net.push("Flatten", vec![], vec![]);
    let c = net.channels;
    let fc = vec![weight("fc_w", &[1000, c]), weight("fc_b", &[1000])];
    net.push("Gemm", fc, vec![int("transB", 1)]);
    net.push("Softmax", vec![], vec![]);
    net.into_model(&[1, 3, 112, 112])
}

/// A chain of nodes, each reading the one before; `x` is the last output.
struct Chain {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    x: String,
    channels: i64,
}

impl Chain {
    /// An empty chain on an input `x` of `channels` channels.
    fn new(channels: i64) -> Chain {
        Chain {
            nodes: vec![],
            inits: vec![],
            x: "x".into(),
            channels,
        }
    }

    /// The model of the chain, its input `x` of shape `input`.
    fn into_model(self, input: &[i64]) -> ModelProto {
        let mut nodes = self.nodes.into_iter();
        let first = nodes.next().expect("a chain of at least one node");
        let mut m = model(first, value_info("x", input), &self.x, self.inits);
        m.graph
            .as_mut()
            .expect("built with a graph")
            .node
            .extend(nodes);
        m
    }

    fn push(&mut self, op_type: &str, weights: Vec<TensorProto>, attrs: Vec<AttributeProto>) {
        let i = self.nodes.len();
        let out = format!("t{i}");
        let inputs: Vec<&str> = std::iter::once(self.x.as_str())
            .chain(weights.iter().map(|w| w.name.as_str()))
            .collect();
        let mut node = op(op_type, &inputs, &[&out], attrs);
        node.name = format!("{}{i}", op_type.to_lowercase());
        self.nodes.push(node);
        self.inits.extend(weights);
        self.x = out;
    }

    fn conv_bn_relu(&mut self, cout: i64, k: i64, stride: i64, bn: bool) {
        let i = self.nodes.len();
        let weights = vec![
            weight(&format!("w{i}"), &[cout, self.channels, k, k]),
            weight(&format!("b{i}"), &[cout]),
        ];
        let attrs = vec![
            ints("pads", &[k / 2; 4]),
            ints("strides", &[stride, stride]),
        ];
        self.push("Conv", weights, attrs);
        self.channels = cout;
        if bn {
            self.push(
                "BatchNormalization",
                bn_stats(&format!("n{i}"), cout),
                vec![],
            );
        }
        self.push("Relu", vec![], vec![]);
    }

    fn max_pool(&mut self, k: i64, stride: i64, pads: i64) {
        let attrs = vec![
            ints("kernel_shape", &[k, k]),
            ints("strides", &[stride, stride]),
            ints("pads", &[pads; 4]),
        ];
        self.push("MaxPool", vec![], attrs);
    }
}

/// A BatchNormalization's scale, bias, mean and variance (positive) for `c` channels, named
/// `<prefix>s`, `<prefix>b`, `<prefix>m`, `<prefix>v`.
fn bn_stats(prefix: &str, c: i64) -> Vec<TensorProto> {
    let mut stats: Vec<TensorProto> = ["s", "b", "m", "v"]
        .iter()
        .map(|p| weight(&format!("{prefix}{p}"), &[c]))
        .collect();
    stats[3].raw_data = (0..c).flat_map(|_| 1.0f32.to_le_bytes()).collect();
    stats
}

/// `n` Relus on a `[1, 4]` input: next to no work, for the run's own overhead.
fn relu_chain(n: usize) -> ModelProto {
    let mut m = model(
        op("Relu", &["x"], &["y0"], vec![]),
        value_info("x", &[1, 4]),
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

fn lstm(seq: i64, hidden: i64) -> Config {
    recurrent("LSTM", 4, seq, hidden)
}

/// A GRU as PyTorch exports it (`linear_before_reset = 1`): the variant `GRULinearBeforeReset`.
fn gru(seq: i64, hidden: i64) -> Config {
    let mut c = recurrent("GRU", 3, seq, hidden);
    let g = c.model.graph.as_mut().expect("built with a graph");
    g.node[0].attribute.push(int("linear_before_reset", 1));
    c
}

/// A one-layer recurrent op with `gates` gates over `seq` steps; input size = hidden size.
fn recurrent(op_type: &str, gates: i64, seq: i64, hidden: i64) -> Config {
    let input = hidden;
    let node = op(
        op_type,
        &["x", "w", "r", "b"],
        &["y"],
        vec![int("hidden_size", hidden)],
    );
    Config {
        class: OpClass::Recurrent,
        own_op: false,
        label: format!("{} seq {seq} hidden {hidden}", op_type.to_lowercase()),
        model: model(
            node,
            value_info("x", &[seq, 1, input]),
            "y",
            vec![
                weight("w", &[1, gates * hidden, input]),
                weight("r", &[1, gates * hidden, hidden]),
                weight("b", &[1, 2 * gates * hidden]),
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nsplit's analysis of `model`.
    fn analyse(model: &ModelProto) -> Analysis {
        let dir = tempfile::tempdir().unwrap();
        let path = write_model(dir.path(), "m.onnx", model).unwrap();
        Analysis::run(&path, &InputShapes::default()).unwrap()
    }

    /// The regression key the cost rules give the one node of `c`.
    #[test]
    fn rerun_spread_compares_the_fastest_of_odd_and_even_passes() {
        assert_eq!(rerun_spread(&[1.0]), None);
        // Odd passes' fastest 1.0, even passes' fastest 1.1: a rerun of half the passes moves
        // the sample by 10%, whatever the slow passes took.
        let s = rerun_spread(&[1.0, 1.5, 2.0, 1.1, 1.0, 3.0]).unwrap();
        assert!((s - 0.1).abs() < 1e-12, "{s}");
    }

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
        assert_eq!(
            key(conv(128, 64, 128, 3, 1)),
            "Conv",
            "1152 inputs per point"
        );
        assert_eq!(key(conv(64, 64, 224, 3, 2)), "Conv", "output rows of 112");
        assert_eq!(key(conv(3, 6, 224, 3, 1)), "Conv", "6 output channels");
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

    #[test]
    fn epilogues_fuse_as_tract_fuses_them() {
        use crate::cost::fusion::Epilogue::{Free, ReadsActivation};
        let mut net = Chain::new(8);
        // 3x3 conv: the BatchNormalization and a per-channel scale fold into its weights, the
        // Relu after them runs apart.
        net.conv_bn_relu(16, 3, 1, true);
        let nodes = net.nodes.len();
        net.nodes.insert(nodes - 1, {
            let mut mul = op("Mul", &["t1", "scale"], &["t1s"], vec![]);
            mul.name = "scale".into();
            mul
        });
        net.inits.push(weight("scale", &[16, 1, 1]));
        net.nodes[nodes].input[0] = "t1s".into();
        // 1x1 conv: BatchNormalization and Relu both run in its kernel.
        net.conv_bn_relu(16, 1, 1, true);
        // A residual sum after a 1x1 conv runs in the kernel but still reads its other input.
        let skip = net.x.clone();
        net.conv_bn_relu(16, 1, 1, false);
        net.nodes.pop();
        let conv = net.nodes.last().unwrap().output[0].clone();
        // The skip branch listed first, as exporters often do.
        let mut sum = op("Add", &[&skip, &conv], &["sum"], vec![]);
        sum.name = "residual".into();
        net.nodes.push(sum);
        net.x = "sum".into();
        net.push("Relu", vec![], vec![]);
        let a = analyse(&net.into_model(&[1, 8, 16, 16]));
        let fused: Vec<(String, Option<crate::cost::fusion::Epilogue>)> = a
            .graph
            .ops()
            .map(|(n, op)| (op.name.clone(), a.features.get(n).fused))
            .collect();
        let expected = [
            ("conv0", None),
            ("batchnormalization1", Some(Free)),
            ("scale", Some(Free)),
            ("relu2", None),
            ("conv4", None),
            ("batchnormalization5", Some(Free)),
            ("relu6", Some(Free)),
            ("conv7", None),
            ("residual", Some(ReadsActivation)),
            ("relu9", Some(Free)),
        ];
        let expected: Vec<_> = expected.iter().map(|(n, f)| (n.to_string(), *f)).collect();
        assert_eq!(fused, expected);
    }
}
