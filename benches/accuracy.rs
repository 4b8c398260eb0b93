//! Prediction accuracy on this machine: profile it (the deployment phase), then predict and
//! measure, under tract, the fixtures and the light model-zoo nets: whole-model latency, and
//! per node for nodes over 1 ms. Writes docs/accuracy.md.
//!
//! ```text
//! scripts/fetch-corpus.sh && cargo bench --bench accuracy
//! ```
//! Run it on a quiet machine: the profile and the measurements share the cores with anything
//! else running.

use nsplit::dev as common;

use nsplit::cost::measure::Measured;
use nsplit::cost::profile::Role;
use nsplit::cost::profiler::{profile_with, ProfileOptions};
use nsplit::shapes::InputShapes;
use nsplit::Analysis;
use petgraph::graph::NodeIndex;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    let root = nsplit::dev::root();
    // NSPLIT_ACCURACY_PROFILE=FILE reuses a profile (e.g. the last run's, saved below) to iterate
    // on predictions without re-profiling; the doc then names that profile's provenance.
    let saved = root.join("target/accuracy-profile.json");
    let mut models: Vec<(PathBuf, Vec<String>)> = [
        "lenet.onnx",
        "resnet_block.onnx",
        "inception_block.onnx",
        "lstm.onnx",
        "gru.onnx",
        "external_data.onnx",
        "ir3_initializer_inputs.onnx",
        "custom_domain.onnx",
    ]
    .iter()
    .map(|f| (root.join("fixtures").join(f), vec![]))
    .collect();
    models.push((
        root.join("fixtures/symbolic_batch.onnx"),
        vec!["images=1x3x32x32".into()],
    ));
    if let Ok(entries) = std::fs::read_dir(root.join("corpus/onnx-backend/light")) {
        let mut light: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
            .collect();
        light.sort();
        models.extend(light.into_iter().map(|p| (p, vec![])));
    } else {
        eprintln!("corpus absent: only the fixtures are measured (run scripts/fetch-corpus.sh)");
    }

    let mut rows = String::new();
    let (mut whole_errors, mut node_errors) = (vec![], vec![]);
    let mut node_rows = String::new();
    // The models are timed as the profiler times its grid (docs/accuracy.md: this machine's
    // speed changes from one second to the next, and over minutes): short passes, alternately
    // forwards and backwards, each time and each node the typical median over the passes
    // (`Measured::typical`), one pass after each of the profiler's passes over its grid, so that
    // both see the same states of the machine.
    let analyses: Vec<Analysis> = models
        .iter()
        .map(|(path, shapes)| Analysis::run(path, &InputShapes::parse(shapes).unwrap()).unwrap())
        .collect();
    let mut timings: Vec<anyhow::Result<Vec<Measured>>> =
        analyses.iter().map(|_| Ok(vec![])).collect();
    let mut pass = |k: usize| -> anyhow::Result<()> {
        let order: Vec<usize> = if k % 2 == 1 {
            (0..analyses.len()).rev().collect()
        } else {
            (0..analyses.len()).collect()
        };
        for i in order {
            if let Ok(list) = &mut timings[i] {
                match nsplit::cost::measure::measure(&analyses[i], RUNS) {
                    Ok(m) => list.push(m),
                    Err(e) => timings[i] = Err(e),
                }
            }
        }
        Ok(())
    };
    let p = match std::env::var_os("NSPLIT_ACCURACY_PROFILE") {
        Some(file) => {
            (0..PASSES).try_for_each(&mut pass).unwrap();
            nsplit::cost::profile::DeviceProfile::resolve(&file.to_string_lossy()).unwrap()
        }
        None => {
            eprintln!("profiling this machine, and timing the models between its passes...");
            let p = profile_with(
                &ProfileOptions {
                    role: Role::Cloud,
                    quick: false,
                    power_w: 0.0,
                },
                |_, _| {},
                &mut pass,
            )
            .unwrap();
            p.write(&saved).unwrap();
            p
        }
    };
    let measurements: Vec<anyhow::Result<Measured>> = timings
        .into_iter()
        .map(|t| t.map(|list| Measured::typical(&list)))
        .collect();
    for (((path, _), a), measured) in models.iter().zip(&analyses).zip(measurements) {
        let measured = match measured {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(
                    rows,
                    "| {} | — | — | — | tract cannot run it: {e:#} |",
                    name(path)
                );
                continue;
            }
        };
        // Nodes that compute only from weights are folded away before running (by tract, and
        // by the planner, which charges them to neither side).
        let constant = nsplit::cut::constant_nodes(&a.graph);
        let mut predicted = 0.0;
        let mut node_ms = std::collections::HashMap::new();
        for (n, _) in a.graph.ops() {
            let f = a.features.get(n);
            let ms = if constant[n.index()] {
                0.0
            } else {
                p.node_latency_ms(f).unwrap_or(0.0)
            };
            predicted += ms;
            node_ms.insert(n, ms);
        }
        predicted += p.run_overhead_ms;
        let group_pred = fusion_groups(a, &measured, &node_ms);
        for (n, op) in a.graph.ops() {
            let (f, ms) = (a.features.get(n), group_pred[&n]);
            let got = measured.per_node_ms.get(&n).copied().unwrap_or(0.0);
            if got > 1.0 {
                let err = (ms - got) / got;
                node_errors.push(err.abs());
                let _ = writeln!(
                    node_rows,
                    "| {} | {} | {} | {ms:.2} | {got:.2} | {:+.0}% |",
                    name(path),
                    op.label(),
                    f.class.name(),
                    100.0 * err
                );
            }
        }
        let err = (predicted - measured.total_ms) / measured.total_ms;
        whole_errors.push(err.abs());
        let _ = writeln!(
            rows,
            "| {} | {predicted:.3} | {:.3} | {:+.1}% | |",
            name(path),
            measured.total_ms,
            100.0 * err
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let within = |v: &[f64], t: f64| v.iter().filter(|e| **e <= t).count();
    let mut doc = String::new();
    let _ = writeln!(doc, "# Prediction accuracy\n");
    let _ = writeln!(doc, "Generated by `cargo bench --bench accuracy` (do not edit by hand). The machine was profiled by");
    let _ = writeln!(doc, "`nsplit profile` in the same run; predictions use that profile; measurements are tract runs");
    let _ = writeln!(
        doc,
        "(the trimmed mean of {PASSES} short passes, each the median of {RUNS} runs after a warm-up, one after each of\nthe profiler's passes over its grid) of the same models on the same machine.\n"
    );
    let _ = writeln!(doc, "Profile: {}\n", p.provenance.source);
    let _ = writeln!(doc, "## Whole model\n");
    let _ = writeln!(
        doc,
        "Median absolute error {:.1}%; {} of {} models within 10%, {} within 25% (targets: median <= 10%, all within 25%).\n",
        100.0 * median(&mut whole_errors.clone()),
        within(&whole_errors, 0.10),
        whole_errors.len(),
        within(&whole_errors, 0.25),
    );
    let _ = writeln!(
        doc,
        "| model | predicted ms | measured ms | error | note |\n|---|---|---|---|---|\n{rows}"
    );
    let _ = writeln!(doc, "## Nodes over 1 ms\n");
    let _ = writeln!(doc, "A node tract fused into another (measured at zero) is predicted together with the node that");
    let _ = writeln!(
        doc,
        "absorbed it: the rows compare fusion groups, named after the node tract kept.\n"
    );
    let _ = writeln!(
        doc,
        "{} of {} nodes within 25% (target 80%); median absolute error {:.1}%.\n",
        within(&node_errors, 0.25),
        node_errors.len(),
        100.0 * median(&mut node_errors.clone()),
    );
    let _ = writeln!(doc, "| model | node | class | predicted ms | measured ms | error |\n|---|---|---|---|---|---|\n{node_rows}");
    let factors = p.context_factors_text();
    let _ = writeln!(
        doc,
        "## How the model is built\n\n\
         - **One regression per kernel, not per ONNX op.** Ops a runtime runs on a different kernel are\n  \
         variants with their own fits (docs/profiles.md): pointwise, depthwise and tract's direct spatial\n  \
         convolutions, element-by-element broadcasts, GRUs with `linear_before_reset`, global and average\n  \
         pools, LRN.\n\
         - **Variables that follow the work**: FLOPs and bytes, plus a convolution's patch bytes (its\n  \
         im2col matrix: a narrow conv pays the gather per FLOP) and a hinge in the bytes read where a working\n  \
         set falls out of cache (fully connected layers past ~16 MB of weights run at DRAM speed). Each form\n  \
         (linear, log, hinged) is scored by 4-fold cross-validation.\n\
         - **Epilogue fusion**: a BatchNormalization, Relu or arithmetic after a matmul or a 1x1 conv, and\n  \
         a BatchNormalization or per-channel scale after any conv (folded into its weights), run inside\n  \
         that kernel and are predicted at zero; a fused residual sum keeps its own prediction.\n\
         - **Overheads apart**: a run's own overhead is measured and taken out of every sample, then added\n  \
         once per model.\n\
         - **Context factors**: ops run slower inside a network than alone (the caches full of the previous\n  \
         ops' data, much of it dirty), memory-bound ones most. A small calibration CNN (convs,\n  \
         BatchNormalizations, a `[C, 1, 1]`-scaled block, pools, a classifier; none of the models below) is\n  \
         timed per fusion group in place against its predictions, giving one factor per class. Here: {factors}.\n\
         - **The typical of short medians**, over the grid and over the models alike: six passes of a\n  \
         warm-up and 3 runs, alternately forwards and backwards, each time the trimmed mean of its six\n  \
         medians (the fastest and the slowest dropped); each of the models' passes runs right after one\n  \
         of the grid's. Each regression is the simplest form within one standard error of the best by\n  \
         cross-validation.\n\
         - **Views take no time**: a Reshape, Flatten, Squeeze, Unsqueeze or Identity reuses its input's\n  \
         buffer under another shape.\n"
    );
    let _ = writeln!(doc, "{WHY}");
    let _ = writeln!(
        doc,
        "## Where we miss, and why\n\n\
         - **Fusion the rule does not know.** tract fuses a BatchNormalization chain into some 1x1 convs\n  \
         and not others (inception's shared-input branches run it apart), and it fuses ResNet's residual\n  \
         sum into the expansion conv at ~1.5 ms more than the same conv without it; per-node rows around\n  \
         those convs miss by 30-60% in opposite directions, the sums of their groups much less.\n\
         - **The context factors are one number per class**, measured on one small network and noisy\n  \
         between runs (the memory-bound classes most). DenseNet's `[C, 1, 1]` broadcast chains run 2x\n  \
         slower inside the network than alone; the elementwise factor covers that as far as the\n  \
         calibration CNN shows it.\n\
         - **First layers** (3 input channels, 7x7 or 11x11 kernels, strides 2-4) are thin products whose\n  \
         time is mostly writing their output; they still miss by 20-30%.\n\
         - **Microsecond models.** The smallest fixtures run in 3-30 us, where a regression's intercept\n  \
         is most of the answer; they miss by a few microseconds at most.\n\
         - **Profiles vary between runs** on a shared 2-core machine, by their recorded spread at most;\n  \
         each regeneration re-profiles.\n\n\
         Next steps: fusion patterns from tract's own optimised graph rather than a rule, context factors\n\
         from several calibration networks, and per-node timings averaged over several profiles."
    );
    // The regret benchmark's section is its own: kept as it is.
    let doc_path = root.join("docs/accuracy.md");
    let regret = common::section(&doc_path, "regret");
    if !regret.is_empty() {
        let _ = write!(doc, "\n\n{regret}\n");
    }
    std::fs::write(&doc_path, &doc).unwrap();
    println!("{}", doc.lines().take(14).collect::<Vec<_>>().join("\n"));
}

