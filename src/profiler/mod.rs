//! The deployment phase (`nsplit profile`): time each op class on this machine, in the runtime
//! that will run the halves (tract or onnxruntime), over a grid of configurations, fit one
//! regression per class, and write a measured [`DeviceProfile`] that names that runtime.
//!
//! Each sample is a one-node ONNX model built here, analysed by nsplit's own pipeline (so the
//! features the regression reads are exactly those predictions will read) and run by the
//! runtime: warm-up runs, then the median of timed runs. With tract, plain Rust only, so the
//! command cross-compiles to a phone (aarch64) as it is.

mod calibration;
pub mod fit;
mod fitting;
mod grid;
pub mod machine;
pub mod measure;

use crate::cost::profile::{DeviceProfile, Provenance, ProvenanceKind, Role, FORMAT, VERSION};
use crate::profiler::fit::least_squares;
use crate::profiler::measure::{median, trimmed_mean};
use crate::runtime::{LoadedModel, Runtime};
use anyhow::Result;
use calibration::Calibration;
use grid::Grid;
use onnx_protobuf::{Message, ModelProto};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tract_onnx::prelude::tract_ndarray::Axis;
use tract_onnx::prelude::{Datum, IntoTensor, Tensor};

/// How much to measure.
#[derive(Copy, Clone, Debug)]
pub struct ProfileOptions {
    pub role: Role,
    /// A small grid and few repetitions: under a minute, for tests.
    pub quick: bool,
    /// Assumed active power (W) recorded for a mobile profile (power is not measured).
    pub power_w: f64,
    /// The runtime that times the models: the one that will run the halves on that device.
    pub runtime: Runtime,
}

/// Passes over the grid in a full profile.
const PASSES: usize = 6;
/// Untimed runs, then timed runs whose median is a pass's figure.
const WARMUP: usize = 1;
const RUNS: usize = 3;

/// Each pass over the grid comes in this many parts, with a [`Checkpoint`] after each.
pub const PARTS: usize = 4;

/// Where a profile stands when it calls back between parts of its passes.
#[derive(Copy, Clone, Debug)]
pub struct Checkpoint {
    /// Counts every checkpoint of the run, from 0.
    pub index: usize,
    /// The pass over the grid, from 0.
    pub pass: usize,
    /// The last checkpoint of its pass.
    pub end_of_pass: bool,
}

impl Checkpoint {
    /// Every checkpoint of `passes` passes, in order: those a profile calls back at, and those
    /// a benchmark that reuses a saved profile walks through instead.
    pub fn all(passes: usize) -> impl Iterator<Item = Checkpoint> {
        (0..passes * PARTS).map(|index| Checkpoint {
            index,
            pass: index / PARTS,
            end_of_pass: index % PARTS + 1 == PARTS,
        })
    }
}

/// Measure, fit and return the profile. `progress` is told the number of configurations and
/// each one done, and, with a total of 0, each phase between them (building, fitting), so that
/// a long phase is never silent.
pub fn profile(opts: &ProfileOptions, progress: impl FnMut(usize, &str)) -> Result<DeviceProfile> {
    profile_with(opts, progress, |_| Ok(()))
}

