//! Decision regret: how much slower the cut nsplit chooses runs than the best cut, measured.
//!
//! The phone is this machine under tract, with a profile measured in the same run; the server is
//! the same machine ten times faster (`--cloud-load 0.1`, the same profile in the cloud role);
//! the networks are uplinks of 2 to 512 Mbps with a 10 ms round trip. For each light model-zoo
//! net and each DAG fixture, the main job's planner chooses a cut per bucket; then every
//! distinct candidate (all-mobile, all-cloud, every cut at a single tensor, and each chosen cut)
//! is written as a real head and tail and both are timed with tract. A candidate's measured
//! end-to-end time on a network is its head's time + the network's transfer (the planner's own
//! formula: round trip + bytes / bandwidth, both ways) + 0.1 x its tail's time. A screening pass
//! finds the fastest candidates; the chosen cut is then timed against each of them in paired
//! rounds (both loaded, run in turn), so that the two see the same state of this machine, whose
//! speed changes by 20-50% over seconds and minutes. The regret of a choice is the largest median
//! per-round ratio of its time over a contender's, less 1 (0 if it beats them all). Where it is
//! above 5% the table names the node whose prediction was furthest off among those the two cuts
//! place apart.
//!
//! ```text
//! scripts/fetch-corpus.sh && cargo bench --bench regret      # rewrites its section of docs/accuracy.md
//! cargo bench --bench regret -- fixtures squeezenet          # only models whose path contains one
//! ```
//! Run it on a quiet machine.

use nsplit::dev as common;

use nsplit::cost::measure::{median, Measured};
use nsplit::cost::profile::{DeviceProfile, Role};
use nsplit::cost::profiler::{profile, ProfileOptions};
use nsplit::cost::Profiles;
use nsplit::cut::{Cut, Side};
use nsplit::emit::{write_pair, Emitter};
use nsplit::output::{ExternalData, Staging};
use nsplit::plan::{network, plan, BandwidthBucket, Objective, PlanOptions, Sweep};
use nsplit::runtime::{LoadedModel, Runtime};
use nsplit::shapes::InputShapes;
use nsplit::Analysis;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tract_onnx::prelude::Tensor;

const CLOUD_LOAD: f64 = 0.1;
const RTT_MS: f64 = 10.0;
const UPLINKS: [f64; 5] = [2.0, 8.0, 32.0, 128.0, 512.0];
/// Regret above this gets its cause in the table (the issue's target).
const TARGET: f64 = 0.05;
/// Screening: short passes over the candidates, alternately forwards and backwards, and timed
/// runs of each half per pass after a warm-up; each half's time is the mean of its medians.
/// Two passes, not the profiler's six: every candidate half is loaded again in each pass, and
/// VGG-19 alone has some forty candidates; the screening only picks the contenders that the
/// paired rounds then time against the choice.
const PASSES: usize = 2;
const RUNS: usize = 3;
/// Confirmation: the chosen cut against each of the screening's fastest other candidates, both
/// loaded at once and timed in turn (ABBA...), one run each per round. Two candidates timed a
/// moment apart see the same state of the machine, so the median of their per-round ratios is
/// the regret, where independent timings minutes apart differ by the machine's own 20-50%. The
/// rounds go on for at least `PAIRED_SECONDS` (and `ROUNDS`): a cut's network time does not
/// slow down with the machine, its compute does, so rounds that all fall in one slow state
/// (nine rounds of ShuffleNet take half a second) wrongly favour the cut that computes less.
const CONTENDERS: usize = 3;
const ROUNDS: usize = 9;
const PAIRED_SECONDS: f64 = 4.0;

