//! From timings to a profile's regressions: the variables each regression reads, the fits,
//! and the roofline fallback for classes without one.

use crate::cost::ops::Variant;
use crate::cost::profile::{Figures, Regression, Roofline, Variable};
use crate::cost::OpClass;
use crate::profiler::fit::{fit_best, Sample};
use crate::profiler::measure::median;
use std::collections::BTreeMap;

/// One measured configuration: its work and its latency.
#[derive(Copy, Clone, Debug)]
pub(super) struct Timing {
    pub(super) work: Figures,
    pub(super) ms: f64,
}

/// The grid's timings by regression key, with each model's rerun spread.
#[derive(Default)]
pub(super) struct Samples {
    pub(super) timings: BTreeMap<String, (OpClass, Vec<Timing>)>,
    /// By regression key, one per model timed in more than one pass.
    pub(super) spreads: BTreeMap<String, Vec<f64>>,
}

impl Samples {
    pub(super) fn count(&self) -> usize {
        self.timings.values().map(|(_, v)| v.len()).sum()
    }

    /// The median rerun spread of the models of regression `key`.
    pub(super) fn spread_of(&self, key: &str) -> Option<f64> {
        self.spreads.get(key).map(|v| median(v.clone()))
    }

    /// The median rerun spread over every model; `None` with a single pass.
    pub(super) fn spread(&self) -> Option<f64> {
        let all: Vec<f64> = self.spreads.values().flatten().copied().collect();
        (!all.is_empty()).then(|| median(all))
    }
}

/// The best fit of each regression (see [`fit_best`]), with its rerun spread.
pub(super) fn regressions(samples: &Samples) -> BTreeMap<String, Regression> {
    let mut regressions = BTreeMap::new();
    for (key, (class, s)) in &samples.timings {
        let vars = variables(*class, key);
        let pts: Vec<Sample> = s
            .iter()
            .map(|t| Sample {
                x: vars.iter().map(|&v| t.work.get(v)).collect(),
                y: t.ms,
            })
            .collect();
        if let Some(mut r) = fit_best(&vars, &pts) {
            r.spread = samples.spread_of(key);
            regressions.insert(key.clone(), r);
        }
    }
    regressions
}

/// The variables a regression reads, by class and key. Elementwise-like classes read as many
/// bytes as they write, so one of the two is enough (both would be collinear). Convolutions with
/// a kernel larger than 1x1 also read their patches: a narrow conv pays the gather per FLOP; a
/// pointwise or depthwise one's patches are its input (collinear with the bytes read).
fn variables(class: OpClass, key: &str) -> Vec<Variable> {
    match class {
        OpClass::Conv if *key == Variant::Conv1x1.key() => {
            vec![Variable::Mflops, Variable::MbRead, Variable::MbWritten]
        }
        // A first layer (3 input channels) is a thin product whose time goes to its patches
        // and to writing its wide output; its weights are a few kilobytes.
        OpClass::Conv if *key == Variant::ConvThin.key() => {
            vec![Variable::Mflops, Variable::MbPatches, Variable::MbWritten]
        }
        OpClass::Conv if *key != Variant::ConvDepthwise.key() => vec![
            Variable::Mflops,
            Variable::MbRead,
            Variable::MbPatches,
            Variable::MbWritten,
        ],
        OpClass::Conv | OpClass::Matmul => vec![Variable::Mflops, Variable::MbRead],
        OpClass::Pool if *key == Variant::GlobalPool.key() => vec![Variable::MbRead],
        // Each step costs apart from its FLOPs. The output's bytes (steps x hidden units) stood
        // for the steps before: a 16-step LSTM runs as fast with 8 units as with 32, and that
        // fit missed the grid's own LSTMs by 30% on average, this one by 2%.
        OpClass::Recurrent => vec![Variable::Mflops, Variable::Steps],
        // LRN's FLOPs (2 x size + 3 per element) carry its window: with bytes too they would be
        // collinear over a grid of one window size.
        OpClass::Norm if key == "op:LRN" => vec![Variable::Mflops],
        // BatchNormalization is 2 operations per element, LRN 2 x size + 3: FLOPs tell them apart.
        OpClass::Norm => vec![Variable::Mflops, Variable::MbRead],
        // FLOPs count the window: a 3x3 stride-1 pool does 9x a 2x2 stride-2 one's work per
        // output.
        OpClass::Pool => vec![Variable::Mflops, Variable::MbRead, Variable::MbWritten],
        // One op, its FLOPs a fixed multiple of its bytes.
        OpClass::Activation if key == "op:PRelu" => vec![Variable::MbRead],
        // Relu is 1 operation per element, Sigmoid 4 (a transcendental): FLOPs tell them apart.
        // On bytes alone the fit averaged the two (27% held-out error) and over-predicted every
        // Relu of a small net by a third.
        OpClass::Activation => vec![Variable::Mflops, Variable::MbRead],
        _ => vec![Variable::MbRead],
    }
}

/// The fallback for classes without a regression, from the best throughputs seen.
pub(super) fn roofline(samples: &Samples) -> Roofline {
    let samples = &samples.timings;
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