/// [`profile`], calling `between` after each of the [`PARTS`] parts of each pass over the
/// grid: a benchmark times its own models there, so that they and the grid see the same
/// states of the machine (which change over minutes as well as seconds: docs/accuracy.md).
pub fn profile_with(
    opts: &ProfileOptions,
    mut progress: impl FnMut(usize, &str),
    mut between: impl FnMut(Checkpoint) -> Result<()>,
) -> Result<DeviceProfile> {
    opts.runtime.ensure_available()?;
    let dir = tempfile::tempdir()?;
    // This machine's speed changes from one second to the next (medians of the same model a few
    // seconds apart differ by up to 50%: docs/accuracy.md), so one long median is no property of
    // it. The full run times the grid in short passes spread over the run, alternately forwards
    // and backwards, and takes each configuration's typical median (the trimmed mean over the
    // passes): the machine's mean speed, which whole networks, whose runs last long enough to
    // average its states, run at too; the fastest median would be a state only short runs see.
    let passes = if opts.quick { 1 } else { PASSES };
    let configs = grid::grid(opts.quick);
    let total = configs.len() * (passes + 1);
    progress(0, "building the one-node models");
    let mut grid = Grid::build(dir.path(), configs, opts.runtime, |label| {
        progress(total, label)
    })?;
    progress(
        0,
        "building the reference conv and the calibration networks",
    );
    let mut reference = Reference::new(dir.path(), opts.runtime)?;
    // The calibration networks are timed after each part of each pass (they run in
    // milliseconds; each node's time is the typical one over them all), and the Relu chains of
    // the run overhead after each pass.
    let mut calibration = Calibration::new(dir.path(), opts.quick, opts.runtime)?;
    let mut overhead = RunOverhead::new(dir.path(), opts.runtime)?;
    for at in Checkpoint::all(passes) {
        grid.time_part(at.pass, at.index % PARTS, &mut reference, |label| {
            progress(total, label)
        })?;
        calibration.time(RUNS, &mut reference)?;
        between(at)?;
        if at.end_of_pass {
            overhead.time()?;
        }
    }
    progress(0, "fitting the regressions");
    let run_overhead_ms = overhead.ms();
    let reference_ms = reference.typical();
    let samples = grid.samples(run_overhead_ms, reference_ms);
    let mut power_w = BTreeMap::new();
    if opts.role == Role::Mobile {
        power_w.insert("default".to_string(), opts.power_w);
    }
    let mut profile = DeviceProfile {
        format: FORMAT.into(),
        version: VERSION,
        name: match opts.runtime {
            Runtime::Tract => format!("measured-{}", std::env::consts::ARCH),
            other => format!("measured-{}-{other}", std::env::consts::ARCH),
        },
        runtime: Some(opts.runtime.describe()),
        role: opts.role,
        provenance: Provenance {
            kind: ProvenanceKind::Measured,
            source: String::new(),
            date: machine::today(),
        },
        fallback: fitting::roofline(&samples),
        regressions: fitting::regressions(&samples),
        power_w,
        run_overhead_ms,
        context_factors: BTreeMap::new(),
        cache_mb: machine::cache_mb(),
        spread: samples.spread(),
        reference_ms: Some(reference_ms),
    };
    progress(0, "context factors from the calibration networks");
    profile.context_factors = calibration::context_factors(&profile, &calibration, reference_ms)?;
    profile.provenance.source =
        provenance_source(opts, &profile, samples.count(), passes, &reference);
    Ok(profile)
}

/// How fast the machine runs from moment to moment: a small conv timed before and after each
/// of the grid's models and each calibration network's timing. Each of those is scaled by the
/// reference's typical time over the whole profile against its time around it, so that every
/// sample stands for the machine's typical speed, as a whole network's run of many states
/// does. Without it, a pass over the grid's wide convs in a fast minute and the calibration
/// networks in a slow one set the conv factor at 1.02 in one profile and 1.20-1.30 in the
/// others, and every prediction 10-25% low (docs/accuracy.md).
pub struct Reference {
    model: LoadedModel,
    zeros: HashMap<String, Tensor>,
    times: Vec<f64>,
}

impl Reference {
    /// The reference written to `dir` and loaded: 16 to 32 channels, 3x3, on 28x28 (3.6 M
    /// multiply-accumulates, a tenth of a millisecond or two).
    pub fn new(dir: &Path, runtime: Runtime) -> Result<Reference> {
        let path = write_model(dir, "reference.onnx", &grid::conv(16, 32, 28, 3, 1).model)?;
        let model = runtime.load(&path)?;
        let zeros = model.zeros()?;
        Ok(Reference {
            model,
            zeros,
            times: vec![],
        })
    }

    /// The reference's median time now (ms).
    fn time(&mut self) -> Result<f64> {
        let ms = median(self.model.time(&self.zeros, WARMUP, RUNS * 3)?);
        self.times.push(ms);
        Ok(ms)
    }