fn main() {
    let root = nsplit::dev::root();
    let args = common::args();
    let saved = root.join("target/regret-profile.json");
    // NSPLIT_REGRET_PROFILE=FILE reuses a profile instead of profiling again.
    let mobile = match std::env::var_os("NSPLIT_REGRET_PROFILE") {
        Some(file) => DeviceProfile::resolve(&file.to_string_lossy()).unwrap(),
        None => {
            eprintln!("profiling this machine...");
            let opts = ProfileOptions {
                role: Role::Mobile,
                quick: false,
                power_w: 5.0,
            };
            let p = profile(&opts, |_, _| {}).unwrap();
            p.write(&saved).unwrap();
            p
        }
    };
    let cloud = DeviceProfile {
        role: Role::Cloud,
        ..mobile.clone()
    };
    let profiles = Profiles { mobile, cloud };
    let like = BandwidthBucket {
        rtt_ms: RTT_MS,
        ..network::reference_network("wifi").unwrap()
    };
    let opts = PlanOptions {
        objective: Objective::Latency,
        cloud_load: CLOUD_LOAD,
        buckets: UPLINKS
            .iter()
            .map(|&mbps| network::at_bandwidth(mbps, &like))
            .collect(),
        sweep: Sweep {
            from_mbps: UPLINKS[0],
            to_mbps: UPLINKS[UPLINKS.len() - 1],
            like: like.clone(),
        },
    };

    let mut models: Vec<PathBuf> = ["lenet.onnx", "resnet_block.onnx", "inception_block.onnx"]
        .iter()
        .map(|f| root.join("fixtures").join(f))
        .collect();
    match std::fs::read_dir(root.join("corpus/onnx-backend/light")) {
        Ok(entries) => {
            let mut light: Vec<PathBuf> = entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
                .collect();
            light.sort();
            models.extend(light);
        }
        Err(_) => eprintln!("corpus absent: only the fixtures (run scripts/fetch-corpus.sh)"),
    }
    // Arguments keep only the models whose path contains one of them.
    if !args.is_empty() {
        models.retain(|m| {
            args.iter()
                .any(|a| m.to_string_lossy().contains(a.as_str()))
        });
    }

    let mut rows = String::new();
    let mut regrets = vec![];
    for model in &models {
        let name = model.file_name().unwrap().to_string_lossy().into_owned();
        eprintln!("{name}...");
        let r = regret_of(model, &profiles, &opts);
        for b in &r {
            regrets.push(b.regret);
            let _ = writeln!(
                rows,
                "| {name} | {} | `{}` | {:.2} | {:.2} | `{}` | {:.2} | {:+.1}% | {} |",
                b.mbps,
                b.chosen,
                b.chosen_predicted_ms,
                b.chosen_measured_ms,
                b.best,
                b.best_measured_ms,
                100.0 * b.regret,
                b.cause
            );
        }
    }
    regrets.sort_by(f64::total_cmp);
    let median = regrets.get(regrets.len() / 2).copied().unwrap_or(f64::NAN);
    let worst = regrets.last().copied().unwrap_or(f64::NAN);
    let mut section = String::new();
    let _ = writeln!(section, "## Decision regret\n");
    let _ = writeln!(
        section,
        "Generated by `cargo bench --bench regret`. Phone: this machine under tract, profiled in the same run \
         ({}). Server: the same machine 10x faster (`--cloud-load 0.1`). Networks: {} Mbps up and down, \
         {RTT_MS} ms round trip. Every distinct candidate (all-mobile, all-cloud, every cut at one tensor, \
         each chosen cut) is written as a head and a tail and both are timed with tract (screening: the mean of \
         {PASSES} passes, each the median of {RUNS} runs after a warm-up); measured end-to-end = head + transfer \
         (the planner's formula) + 0.1 x tail. Then the chosen cut is timed against each of the {CONTENDERS} \
         other candidates the screening found fastest, the two loaded together and run in turn for {PAIRED_SECONDS} s ({ROUNDS} rounds at least): \
         regret = the largest median of the per-round ratios (chosen over contender), less 1, and 0 when the \
         chosen cut is faster than every contender; the times shown are the paired rounds' medians. Above \
         {:.0}% the cause is named: the node, among those the two cuts place on different sides, whose \
         prediction was furthest off.\n",
        profiles.mobile.provenance.source,
        UPLINKS.map(|u| u.to_string()).join(", "),
        100.0 * TARGET
    );
    if !args.is_empty() {
        let _ = writeln!(
            section,
            "This run covers only the models whose path contains one of: {}.\n",
            args.join(", ")
        );
    }
    let _ = writeln!(
        section,
        "Median regret {:.1}%, worst {:.1}% over {} model-network pairs; {} above {:.0}% (targets: median 0%, worst <= 5%).\n",
        100.0 * median,
        100.0 * worst,
        regrets.len(),
        regrets.iter().filter(|&&r| r > TARGET).count(),
        100.0 * TARGET
    );
    let _ = writeln!(
        section,
        "| model | uplink Mbps | chosen | predicted ms | measured ms | measured best | best ms | regret | cause |\n|---|---:|---|---:|---:|---|---:|---:|---|\n{rows}"
    );
    common::replace_section(&root.join("docs/accuracy.md"), "regret", &section);
    println!("{section}");
}

