//! Prediction accuracy on this machine: profile it (the deployment phase), then predict and
//! measure, in one runtime, the fixtures, the light model-zoo nets and a ResNet-18 (with
//! onnxruntime, also a MobileNetV2 and real models where `corpus/real-models` is fetched):
//! whole-model latency, and per node for nodes over 1 ms. Writes docs/accuracy.md (tract) or
//! docs/accuracy-onnxruntime.md.
//!
//! ```text
//! scripts/fetch-corpus.sh && cargo bench --bench accuracy
//! cargo bench --bench accuracy -- --runtime onnxruntime    # or NSPLIT_ACCURACY_RUNTIME=onnxruntime
//! ```
//! Run it on a quiet machine: the profile and the measurements share the cores with anything
//! else running.

use nsplit::dev as common;

use nsplit::cost::profile::Role;
use nsplit::profiler::measure::Measured;
use nsplit::profiler::{profile_with, Checkpoint, ProfileOptions, PARTS};
use nsplit::runtime::Runtime;
use nsplit::shapes::InputShapes;
use nsplit::Analysis;
use petgraph::graph::NodeIndex;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    let root = nsplit::dev::root();
    let runtime = common::runtime_arg("NSPLIT_ACCURACY_RUNTIME");
    let tag = match runtime {
        Runtime::Tract => String::new(),
        other => format!("-{other}"),
    };
    // NSPLIT_ACCURACY_PROFILE=FILE reuses a profile (e.g. the last run's, saved below) to iterate
    // on predictions without re-profiling; the doc then names that profile's provenance.
    let saved = root.join(format!("target/accuracy-profile{tag}.json"));
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
    models.extend(common::networks_beyond(
        std::path::Path::new(env!("CARGO_BIN_EXE_nsplit-fixtures")),
        runtime,
    ));

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
    let mut pass = |at: Checkpoint| -> anyhow::Result<()> {
        let order: Vec<usize> = if at.index % 2 == 1 {
            (0..analyses.len()).rev().collect()
        } else {
            (0..analyses.len()).collect()
        };
        for i in order {
            if let Ok(list) = &mut timings[i] {
                match nsplit::profiler::measure::measure(&analyses[i], runtime, RUNS) {
                    Ok(m) => list.push(m),
                    Err(e) => timings[i] = Err(e),
                }
            }
        }
        Ok(())
    };
    let p = match std::env::var_os("NSPLIT_ACCURACY_PROFILE") {
        Some(file) => {
            Checkpoint::all(PASSES).try_for_each(&mut pass).unwrap();
            nsplit::cost::profile::DeviceProfile::resolve(&file.to_string_lossy()).unwrap()
        }
        None => {
            eprintln!("profiling this machine, and timing the models between its passes...");
            let p = profile_with(
                &ProfileOptions {
                    role: Role::Cloud,
                    quick: false,
                    power_w: 0.0,
                    runtime,
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
                    "| {} | — | — | — | {runtime} cannot run it: {e:#} |",
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
    let command = match runtime {
        Runtime::Tract => "cargo bench --bench accuracy".to_string(),
        other => format!("cargo bench --bench accuracy -- --runtime {other}"),
    };
    let _ = writeln!(
        doc,
        "# Prediction accuracy{}\n",
        match runtime {
            Runtime::Tract => String::new(),
            other => format!(" in {other}"),
        }
    );
    let _ = writeln!(
        doc,
        "Generated by `{command}` (do not edit by hand). The machine was profiled by"
    );
    let _ = writeln!(doc, "`nsplit profile --runtime {runtime}` in the same run; predictions use that profile; measurements are {runtime} runs");
    let _ = writeln!(
        doc,
        "(the trimmed mean of {} short passes, each the median of {RUNS} runs after a warm-up, one after each quarter\nof each of the profiler's {PASSES} passes over its grid) of the same models on the same machine.\n",
        PASSES * PARTS
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
    let _ = writeln!(doc, "A node {runtime} fused into another (measured at zero) is predicted together with the node that");
    let _ = writeln!(
        doc,
        "absorbed it: the rows compare fusion groups, named after the node {runtime} kept.\n"
    );
    let _ = writeln!(
        doc,
        "{} of {} nodes within 25% (target 80%); median absolute error {:.1}%.\n",
        within(&node_errors, 0.25),
        node_errors.len(),
        100.0 * median(&mut node_errors.clone()),
    );
    let _ = writeln!(doc, "| model | node | class | predicted ms | measured ms | error |\n|---|---|---|---|---|---|\n{node_rows}");
    if runtime == Runtime::Tract {
        let factors = p.context_factors_text();
        let cache = p
            .cache_mb
            .map_or("not known here: factors in full".to_string(), |mb| {
                format!("{mb:.1} MB")
            });
        let _ = writeln!(
            doc,
            "## How the model is built\n\n\
             - **One regression per kernel, not per ONNX op.** Ops a runtime runs on a different kernel are\n  \
             variants with their own fits (docs/profiles.md): pointwise, depthwise and tract's direct spatial\n  \
             convolutions, thin first layers, element-by-element broadcasts, GRUs with `linear_before_reset`,\n  \
             global and average pools, LRN, Concat.\n\
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
             ops' data, much of it dirty), memory-bound ones most. Four calibration networks (a small CNN, a\n  \
             classifier with an LRN and 220 MB of fully connected weights, a residual net, a micro CNN; none of\n  \
             the models below) are timed per fusion group in place against their predictions, giving one factor\n  \
             per kernel and class and one per class (`in_cache:<class>`) for ops whose data stays in cache; an\n  \
             op takes the one or the other in proportion to its bytes over the L2 cache ({cache}). Here: {factors}.\n\
             - **The typical of short medians at the machine's typical speed**: the grid in six passes of a\n  \
             warm-up and 3 runs, alternately forwards and backwards, each sample the trimmed mean of its six\n  \
             medians (the fastest and the slowest sixth dropped), each median scaled by a reference conv's\n  \
             typical time over its time around it; the calibration networks and the models below timed after\n  \
             each quarter of each pass (24 times). Each regression is the simplest form within one standard\n  \
             error of the best by cross-validation.\n\
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
             - **The context factors are one number per kernel or class**, measured on four small networks.\n  \
             DenseNet's `[C, 1, 1]` broadcast chains run 2x slower inside the network than alone; the\n  \
             broadcast factor covers that as far as the calibration CNN shows it. The many small elementwise\n  \
             and normalisation ops of Inception v2 and ShuffleNet, whose data stays in cache, run 5-10% slower\n  \
             in those networks than their class factors say (both 8-11% under on AMD EPYC).\n\
             - **First layers** (3 input channels, 3x3 to 11x11 kernels, strides 2-4) are thin products whose\n  \
             time is mostly writing their output; they still miss by 20-30%.\n\
             - **Microsecond models.** The smallest fixtures run in 3-30 us, where a regression's intercept\n  \
             is most of the answer; they miss by a few microseconds at most.\n\
             - **Models under a millisecond** (LeNet, the inception and ResNet blocks, the one-Gemm fixtures)\n  \
             were measured up to 50% apart from one run to the next on a noisy Intel Xeon (the inception block\n  \
             0.44-0.66 ms), more than their predictions moved: one to three of them missed by over 25% in some\n  \
             runs, in either direction. On a quiet AMD EPYC they measure within 2% from run to run and miss by\n  \
             13% at most (the LSTM fixture, over). Each regeneration re-profiles.\n\n\
             Next steps: fusion patterns from tract's own optimised graph rather than a rule, and per-node\n\
             timings averaged over several profiles."
        );
    } else {
        let _ = writeln!(doc, "{ONNXRUNTIME}");
    }
    // The regret benchmark's section is its own: kept as it is.
    let doc_path = root.join(format!("docs/accuracy{tag}.md"));
    let regret = common::section(&doc_path, "regret");
    if !regret.is_empty() {
        let _ = write!(doc, "\n\n{regret}\n");
    }
    std::fs::write(&doc_path, &doc).unwrap();
    println!("{}", doc.lines().take(14).collect::<Vec<_>>().join("\n"));
    // The README's one line on accuracy says what this run measured, and on what machine.
    let cpu = p
        .provenance
        .source
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("this machine")
        .to_string();
    let worst = whole_errors.iter().copied().fold(0.0, f64::max);
    let line = format!(
        "<!-- accuracy{tag} -->on the machine last measured ({cpu}), median error {:.1}% against {runtime}'s measured time, every model within {:.1}%<!-- /accuracy{tag} -->",
        100.0 * median(&mut whole_errors.clone()),
        100.0 * worst
    );
    let (open, close) = (
        format!("<!-- accuracy{tag} -->"),
        format!("<!-- /accuracy{tag} -->"),
    );
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    if let (Some(a), Some(b)) = (readme.find(&open), readme.find(&close)) {
        let end = b + close.len();
        let updated = format!("{}{line}{}", &readme[..a], &readme[end..]);
        std::fs::write(&readme_path, updated).unwrap();
    }
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
Each profile records its rerun spread (the odd passes against the even ones; 10-18% on this
machine that day, which `nsplit profile` warns about above 10%) and the
planner takes it, at least 10%, as the margin under which two cuts are a tie (selection.json's
`tie_within`).

**What still moved: the measurements of whole networks** (same machine, 2026-12-02). Three
consecutive runs of this bench with those fixes gave median errors of 13.5%, 21.2% and 9.1%;
ResNet-50 measured 175 ms in one run and 234 ms in the next, each the fastest of six passes.

### The fastest median favoured short runs (2026-12-03, Intel Xeon, 2 cores)

On another machine of the same size (an Intel Xeon with 2 MB of L2 per core), the first run of
this bench gave a median error of 19.0% with *every* light net under-predicted (ResNet-50 96 ms
against 180 ms measured, VGG-19 507 against 746, VGG's 256-channel 3x3 convs 33 against 67 ms).
One model run back to back for 8 s shows why: a pointwise conv (64 to 256 channels, 56x56) took
1.39 ms at its fastest, 1.53 ms at the 10th percentile and 2.25 ms at the median, with 250 ms
windows whose medians moved between 1.45 and 2.40 ms; a 3x3 conv of 128 channels took 8.6 ms at
its fastest, 9.5 at the median and 14.7 at the 90th percentile, in windows from 8.8 to 15.8 ms.
The machine's fast states are short. A one-node grid model runs in microseconds to milliseconds,
so one of its six short medians falls inside a fast state and the fastest of them is that
state's speed; a whole network runs for tens to hundreds of milliseconds, spans several states
and runs at their mean. The fastest median therefore measured the grid faster than any network
can run, by the ratio of the machine's mean speed to its peak: 20-45% here. Inputs of zeros
against random ones made no difference (a 256-channel conv 70-103 ms either way), nor did
chaining three such convs (233-290 ms against 3 x 82).

The fix: the **typical** median, the trimmed mean of the six passes' medians (the fastest and the
slowest dropped), for the grid, the calibration CNN and the measured models alike: a mean over
time means the same for a short run and a long one. With it the errors took both signs (first
run: median 11.8%, 16 of 18 within 25%). Two causes the new numbers then showed, fixed too:
**views** (a Reshape, Flatten, Squeeze, Unsqueeze or Identity reuses its input's buffer; charged
their bytes, ShuffleNet's 33 reshapes were predicted at 4 ms and ran in 0.02 ms; ShuffleNet went
from +32% to +4%), and **context factors only where measured**: the calibration CNN's ratio had
been applied to recurrent ops it does not contain (the one-GRU fixture +37-47%).

Three consecutive runs with the typical median and views, each with a new profile: median
errors 10.0%, 14.0% and 13.4%; the light nets within 16% in the first two, and what missed was
named by the per-node rows: LeNet's and the symbolic-batch CNN's first layers (one or three
channels, 5x5, on 28-32 pixel maps; conv1 of LeNet 0.026 ms predicted, 0.058 measured), smaller
than any conv of the grid, under-predicted by 20-45% in every run; and the nets with LRN moving
11-12% between two profiles (the `op:LRN` slope, one variable on twelve samples, moved 13%).
The grid now has six small first layers and twelve LRNs at the sizes of AlexNet, ZFNet and
GoogLeNet, and the calibration CNN a 224x224 input (its feature maps outgrow the L2 cache, as
the nets' do).

**Three consecutive runs of the final code**, each with a new profile: median errors **19.1%,
10.2% and 5.2%**; within 25%: 13, 17 and 17 of 18. LeNet now -15% / -1% / +22% (was -37% /
-20% / -42%), the symbolic-batch CNN -23% / +4% / -2% (was -44% / -21% / -45%); the three LRN
nets' predictions before context factors agree within 4% over the three profiles (AlexNet 149 /
154 / 151 ms; they were 11% apart). What moves the runs apart is now one number:

- **The calibration CNN's ratio moves with the machine, and the nets do not follow it.** The
  whole-network ratio that every class of the calibration CNN without a factor of its own takes
  came out 0.90, 1.23 and 1.15 in the three runs (0.90-1.24 over five runs with a 112x112 input:
  the larger input did not steady it). Without it the profiles predict ResNet-50 at 132, 130 and
  123 ms; it measured 149, 178 and 145 ms. The run whose ratio came out 0.90 under-predicted
  every light net by 5-30% (median 19.1%); the others were within 19% (run 2) and 28% (run 3).
  The factor corrects about 15% on average and moves 15% from run to run: on this machine a
  small network timed for a few seconds per pass does not see the states whole networks see.
- **Back-to-back profiles** therefore agree before the factor (the light nets within 10% over
  all three, the LRN nets within 4%) and not always after it: run 1 to run 2, 25-43% apart (the
  ratio 0.90 against 1.23); run 2 to run 3, within 9% but ResNet-50 (13%).
- **The measured side moves too**: ResNet-50 measured 145-196 ms over the six runs of this
  session and VGG-19 687-820 ms, each a trimmed mean of six passes spread over three minutes.

### One calibration network was not enough (2026-12-03, later; same machine)

Per class, the light nets' fusion groups against their factor-free predictions (one run, the
node rows of this page) wanted different factors, each steady across the nets: convs 1.11-1.19,
fully connected layers 1.50-1.66, LRN 0.91-1.02, pools 0.62-0.82. One whole-network ratio
(1.15 that run) over-predicted the LRN nets (AlexNet +15.5%, Inception v1 +17.8%) and
SqueezeNet's pools (+28%) and under-predicted the classifiers' fully connected layers. What
changed, one cause each, with the run that showed it (each a full run of this bench, a new
profile):

- **Three calibration networks, a factor per kernel and class** (a small CNN; a classifier with
  an LRN and 220 MB of fully connected weights; a residual net of bottleneck blocks; a group's
  measured time over its predicted, summed per kernel `op:<variant>` and class): median 9.9%,
  every light net within 22%; the matmul factor came out 1.68. But microsecond models took it
  in full: the one-Gemm fixtures +21% to +36%.
- **An op takes its factor in proportion to its bytes over the L2 cache** (2 MB per core here,
  read from sysfs): a network slows an op by evicting its data, and a 32 KB Gemm keeps its data
  in cache in a network as alone. The fixtures of microseconds went to within 13%. With the
  classifier's LRN on a 192 x 24 x 24 map (0.42 of the cache) its factor was inferred from a
  fraction (0.68) and the LRN nets went to -22%; on 96 x 48 x 48 (past the cache): median 5.9%
  and 5.2% in the next two runs, every light net within 13.4%.
- **Thin first layers** (at most 4 input channels) **have a regression of their own**
  (`op:ConvThin`): fitted with the larger convs they were predicted 25-40% under alone (the
  symbolic-batch CNN's conv 0.040 ms, measured 0.055-0.065 in every run), and LeNet and the
  symbolic-batch CNN missed by 25-28% in two runs. Next run: LeNet +0.5%, the symbolic-batch CNN
  +13.7%.
- **Concat has a regression of its own** (`op:Concat`): the `data_movement` class is fitted on
  transposes, strided gathers 3-4x slower per byte than a concat's contiguous copies; the
  inception block's concat was predicted at 0.066 ms and ran in 0.016. Next run: the inception
  block -2.8% (from +33.7%), median 4.9%, every light net within 10%.
- **Ops whose data stays in cache still slow down in a network** (`in_cache`, from a fourth,
  micro network of microseconds): 1.15 in its first run.

Tried and left out, measured: timing the grid's microsecond models with more runs per pass (as
many as fill 2 ms) made them faster than the same ops measured in the models (the one-Gemm
fixtures -50%, LeNet -36%); a 5 ms warm-up before timing made LeNet *slower*, reproducibly (0.106
-0.126 ms against 0.079 after one warm-up run): on this machine a sustained run is slower than
a burst, and models are timed as the grid is, after one warm-up run.

- **Channel shuffles are transposes of whole rows** (`op:TransposeRows`: the innermost axis
  stays in place, as in ShuffleNet's `[N, g, C/g, H, W]` by `[0, 2, 1, 3, 4]`), fitted apart from
  the 2-D transposes of single elements; the regret run named one as its cause (0.51 ms
  predicted, 0.17 measured).

With the per-kernel factors, thin first layers, Concat and `in_cache` (before the shuffles), three
consecutive runs gave median errors 10.3%, 10.3% and 8.2% (within 25%: 15, 17 and 18 of 18),
and the first two profiles predicted every light net within 3.6% of each other (ResNet-50
171.5 / 174.6 ms, VGG-19 760 / 777 ms).

**Three consecutive runs of the final code**, each with a new profile: median errors **6.3%,
4.1% and 10.0%**; **every model within 25% in each** (the worst 18.1%, 23.1% and 19.4%); the light
nets within 11.7%, 12.1% and 11.5%. Back to back, these profiles predicted the light nets 7-19%
apart (ShuffleNet 19.5 / 23.2 / 19.5 ms, VGG-19 803 / 897 / 782 ms): the context factors follow
the machine (conv 1.09 / 1.34 / 1.24, `in_cache` 0.96 / 1.18 / 1.08), as the measured nets did
(VGG-19 810 / 936 / 866 ms, AlexNet 187 / 180 / 150 ms). A profile that follows the state of the
machine while it is measured is accurate for that state; it cannot also be a property of a
machine whose state moves 15% from one run to the next.

**What still misses: models under a millisecond, whose measured time moves more than the
prediction's error.** Over the thirteen runs of this session the inception block measured 0.44 to
0.66 ms, LeNet 0.093 to 0.131 ms, the one-Gemm fixtures 0.004 to 0.007 ms, each a trimmed mean of
six passes. Before the shuffles, one to three of them fell outside 25% in eight of ten runs, in
either direction; in the three runs since, none did. The light nets have stayed within 15% in
all eleven runs since the LRN fix.

### Regret measured in the machine's states of the profile (2026-12-03, later; same machine)

The regret bench used to profile first and then time the candidates for half an hour. With the
same code, ResNet-50's all-mobile ran in 210 ms in one run and in 144-158 ms ten minutes later;
at 32 Mbps its all-cloud, mostly the network's fixed time, takes 181 ms, so which of the two was
best depended on the minute it was timed. Now the bench screens every candidate first, then
takes the profile and, after each of its six passes, runs each model's contenders (every
bucket's four fastest screened candidates) in turn in short rounds: the predictions and the
rounds that judge them come from the same states of the machine. An untimed run before each
timed one keeps a half's weights in the cache that the other contenders evict, as on a phone
that runs one head over and over. Two full runs (the 3 DAG fixtures and the 9 light nets, 60
model-network pairs, about 50 minutes each): median regret **0.0% and 0.0%**, worst **2.9% and
8.1%** (0 and 1 pairs above 5%). The 8.1% is SqueezeNet at 512 Mbps, a near tie: the cut after
its first conv and pool, 23.8 ms, against all-cloud, 21.9 ms (the first run found that cut the
best); the head was predicted at 6.6 ms and ran in 9.0, the thin first layer under-predicted
again (its 3x3 conv on 3 channels, 3.7 ms predicted and 5.6 measured in the accuracy runs).

**Three more consecutive runs of the same code** (the first before the two regret runs, the
other two back to back after them): median errors **5.0%, 13.5% and 9.0%**; every model within
25% in the first and third, 16 of 18 in the second. The light nets stayed within 12.5%, 11.2%
and 14.7%. The second run's misses were the models under a millisecond, all over-predicted
(the LSTM and GRU fixtures by 40% and 28%, the blocks by 17-19%): its `in_cache` factor came out
at 1.27, against 1.08 and 1.09 in the runs either side (and 1.11 and 1.10 in the regret runs'
profiles). The groups that stay in cache add up to tens of microseconds in the calibration
networks, so a few microseconds of a slow moment move that factor, and it sets most of the
time of a model under a millisecond: the next thing to make robust. The second and third
profiles, taken back to back, predicted every light net within **7.8%** of each other (AlexNet
167.7 / 165.3 ms, ResNet-50 180.0 / 176.2, VGG-19 802 / 799, SqueezeNet 24.2 / 22.4, the widest).

### Cold starts, the run's overhead and thin first layers (2026-12-03, evening; same machine)

Three causes, each measured, each now fixed in the profiler:

- **`in_cache` summed a cold start that models of microseconds never pay.** Printed group by
  group, the calibration networks' in-cache groups ran at 0.5-1.7x their time alone, except the
  three 1000-way Softmaxes at the ends of the larger networks: 0.7 us predicted, 17-21 us
  measured. Alone that Softmax runs in 2 us; right after a 7 ms conv, in 14-19 us (its code and
  data evicted: the 1 MB fully connected layer before it runs 0.10 ms there, 0.013 ms after a
  small op). In the ratio of the sums those three added 0.11 to the factor in one profile
  (1.087 with them, 0.978 without), and a varying amount from one profile to the next, which
  every model under a millisecond took in full. `in_cache` is now the median of the groups'
  ratios weighted by their predicted time: 1.00 and 1.09 in the two profiles since.
- **The run overhead moved the fixed cost between the run and its nodes.** It was two one-Relu
  runs less a two-Relu run, timed once at the end: 0.8, 1.2 and 1.9 us in three profiles, while
  the regressions' intercepts moved the other way (matmul 2.3, 1.7 and 0.9 us; overhead plus
  intercept stayed at 2.8-3.0 us). A model of three tiny nodes pays the overhead once and the
  intercept three times: the one-Gemm fixtures went from +7% to -25..-33%. The overhead is now
  the intercept of the line through the times of chains of 1, 2, 4 and 8 Relus, each timed after
  every pass over the grid: 1.0 and 0.9 us since, those fixtures within 10.3%.
- **A thin first layer runs slower in a network than the calibration showed.** SqueezeNet 1.1's
  first conv (3x3 on 3 channels, 64 out, stride 2) timed alone (its head) and in the whole
  network in turn, six times: 2.5-3.5 ms alone, 3.0-5.5 ms in the network (1.15-1.5x); the 7x7
  first layers of ResNet-50 and ZFNet and AlexNet's 11x11, 0.9-1.2x. Its 27 inputs per output
  leave its time to writing 3.2 MB; the calibration CNN's first conv wrote 1.6 MB (32
  channels), inside the L2 cache, and has 64 channels now. `op:ConvThin` came out at 1.09-1.30
  in the four profiles since (0.98 before); SqueezeNet's first conv went from -37% to -19..-30%.
  AlexNet's 11x11 is still -12..-31%: its own regression predicts it low.

**Five consecutive runs of the final code:** median errors **6.1%, 7.8%, 17.0%, 7.7% and
6.6%**; every model within 25% in the first and fourth, 16, 17 and 17 of 18 in the others. What
missed were the models under a millisecond, and in both directions: the LSTM, GRU and
symbolic-batch fixtures +26% to +30% in the second and +22% to +25% in the fifth, -23% to -28%
in the third. Their measured times moved as much as their predictions: the LSTM ran in 0.060,
0.053, 0.064, 0.064 and 0.054 ms, the symbolic-batch CNN in 0.063-0.078 ms. The third run was a
profile of a fast moment against models timed slower: every model under-predicted, the light
nets by up to 22.5% (conv factor 1.02, against 1.20-1.30 in the other four; `in_cache` 0.87).
The light nets stayed within 11.5%, 17.2%, 22.5%, 15.1% and 15.5%. `in_cache` came out at 1.00,
1.09, 0.87, 1.13 and 1.04, the run overhead at 1.0, 0.9, 0.5, 1.1 and 1.1 us: steadier than
before, and still the machine's noise in models of tens of microseconds. Back to back, the
fourth and fifth profiles predicted the light nets 7-17% apart (ResNet-50 176.3 / 150.7 ms)
while the same runs measured them 0-27% apart (ResNet-50 176.4 / 161.6, ShuffleNet 20.8 /
16.4): the machine itself ran them that far apart, and a profile follows its state in the hour. **Regret** with this
code (a full run, 60 pairs): median 0.0%, worst 6.9%, again SqueezeNet at 512 Mbps and a near
tie, now against all-mobile (the cut after its first conv and pool ran in 21.6 ms, all-mobile in
21.3; the median of their per-round ratios was 1.069); the head was predicted at 6.2 ms and ran
in 7.3: its first conv, still 20-30% under. A second full run: median 0.0%, worst 10.4%, both
pairs above 5% at 512 Mbps, where the choice is between a cut near the input and all-mobile
within a few percent: ShuffleNet 10.4% (all-mobile predicted 21.1 ms, ran in 16.8) and
SqueezeNet 8.5% (the head predicted 6.2 ms, ran in 8.2).

### The machine's speed, sampled around every sample (2026-12-03, night; same machine)

Run 3 of the five above was a profile of a fast moment: conv factor 1.02, every prediction
10-25% low. A reference (a 3x3 conv of 16 to 32 channels on 28x28, 0.18-0.20 ms) timed next
to a tiny model, in turn for a minute: their log times correlate 0.78-0.89 (the LSTM fixture,
a one-Gemm fixture, a 16-step LSTM, LeNet; SqueezeNet 0.57), each with a standard deviation of
21-25% (the machine moved that much in that hour). So the profiler now times the reference just
before and just after every grid model and every calibration network's timing, and scales each
median by the reference's typical time over the whole profile against its mean time around it:
every sample stands for the machine at its typical speed, and a grid model timed in a slow
moment no longer counts as a slow model. The reference's 10th to 90th percentile came out 44-53%
of its median in each profile since (it is in the provenance). Each pass over the grid now
comes in four parts with a checkpoint after each, where the calibration networks and this
bench's models are timed (24 timings of each instead of 18 and 6): a model's measured time is
a mean over 24 moments of the run instead of 6. The bench takes 10-12 minutes instead of 5.

Recurrent ops now read their steps (sequence length x directions): a 16-step LSTM runs as fast
with 8 units as with 32, and the old variables (FLOPs and output bytes) missed the grid's own
LSTMs by 30% on average (held-out error 34%); with the steps, 2% on the grid and 8% held out.

**Three consecutive runs of this code:** median errors **5.4%, 8.4% and 6.6%**, every model
within 25% in each (18, 18 and 18 of 18); the worst were the LSTM fixture (+15.7%, +15.1%,
+21.7%), Inception v2 and ShuffleNet (-16.1%, -16.2% in the second). Back to back, the first
two profiles predicted every light net within **1.9%** of each other (ResNet-50 166.7 / 169.8
ms, VGG-19 773.7 / 773.5, SqueezeNet 21.8 / 22.2); the second and third 5.5-13.0% apart
(ResNet-50 169.8 / 191.8, VGG-19 773 / 865), with the reference's typical time 0.189 and
0.204 ms and the nets measured 0-9% faster in the third (ResNet-50 190.4 / 178.1): the
machine's states in one half-hour were not those of the next. Regret with this code, in two
partial runs only (no full run yet): SqueezeNet and ShuffleNet, whose 512 Mbps near ties failed
both full runs before, 0.0% in all 10 pairs; the fixtures, AlexNet, Inception v1 and v2 and
ResNet-50, median 0.0% and worst 8.9% over 35 pairs (ResNet-50 at 32 Mbps: all-mobile predicted
178.9 ms, ran in 195.3, where all-cloud ran in 179.4; its conv n10 predicted 2.86 ms, measured
6.88), AlexNet at 32 Mbps 3.6%.

### What the regret bench could not tell apart (2026-12-04)

A full run of e858658 (commit c78788b) gave median 0.0%, worst 19.5%, three pairs above 5%. Two
of the three compared cuts that compute the same but for a tail of 0.3-0.4 ms: ZFNet all-mobile
against its cut before the last layer at 8 Mbps (6.8%) and Inception v1's likewise (5.3%), each
time the cut's head measured 5-12% faster than the whole model it is all but the whole of. The
two loaded together and run in turn, 16 rounds: per-round ratios 0.86-1.22, median 1.015. With
twelve rounds a median ratio lands within about 3% of the truth, and the largest of several such
medians (the regret is a maximum over contenders) above 5%: the judge, not the planner. The
third, SqueezeNet at 512 Mbps (19.5%), is the near tie of every run (predicted 20.65 ms against
all-mobile's 20.75): all-mobile ran in 16.74 ms over the rounds, and 21.5-22.0 ms when timed
again minutes later with the same profile, which predicts 20.75; ResNet-50 ran 129, 137 and 168
ms in three timings a few seconds apart. Six bursts of rounds sample six moments of a machine
that moves by a quarter from one second to the next; the profile's typical speed is taken over
thousands of reference timings.

So the bench now (1) times the profile's reference conv around every timed run and judges each
run at the profile's speed (its time scaled by the profile's `reference_ms` over the reference's
time around it, as the profiler scales its samples; the unscaled regret is shown beside it), and
(2) extends any comparison whose rounds leave it open which side of 5% the median ratio is on
(the 95% interval of the median holds 1.05) by up to four sets of paired rounds. A check on the
fixtures, SqueezeNet and ZFNet with the saved profile of that run: ZFNet's 8 Mbps pair fell to
0.0%; SqueezeNet at 512 Mbps measured 1.5% unscaled. That saved profile predates `reference_ms`,
and scaling by the rounds' own reference time instead (0.159 ms against the profile's 0.180)
put the same choice at 11.6%: the scale must be the profile's own, so a profile without it is
judged unscaled. A first run of the new judge with a fresh profile (reference 0.157 ms), on the
fixtures, Inception v1, SqueezeNet and ZFNet: median 0.0%, worst 0.0% over 30 pairs, scaled and
unscaled alike. Then two full runs back to back (fixtures and the nine light nets, 60 pairs
each), each with a fresh profile: run 1 (reference conv 0.155 ms) median 0.0%, worst 0.1%
(VGG-19 at 8 Mbps: all-mobile 665.56 ms against a cut before the last layers at 663.46),
unscaled median 0.0%, worst 1.4% (ZFNet at 8 Mbps); run 2 (reference 0.140 ms)
median 0.0%, worst 0.0%, unscaled likewise. No pair above 5% in either.

### Ops that stay in cache, by class (2026-12-04, AMD EPYC, 2 cores)

On the machine kind this issue was filed on, and a quiet day (the reference conv's 10th to 90th
percentile 5-7% apart, rerun spread 1.0-1.7%), the profiles repeated: two taken back to back
predicted every light net within 0.8% of each other, and three runs of this bench measured every
model within 2% of the run before. What missed was systematic: median errors **12.5%, 10.8% and
11.3%**, with 14, 16 and 14 of 18 models within 25%, and every model under a millisecond
over-predicted in every run (LeNet +21..+23%, the blocks +15..+20%, the LSTM fixture +38..+40%,
GRU +23..+30%, the symbolic-batch CNN +27..+29%) while the light nets stayed within 11%.

The cause was `in_cache` (1.25 in every profile). Printed group by group, the micro network's
in-cache groups ran at different ratios by class: its max pools 1.19-1.25x their time alone
(and the classifier's 1.29x), its convs 0.81-1.06x, its Relus 1.42-1.44x and Gemms 0.89-1.33x
(microseconds in all). The weighted median took the pools' ratio, and every op of a model of
microseconds took it, convs included. Setting `in_cache` to 1.0 by hand in one of those
profiles put LeNet at +1.5% and the blocks at -1.7% and +0.9%. So the in-cache factor is now
per class (`in_cache:<class>`, where a class's in-cache groups add up to a quarter of the
reference conv's time, 0.017 ms here: a bar relative to the machine's speed, so that the
Softmaxes' cold starts stay under it on a slower one; none for the rest): `in_cache:conv` 1.02-1.03 and `in_cache:pool` 1.24-1.25 in every profile since.

**Three consecutive runs of this code:** median errors **4.3%, 4.0% and 3.6%**, every model
within 25% in each (15, 16 and 16 within 10%); the widest were Inception v2 (-11.0%, -11.0%,
-10.5%), the LSTM fixture (+10.3%, +12.8%, +12.0%) and ShuffleNet (-7.7%, -9.0%, -9.3%): their
many small elementwise and normalisation ops, which took the pools' 1.25 before, run 5-10%
slower inside those networks than their class factors say. Back to back, two profiles of this
code predicted every light net within **3.2%** of each other (Inception v2 35.0 / 33.9 ms,
VGG-19 271.9 / 264.6, ResNet-50 51.3 / 50.3). A review then made the in-cache bar relative to
the reference conv (a quarter of its time, so that the same groups count on a slower machine)
and clamped the in-cache factors before the own factors are solved against them; the factors
here came out the same (`in_cache:conv` 1.02, `in_cache:pool` 1.25-1.26). Three more runs of
that code: **3.7%, 4.9% and 4.6%**, every model within 25% (15, 16 and 18 within 10%; widest
Inception v2 -11.4% and the LSTM fixture +12.7%); the spread of the six medians 1.3 points.
Two more profiles back to back: every light net within **3.9%** (VGG-19 269.7 / 280.3 ms,
ResNet-50 52.1 / 53.4).

**Regret with this code**, two full runs back to back (20 minutes each on this machine, whose
light nets run 4-5x faster than the Intel Xeon's): median **0.0% and 0.0%**, worst **0.0% and
0.0%** over 60 pairs each, scaled and unscaled alike (the table below is the second); the two
chose the same cut in every pair, all-mobile or all-cloud, and it measured the fastest of the
contenders in each.
"#;

/// Passes over the models (one after each of the profiler's), and timed runs per pass (after a
/// warm-up): as the profiler's grid; the models are timed after each of the [`PARTS`] parts of
/// each pass.
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

/// What docs/accuracy-onnxruntime.md says after its tables (fixed text).
const ONNXRUNTIME: &str = "## How onnxruntime differs from tract here

The same profiler, grid, calibration networks and cost rules as docs/accuracy.md, with every
model (one-node grid models, the reference conv, the overhead chains, the calibration networks
and the models above) run by onnxruntime on one thread with every graph optimisation, as Triton's
onnxruntime backend runs a tail. Per-node times come from onnxruntime's own profiler: a kernel is
named after its ONNX node, or after what its optimiser made of it: `<output>_nchwc` (a conv or
pool in the blocked layout its x86 kernels use, named after the output of the last node it
absorbed), `fused <node>` (an activation fused into a Gemm or conv), `<node>/MatMulAddFusion`
(a MatMul and its Add run as one Gemm). The layout changes it inserts around blocked kernels
(`ReorderInput`, `ReorderOutput`) belong to no node and count in the whole model only. A
one-node conv pays a layout change on each side that a network pays once: the conv context
factor, measured on the calibration networks, takes that back.

What onnxruntime runs differently enough to need rules of its own. PRelu with a per-channel
slope has a regression of its own, and its time depends on the data: onnxruntime branches on
each element's sign, so on signs drawn independently (half of them negative) it runs 6x its
time on zeros or on one sign. The grid fed its one-node models zeros, and the MTCNN landmark net
(PRelus after each conv) was predicted at 0.6x its time; it now feeds them random values of both
signs, as the networks are fed, which is PRelu's worst case: inside MTCNN, where a conv's
neighbouring outputs share their signs, its PRelus run 0.64x that, and MTCNN is over-predicted by
about a quarter. A Gemm with a fused activation is named `fused <node>`, and until the profile's
parser traced it back to its node, AlexNet's and ZFNet's classifier Gemms were timed under no
node and their matmul context factor fell to its floor (AlexNet -24%).";