    /// `timed`'s result, and the reference's mean time just before and just after it: the
    /// machine's speed while it ran.
    pub fn around<T>(&mut self, timed: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
        let before = self.time()?;
        let value = timed()?;
        let after = self.time()?;
        Ok((value, (before + after) / 2.0))
    }

    /// The reference's typical time over the profile so far ([`trimmed_mean`]).
    fn typical(&self) -> f64 {
        trimmed_mean(self.times.clone())
    }

    /// How far the machine's speed moved: the reference's 10th to 90th percentile over its
    /// median.
    fn range(&self) -> f64 {
        let mut t = self.times.clone();
        t.sort_by(f64::total_cmp);
        let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
        if t.is_empty() {
            0.0
        } else {
            (at(0.9) - at(0.1)) / at(0.5)
        }
    }
}

/// Chains of this many next-to-free Relus time a run's own overhead.
const OVERHEAD_CHAINS: [usize; 4] = [1, 2, 4, 8];

/// A run's own overhead, taken out of every sample (so that the fits are per-node costs) and
/// added back once per model run: the intercept of the line through the times of chains of
/// [`OVERHEAD_CHAINS`] Relus, each chain timed after every pass and its time the typical one
/// (the trimmed mean over the passes). It was two one-Relu runs less a two-Relu run, timed
/// once at the end: that difference of two microsecond medians moved from 0.8 to 1.9 us
/// between profiles, and every node's intercept the other way, which moved models of three
/// tiny nodes from +7% in one profile to -25..-33% in another (docs/accuracy.md).
struct RunOverhead {
    chains: Vec<ReluChain>,
}

/// A chain of Relus, loaded, and its medians so far.
struct ReluChain {
    length: f64,
    model: LoadedModel,
    zeros: HashMap<String, Tensor>,
    medians: Vec<f64>,
}

impl RunOverhead {
    /// The chains written to `dir` and loaded.
    fn new(dir: &Path, runtime: Runtime) -> Result<RunOverhead> {
        let mut chains = vec![];
        for n in OVERHEAD_CHAINS {
            let path = write_model(dir, &format!("relu-chain{n}.onnx"), &grid::relu_chain(n))?;
            let model = runtime.load(&path)?;
            let zeros = model.zeros()?;
            chains.push(ReluChain {
                length: n as f64,
                model,
                zeros,
                medians: vec![],
            });
        }
        Ok(RunOverhead { chains })
    }

    /// Time each chain once more: the median of many runs (each takes microseconds).
    fn time(&mut self) -> Result<()> {
        for c in &mut self.chains {
            let times = c.model.time(&c.zeros, WARMUP * 10, RUNS * 10)?;
            c.medians.push(median(times));
        }
        Ok(())
    }

    /// The overhead (ms): the intercept of the chains' line, at least 0.
    fn ms(&self) -> f64 {
        let points: Vec<(f64, f64)> = self
            .chains
            .iter()
            .map(|c| (c.length, trimmed_mean(c.medians.clone())))
            .collect();
        intercept(&points).max(0.0)
    }
}

/// The intercept of the least-squares line through `points` (x, y), by the regressions' own
/// solver; 0 without two distinct x.
fn intercept(points: &[(f64, f64)]) -> f64 {
    let rows: Vec<Vec<f64>> = points.iter().map(|p| vec![1.0, p.0]).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    least_squares(&rows, &ys).map_or(0.0, |b| b[0])
}