/// One bucket's outcome.
struct BucketRegret {
    mbps: f64,
    chosen: String,
    chosen_predicted_ms: f64,
    chosen_measured_ms: f64,
    best: String,
    best_measured_ms: f64,
    regret: f64,
    cause: String,
}

/// A candidate cut and its measured halves.
struct Candidate {
    cut: Cut,
    id: String,
    /// The screening's times of each half (the mean over the passes of each pass's median).
    head_ms: f64,
    tail_ms: f64,
    /// The written head and tail (none for an empty side).
    files: (Option<PathBuf>, Option<PathBuf>),
}

fn regret_of(model: &Path, profiles: &Profiles, opts: &PlanOptions) -> Vec<BucketRegret> {
    let mut a = Analysis::run(model, &InputShapes::default()).unwrap();
    let planned = plan(&a, profiles, opts).unwrap();
    let mut candidates: Vec<Candidate> = vec![];
    let mut add = |cut: Cut, graph: &nsplit::graph::ModelGraph| {
        let id = cut.id(graph);
        if !candidates.iter().any(|c| c.id == id) {
            candidates.push(Candidate {
                cut,
                id,
                head_ms: 0.0,
                tail_ms: 0.0,
                files: (None, None),
            });
        }
    };
    add(Cut::all_mobile(&a.graph), &a.graph);
    add(Cut::all_cloud(&a.graph), &a.graph);
    for c in &planned.cuts {
        add(c.clone(), &a.graph);
    }
    for t in (0..a.graph.tensors.len()).map(nsplit::graph::TensorId) {
        if a.graph.producer_op(t).is_none() {
            continue;
        }
        let cut = Cut::upstream_of(&a.graph, &[t]);
        if cut.boundary(&a.graph) == [t] && !cut.is_all_mobile(&a.graph) && !cut.is_all_cloud() {
            add(cut, &a.graph);
        }
    }

    // Write every candidate's halves.
    let dir = tempfile::tempdir().unwrap();
    let mut staging = Staging::new(&dir.path().join("pairs")).unwrap();
    {
        let Analysis {
            model: m,
            graph,
            shapes,
            ..
        } = &mut a;
        let mut emitter = Emitter::new(m, graph, shapes).unwrap();
        for (i, c) in candidates.iter_mut().enumerate() {
            let (h, t) = (format!("{i}.head.onnx"), format!("{i}.tail.onnx"));
            let w = write_pair(
                &mut emitter,
                &c.cut,
                &mut staging,
                &h,
                &t,
                ExternalData::Never,
            )
            .unwrap();
            c.files = (
                w.head.map(|_| staging.staged(&h)),
                w.tail.map(|_| staging.staged(&t)),
            );
        }
    }

    // Screen them.
    let inputs = nsplit::runtime::random_inputs(&a.graph, &a.shapes, None, 0).unwrap();
    for pass in 0..PASSES {
        let order: Vec<usize> = if pass % 2 == 0 {
            (0..candidates.len()).collect()
        } else {
            (0..candidates.len()).rev().collect()
        };
        for i in order {
            let mut pair = LoadedPair::load(&candidates[i].files, &inputs);
            let (h, t) = pair.time(&inputs, RUNS);
            let c = &mut candidates[i];
            c.head_ms += h / PASSES as f64;
            c.tail_ms += t / PASSES as f64;
        }
    }
    // Per-node measured times, for the causes.
    let measured_nodes: Option<Vec<Measured>> = (0..PASSES)
        .map(|_| nsplit::cost::measure::measure(&a, RUNS).ok())
        .collect();
    let measured_nodes = measured_nodes.map(|list| Measured::typical(&list));

    // Paired rounds (chosen, contender) -> each round's (head, tail) times of both, shared by
    // the buckets that compare the same two cuts.
    let mut paired: HashMap<(usize, usize), Vec<Round>> = HashMap::new();
    planned
        .buckets
        .iter()
        .map(|b| {
            let bucket = &b.bucket;
            // Each candidate's transfer on this network (the planner's formula), once.
            let transfer: Vec<f64> = candidates
                .iter()
                .map(|c| {
                    nsplit::plan::predict::predict(
                        &a.graph,
                        &a.shapes,
                        &planned.costs,
                        &c.cut,
                        bucket,
                        CLOUD_LOAD,
                    )
                    .map_or(f64::INFINITY, |p| p.transfer_ms)
                })
                .collect();
            let end_to_end =
                |i: usize, (head, tail): (f64, f64)| head + transfer[i] + CLOUD_LOAD * tail;
            let screened = |i: usize| {
                let c = &candidates[i];
                end_to_end(i, (c.head_ms, c.tail_ms))
            };
            let chosen_id = planned.cuts[b.cut].id(&a.graph);
            let chosen = candidates.iter().position(|c| c.id == chosen_id).unwrap();
            let mut contenders: Vec<usize> =
                (0..candidates.len()).filter(|&i| i != chosen).collect();
            contenders.sort_by(|&x, &y| screened(x).total_cmp(&screened(y)));
            contenders.truncate(CONTENDERS);
            // The chosen cut against each contender, in pairs: the largest median ratio.
            let mut best = (chosen, 1.0, screened(chosen), screened(chosen));
            for &i in &contenders {
                let rounds = paired
                    .entry((chosen, i))
                    .or_insert_with(|| time_in_pairs(&candidates[chosen], &candidates[i], &inputs));
                let e2e = |k: usize| -> Vec<f64> {
                    let at = if k == 0 { chosen } else { i };
                    rounds.iter().map(|r| end_to_end(at, r[k])).collect()
                };
                let (mine, theirs) = (e2e(0), e2e(1));
                let ratio = median(mine.iter().zip(&theirs).map(|(m, t)| m / t).collect());
                if ratio > best.1 {
                    best = (i, ratio, median(mine), median(theirs));
                }
            }
            let (best_at, ratio, mine, theirs) = best;
            let regret = ratio - 1.0;
            let (chosen, best) = (&candidates[chosen], &candidates[best_at]);
            let cause = if regret > TARGET {
                cause(&a, &planned.costs, chosen, best, measured_nodes.as_ref())
            } else {
                String::new()
            };
            BucketRegret {
                mbps: bucket.uplink_mbps,
                chosen: chosen.id.clone(),
                chosen_predicted_ms: b.predicted.total_ms,
                chosen_measured_ms: mine,
                best: best.id.clone(),
                best_measured_ms: theirs,
                regret,
                cause,
            }
        })
        .collect()
}