/// The findings behind the measurement method (fixed text: measured once, by hand, on the date
/// it gives; the tables above are regenerated).
const WHY: &str = r#"## Why profiles did not repeat, and what fixed it

Measured on 2026-12-02 on this kind of machine (AMD EPYC, 2 cores, nothing else running), with
the code before this change: three full profiles taken back to back predicted the light nets up
to 35% apart (ResNet-50 165 / 182 / 223 ms, AlexNet 114 / 119 / 86 ms). Each suspect, measured:

- **The machine changes speed from one second to the next.** One loaded model timed ten times in
  a row (each a median of 11 runs) ranged 27-50%: SqueezeNet 20.9-31.3 ms, a ResNet block 0.46 ms
  stepping to 0.66 ms for several seconds. Reloading the model adds nothing (memory layout is not
  it), steal time stays at zero and the second core is idle: the slowdowns come from outside this
  VM (the shared host), and only ever slow it down. A median of 11 runs is a sample of the
  machine's state, not of its speed: two passes over the grid disagreed by a median 15-23% per
  configuration. Timing a reference kernel alongside and dividing by it does not cancel it (a
  SqueezeNet's quartile spread fell from 21% to 6%, LeNet's only from 28% to 17% and an inception
  block's not at all): the slowdowns hit kernels unevenly.
- **Form selection flipped on that noise.** Keeping the form with the lowest cross-validated
  error chose a hinge at 5.5 MB for convs in one profile and none in the next two, and `mb_read`
  or not among the conv variables; before the context factors, ResNet-50's convs were predicted
  at 140 ms by one profile and 232 ms by another.
- **The context factors were timed in one minute.** The calibration CNN was timed all at once
  after the grid: `default` came out 0.93 / 1.14 / 1.21 and `elementwise` 0.73 / 1.34 / 0.73 over
  the three profiles, and in a later run a slow minute there gave `default` 1.25, `elementwise`
  1.44, `pool` 1.74 and over-predicted every light net by up to 29%.
- **Slow states also last minutes, and hit whole networks harder than one-node models.** With
  the models timed before and after profiling, one run measured LeNet at 0.124 ms against 0.077
  in the run before, with a profile that predicted the same: the models and the grid had seen
  different minutes.
- **Not the run overhead**: 0.0006-0.0014 ms, nothing against milliseconds.

The fixes, each a cause: (1) the simplest form within one standard error of the best (three
profiles then agreed within 10-25%); (2) the fastest of six short medians spread over the run
instead of the faster of two long ones (the same number of runs): the machine's own speed, which
slowdowns cannot bias; (3) the calibration CNN timed three times after each grid pass, and (4)
the accuracy bench's models timed once after each grid pass (`profiler::profile_with`), so that
grid, calibration and models see the same states of the machine. Of three profiles then taken
back to back, the first two predicted every light net within 10% of each other (largest:
ResNet-50 132 / 144 ms; VGG-19 760 / 760 ms, DenseNet 178 / 178 ms) and their context factors
agreed (`default` 1.03 / 0.97); the third moved the nets with LRN by 13-18% (Inception v1 116 to
137 ms, ZFNet 179 to 208 ms, AlexNet 76 to 86 ms: the `op:LRN` fit, on twelve samples, is the
least steady) and the rest by under 10%.
Each profile records its rerun spread (the fastest of the odd passes against the fastest of the
even ones; 10-18% on this machine that day, which `nsplit profile` warns about above 10%) and the
planner takes it, at least 10%, as the margin under which two cuts are a tie (selection.json's
`tie_within`).

**What still moves: the measurements of whole networks.** Three consecutive runs of this bench
with the fixes gave median errors of 13.5%, 21.2% and 9.1% (every model within 25% in the first and the third, 12 of 18 in
the second). The profiles' predictions moved by under 10%
between runs; the measured times did not: ResNet-50 measured 175 ms in one run and 234 ms in the
next, SqueezeNet 21.9 and 27.3 ms, VGG-19 973 and 1100 ms, each the fastest of six passes
interleaved with the grid's. Large networks stream their weights and activations from memory,
which a neighbour on the host slows for minutes, where the grid's one-node models mostly run
from cache. On a machine with a steady memory system the targets are within reach (the run with
the quietest minutes: median 9.1%, every model within 25%); on this one, the error of a single run is bounded by how long
the slow states last, not by the model.
"#;

/// Passes over the models (one after each of the profiler's), and timed runs per pass (after a
/// warm-up): as the profiler's grid.
const PASSES: usize = 6;
const RUNS: usize = 3;

/// Predictions summed per fusion group ([`Measured::fusion_owners`]), under the group's owner.
fn fusion_groups(
    a: &Analysis,
    measured: &Measured,
    node_ms: &HashMap<NodeIndex, f64>,
) -> HashMap<NodeIndex, f64> {
    let mut group: HashMap<NodeIndex, f64> = node_ms.keys().map(|&n| (n, 0.0)).collect();
    for (n, owner) in measured.fusion_owners(a) {
        *group.get_mut(&owner).unwrap() += node_ms[&n];
    }
    group
}

fn name(p: &std::path::Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}