/// How the profile was measured, for its provenance.
fn provenance_source(
    opts: &ProfileOptions,
    profile: &DeviceProfile,
    samples: usize,
    passes: usize,
    reference: &Reference,
) -> String {
    format!(
        "nsplit profile {}{} on {}: {} one-node models timed with {} ({} warm-up, median of {} runs, the trimmed mean of {} pass{}{}), each at the machine's typical speed (a reference conv timed around every sample: {:.3} ms, its 10th to 90th percentile {:.0}% of that apart); run overhead {:.4} ms; context factors from {}: {}; {}",
        env!("CARGO_PKG_VERSION"),
        if opts.quick { " --quick" } else { "" },
        machine::machine_description(),
        samples,
        opts.runtime.describe(),
        WARMUP,
        RUNS,
        passes,
        if passes == 1 { "" } else { "es" },
        profile
            .spread
            .map_or(String::new(), |s| format!(", rerun spread {:.1}%", 100.0 * s)),
        reference.typical(),
        100.0 * reference.range(),
        profile.run_overhead_ms,
        calibration::describe_suite(opts.quick),
        profile.context_factors_text(),
        if opts.role == Role::Mobile {
            format!("power not measured: {} W assumed for every class", opts.power_w)
        } else {
            "no power model (cloud)".into()
        }
    )
}

/// Write `model` as `dir/name`.
fn write_model(dir: &Path, name: &str, model: &ModelProto) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, model.write_to_bytes()?)?;
    Ok(path)
}

/// Median wall time (ms) of `runs` runs of the model at `path` in `runtime`, after `warmup`, on
/// random values of both signs as the networks are timed on (zeros take fast paths real data
/// does not: onnxruntime's PRelu ran 6x faster on them than inside a network), smoothed along
/// `smooth_axis` where one is given.
fn time_model(
    path: &Path,
    runtime: Runtime,
    smooth_axis: Option<usize>,
    warmup: usize,
    runs: usize,
) -> Result<f64> {
    let mut model = runtime.load(path)?;
    let mut values = model.random_values(0)?;
    if let Some(axis) = smooth_axis {
        for v in values.values_mut() {
            *v = smoothed(v, axis)?;
        }
    }
    Ok(median(model.time(&values, warmup, runs)?))
}

/// `t` (f32) with each value the mean of itself and its two neighbours along `axis` (wrapping
/// round): a conv's outputs vary smoothly over a map, so neighbours mostly share their signs
/// (72% of them after this, against half on independent values), and a runtime that branches
/// on the sign predicts its branches as well as it does inside a network. Other types as
/// they are.
fn smoothed(t: &Tensor, axis: usize) -> Result<Tensor> {
    if t.datum_type() != f32::datum_type() || axis >= t.rank() || t.shape()[axis] < 3 {
        return Ok(t.clone());
    }
    let a = t.to_plain_array_view::<f32>()?;
    let n = t.shape()[axis] as isize;
    let mut out = a.to_owned();
    for (mut o, lane) in out
        .lanes_mut(Axis(axis))
        .into_iter()
        .zip(a.lanes(Axis(axis)))
    {
        for i in 0..n {
            let at = |d: isize| lane[((i + d).rem_euclid(n)) as usize];
            o[i as usize] = (at(-1) + at(0) + at(1)) / 3.0;
        }
    }
    Ok(out.into_tensor())
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

#[cfg(test)]
pub(super) mod tests {
    use crate::analysis::Analysis;
    use crate::shapes::InputShapes;
    use onnx_protobuf::ModelProto;

    /// nsplit's analysis of `model`.
    pub(crate) fn analyse(model: &ModelProto) -> Analysis {
        let dir = tempfile::tempdir().unwrap();
        let path = super::write_model(dir.path(), "m.onnx", model).unwrap();
        Analysis::run(&path, &InputShapes::default()).unwrap()
    }

    #[test]
    fn intercept_of_a_line() {
        // 1.1 us of overhead and 0.5 us per Relu, as this machine's chains run.
        let points: Vec<(f64, f64)> = [1.0, 2.0, 4.0, 8.0]
            .iter()
            .map(|&n| (n, 0.0011 + 0.0005 * n))
            .collect();
        assert!((super::intercept(&points) - 0.0011).abs() < 1e-12);
        // Noise on one chain moves it by a fraction of that chain's error.
        let mut noisy = points.clone();
        noisy[1].1 += 0.0004;
        assert!((super::intercept(&noisy) - 0.0011).abs() < 0.0002);
    }
}