/// One paired round: the (head, tail) times of the two candidates, in ms.
type Round = [(f64, f64); 2];

/// Each round's (head, tail) times of `a` and `b`, loaded together and timed in turn (AB, BA,
/// ...), one run per half per round, for `ROUNDS` rounds and `PAIRED_SECONDS` at least.
fn time_in_pairs(a: &Candidate, b: &Candidate, inputs: &HashMap<String, Tensor>) -> Vec<Round> {
    let mut pairs = [
        LoadedPair::load(&a.files, inputs),
        LoadedPair::load(&b.files, inputs),
    ];
    let start = Instant::now();
    let mut rounds = vec![];
    while rounds.len() < ROUNDS || start.elapsed().as_secs_f64() < PAIRED_SECONDS {
        let mut round = [(0.0, 0.0); 2];
        let order = if rounds.len() % 2 == 0 {
            [0, 1]
        } else {
            [1, 0]
        };
        for k in order {
            round[k] = pairs[k].time(inputs, 1);
        }
        rounds.push(round);
    }
    rounds
}

/// Which prediction put the choice wrong: the sides' predicted and measured times, and the node
/// placed apart by the two cuts whose phone prediction was furthest from its measured time.
fn cause(
    a: &Analysis,
    costs: &nsplit::cost::NodeCosts,
    chosen: &Candidate,
    best: &Candidate,
    measured: Option<&nsplit::cost::measure::Measured>,
) -> String {
    let side = |c: &Candidate| {
        let (mut head, mut tail) = (0.0, 0.0);
        for (n, _) in a.graph.ops() {
            match c.cut.side(n) {
                Side::Head => head += costs.get(n).mobile_ms,
                Side::Tail => tail += costs.get(n).mobile_ms,
            }
        }
        (head, tail)
    };
    let ((ch, ct), (bh, bt)) = (side(chosen), side(best));
    let mut out = format!(
        "head {ch:.1} predicted / {:.1} measured vs best's {bh:.1} / {:.1}; tail (phone speed) {ct:.1} / {:.1} vs {bt:.1} / {:.1}",
        chosen.head_ms, best.head_ms, chosen.tail_ms, best.tail_ms
    );
    if let Some(m) = measured {
        let apart = a
            .graph
            .ops()
            .map(|(n, _)| n)
            .filter(|&n| chosen.cut.side(n) != best.cut.side(n));
        let worst = apart
            .map(|n| {
                let p = costs.get(n).mobile_ms;
                let got = m.per_node_ms.get(&n).copied().unwrap_or(0.0);
                (n, p, got)
            })
            .max_by(|x, y| (x.1 - x.2).abs().total_cmp(&(y.1 - y.2).abs()));
        if let Some((n, p, got)) = worst {
            let _ = write!(
                out,
                "; furthest off: {} ({}) predicted {p:.2} ms, measured {got:.2} ms",
                a.graph.op(n).label(),
                a.features.get(n).class.name()
            );
        }
    }
    out
}

