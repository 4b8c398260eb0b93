//! Prediction accuracy on this machine: profile it (the deployment phase), then predict and
//! measure, under tract, the fixtures and the light model-zoo nets: whole-model latency, and
//! per node for nodes over 1 ms. Writes docs/accuracy.md.
//!
//! ```text
//! scripts/fetch-corpus.sh && cargo bench --bench accuracy
//! ```
//! Run it on a quiet machine: the profile and the measurements share the cores with anything
//! else running.

#[path = "common/mod.rs"]
mod common;

use nsplit::cost::profile::Role;
use nsplit::cost::profiler::{profile, ProfileOptions};
use nsplit::measure::Measured;
use nsplit::shapes::InputShapes;
use nsplit::Analysis;
use petgraph::graph::NodeIndex;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
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
    // speed changes from one second to the next): short passes, alternately forwards and
    // backwards, each time and each node keeping its fastest median. Half the passes run before
    // profiling and half after, so the profile and the measurements bracket each other in time.
    let analyses: Vec<Analysis> = models
        .iter()
        .map(|(path, shapes)| Analysis::run(path, &InputShapes::parse(shapes).unwrap()).unwrap())
        .collect();
    let mut measurements: Vec<anyhow::Result<Measured>> = analyses
        .iter()
        .map(|a| nsplit::measure::measure(a, RUNS))
        .collect();
    let pass = |measurements: &mut Vec<anyhow::Result<Measured>>, k: usize| {
        let order: Vec<usize> = if k % 2 == 1 {
            (0..analyses.len()).rev().collect()
        } else {
            (0..analyses.len()).collect()
        };
        for i in order {
            if let (Ok(m), Ok(again)) = (
                measurements[i].as_mut(),
                nsplit::measure::measure(&analyses[i], RUNS),
            ) {
                keep_faster(m, again);
            }
        }
    };
    for k in 1..PASSES / 2 {
        pass(&mut measurements, k);
    }
    let p = match std::env::var_os("NSPLIT_ACCURACY_PROFILE") {
        Some(file) => {
            nsplit::cost::profile::DeviceProfile::resolve(&file.to_string_lossy()).unwrap()
        }
        None => {
            eprintln!("profiling this machine...");
            let p = profile(
                &ProfileOptions {
                    role: Role::Cloud,
                    quick: false,
                    power_w: 0.0,
                },
                |_, _| {},
            )
            .unwrap();
            p.write(&saved).unwrap();
            p
        }
    };
    for k in PASSES / 2..PASSES {
        pass(&mut measurements, k);
    }
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
        "(the fastest of {PASSES} short passes, each the median of {RUNS} runs after a warm-up, half of them before\nprofiling and half after) of the same models on the same machine.\n"
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
         - **The fastest of short medians**, over the grid and over the models alike: six passes of a\n  \
         warm-up and 3 runs, alternately forwards and backwards, each time kept at its fastest median;\n  \
         half of the models' passes run before profiling and half after. Each regression is the\n  \
         simplest form within one standard error of the best by cross-validation.\n"
    );
    let _ = writeln!(
        doc,
        "## Why profiles did not repeat, and what fixed it\n\n\
         Measured on 2026-12-02 on this kind of machine (AMD EPYC, 2 cores, nothing else running), with\n\
         the code before this change: three full profiles taken back to back predicted the light nets up\n\
         to 35% apart (ResNet-50 165 / 182 / 223 ms, AlexNet 114 / 119 / 86 ms). Each suspect, measured:\n\n\
         - **The machine changes speed from one second to the next.** One loaded model timed ten times in\n  \
         a row (each a median of 11 runs) ranged 27-50%: SqueezeNet 20.9-31.3 ms, a ResNet block 0.46 ms\n  \
         stepping to 0.66 ms for several seconds. Reloading the model adds nothing (memory layout is not\n  \
         it), steal time stays at zero and the second core is idle: the slowdowns come from outside this\n  \
         VM (the shared host), last seconds, and only ever slow it down. A median of 11 runs is a sample\n  \
         of the machine's state, not of its speed: two passes over the grid disagreed by a median 15-23%\n  \
         per configuration. Timing a reference kernel alongside and dividing by it does not cancel it\n  \
         (a SqueezeNet's quartile spread fell from 21% to 6%, LeNet's only from 28% to 17% and an\n  \
         inception block's not at all): the slowdowns hit kernels unevenly.\n\
         - **Form selection flipped on that noise.** Keeping the form with the lowest cross-validated\n  \
         error chose a hinge at 5.5 MB for convs in one profile and none in the next two, and `mb_read`\n  \
         or not among the conv variables; before the context factors, ResNet-50's convs were predicted\n  \
         at 140 ms by one profile and 232 ms by another.\n\
         - **Context factors measured on one small network** moved with both: `default` 0.93 / 1.14 / 1.21,\n  \
         `elementwise` 0.73 / 1.34 / 0.73 over the three profiles.\n\
         - **Not the run overhead**: 0.0006-0.0014 ms, nothing against milliseconds.\n\n\
         The fixes: (1) the simplest form within one standard error of the best (three profiles then\n\
         agreed within 10-25%); (2) the fastest of six short medians spread over the run instead of the\n\
         faster of two long ones (the same number of runs): the machine's own speed, which slowdowns\n\
         cannot bias and a rerun finds again. Two profiles taken back to back then predicted every light\n\
         net within 8% of each other (largest: ShuffleNet 19.5 / 21.2 ms, VGG-19 939 / 874 ms) and their\n\
         context factors agreed (`default` 1.05 / 1.04). Measurements here use the same statistic, so\n\
         profile and models are both timed at the machine's own speed. Each profile records its rerun\n\
         spread (the fastest of the odd passes against the fastest of the even ones; 15-16% on this\n\
         machine that day, which `nsplit profile` warns about) and the planner takes it, at least 10%,\n\
         as the margin under which two cuts are a tie (selection.json's `tie_within`).\n"
    );
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

/// Passes over the models, and timed runs per pass (after a warm-up): as the profiler's grid.
const PASSES: usize = 6;
const RUNS: usize = 3;

/// Keep the faster of two measurements, per model run and per node.
fn keep_faster(m: &mut Measured, again: Measured) {
    m.total_ms = m.total_ms.min(again.total_ms);
    for (n, ms) in &mut m.per_node_ms {
        *ms = ms.min(again.per_node_ms.get(n).copied().unwrap_or(*ms));
    }
}

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