/// A candidate's head and tail, loaded and run once (a warm-up, which also gives the tail the
/// boundary tensors the head computes).
struct LoadedPair {
    head: Option<LoadedModel>,
    tail: Option<LoadedModel>,
    tail_feed: HashMap<String, Tensor>,
}

impl LoadedPair {
    fn load(files: &(Option<PathBuf>, Option<PathBuf>), inputs: &HashMap<String, Tensor>) -> Self {
        let mut tail_feed = inputs.clone();
        let head = files.0.as_ref().map(|p| {
            let mut m = Runtime::Tract.load(p).unwrap();
            tail_feed.extend(m.run(inputs).unwrap());
            m
        });
        let tail = files.1.as_ref().map(|p| {
            let mut m = Runtime::Tract.load(p).unwrap();
            m.run(&tail_feed).unwrap();
            m
        });
        LoadedPair {
            head,
            tail,
            tail_feed,
        }
    }

    /// The median times (ms) of `runs` runs of the head and of the tail (0 for an empty side).
    fn time(&mut self, inputs: &HashMap<String, Tensor>, runs: usize) -> (f64, f64) {
        let time = |m: &mut Option<LoadedModel>, values: &HashMap<String, Tensor>| {
            m.as_mut().map_or(0.0, |m| {
                median(
                    (0..runs)
                        .map(|_| {
                            let t = Instant::now();
                            m.run(values).unwrap();
                            t.elapsed().as_secs_f64() * 1e3
                        })
                        .collect(),
                )
            })
        };
        (
            time(&mut self.head, inputs),
            time(&mut self.tail, &self.tail_feed),
        )
    }
}
