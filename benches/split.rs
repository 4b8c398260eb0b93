//! Splitting big models, as ratios against a baseline measured in the same run (the machine is
//! shared; absolute times drift):
//!
//! 1. a VGG-16 with its 553 MB of weights inside the protobuf, cut at its middle: nsplit against
//!    `onnx.utils.extract_model` on the same cut, and peak memory against the model's size;
//! 2. a 3.2 GB chain of MatMuls with every weight in one external data file: `nsplit split` at
//!    the middle and the main job with `--no-verify` against `cp` of the data file (the same bytes
//!    as the split writes, and as the job writes: the whole model once).
//!
//! ```text
//! cargo bench --bench split [-- VGG16.onnx [BIG.onnx]]
//! ```
//! The models are generated into `target/bench-models/` when missing (`nsplit-fixtures --vgg16`,
//! `--big-external`). Python with onnx is found at `$NSPLIT_PYTHON`, else `.venv/bin/python`, else
//! `python3`. Each run is a fresh process (peak RSS is its own), median of 3, the tools taking
//! turns, with `sync` before each run so that no run pays for another's writeback.

use nsplit::dev as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const RUNS: usize = 3;

fn main() {
    let args = common::args();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1], Path::new(&args[2]), &args[3], Path::new(&args[4]));
    }
    let root = nsplit::dev::root();
    let models = root.join("target/bench-models");
    let vgg16 = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| generated(&models.join("vgg16.onnx"), "--vgg16"));
    let big = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| generated(&models.join("big.onnx"), "--big-external"));
    inline_weights(&vgg16);
    external_weights(&big);
}

/// `path`, written by the fixture generator's `flag` if it is missing.
fn generated(path: &Path, flag: &str) -> PathBuf {
    if !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        common::succeed(
            Command::new(env!("CARGO_BIN_EXE_nsplit-fixtures"))
                .arg(flag)
                .arg(path),
        );
    }
    path.to_path_buf()
}

/// The middle node's first output, the graph's inputs and outputs (by name).
fn middle(model: &Path) -> (String, String, Vec<String>, Vec<String>) {
    let sizes = nsplit::shapes::Sizes::Optional;
    let analysis = nsplit::Analysis::run_with(model, &Default::default(), sizes).unwrap();
    let order = &analysis.graph.order;
    let mid = analysis.graph.op(order[order.len() / 2]).clone();
    let tensor = analysis.graph.tensor(mid.outputs[0].unwrap()).name.clone();
    let inputs: Vec<String> = analysis
        .graph
        .inputs
        .iter()
        .map(|&t| analysis.graph.tensor(t).name.clone())
        .collect();
    let outputs: Vec<String> = analysis
        .graph
        .outputs
        .iter()
        .map(|&t| analysis.graph.tensor(t).name.clone())
        .collect();
    (mid.label(), tensor, inputs, outputs)
}

/// Part 1: weights inside the protobuf.
fn inline_weights(model: &Path) {
    let (label, tensor, inputs, outputs) = middle(model);
    let size = std::fs::metadata(model).unwrap().len();
    let python = common::python();
    println!(
        "model {} ({:.1} MB), cut after `{tensor}` (node `{}`)",
        model.display(),
        size as f64 / 1e6,
        label
    );

    let ours = common::median(RUNS, || measure("split", model, &tensor));
    let script = format!(
        r#"
import resource, sys, time, tempfile, os
import onnx.utils
with tempfile.TemporaryDirectory() as d:
    t = time.perf_counter()
    onnx.utils.extract_model({model:?}, os.path.join(d, "head.onnx"), {inputs:?}, [{tensor:?}])
    onnx.utils.extract_model({model:?}, os.path.join(d, "tail.onnx"), [{tensor:?}], {outputs:?})
    print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"#,
        model = model.to_string_lossy()
    );
    let theirs = common::median(RUNS, || {
        let o = Command::new(&python)
            .args(["-c", &script])
            .output()
            .expect("run python");
        assert!(
            o.status.success(),
            "extract_model failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        parse(&String::from_utf8_lossy(&o.stdout))
    });
    println!("| tool | seconds | peak RSS MB | RSS / model size |");
    println!("|---|---|---|---|");
    for (name, (s, rss)) in [
        ("nsplit split", ours),
        ("onnx.utils.extract_model (head + tail)", theirs),
    ] {
        println!(
            "| {name} | {s:.2} | {:.0} | {:.2}x |",
            rss as f64 / 1e6,
            rss as f64 / size as f64
        );
    }
    println!(
        "speed-up: {:.1}x faster; memory: {:.2}x of extract_model's peak, {:.2}x of the model (target: under 0.25x)",
        theirs.0 / ours.0,
        ours.1 as f64 / theirs.1 as f64,
        ours.1 as f64 / size as f64
    );
}

/// Part 2: weights in an external data file, against `cp` of that file.
fn external_weights(model: &Path) {
    let (label, tensor, _, _) = middle(model);
    let data = PathBuf::from(format!("{}.data", model.display()));
    let size = std::fs::metadata(&data).unwrap().len();
    println!(
        "\nmodel {} with {} ({:.1} GB), cut after `{tensor}` (node `{label}`)",
        model.display(),
        data.display(),
        size as f64 / 1e9,
    );
    let mut runs: [Vec<(f64, u64)>; 3] = Default::default();
    for _ in 0..RUNS {
        runs[0].push(measure("cp", &data, ""));
        runs[1].push(measure("split", model, &tensor));
        runs[2].push(measure("job", model, ""));
    }
    let [cp, split, job] = runs.map(|mut r| {
        r.sort_by(|a, b| a.0.total_cmp(&b.0));
        r[RUNS / 2]
    });
    println!("| what | seconds | x cp | peak RSS MB | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| `cp` of the data file (baseline) | {:.2} | 1.00x | — | |",
        cp.0
    );
    for (name, (s, rss), target) in [
        ("`nsplit split` at the middle", split, "1.5x, 100 MB"),
        ("main job, `--no-verify`", job, "2x, 100 MB"),
    ] {
        println!(
            "| {name} | {s:.2} | {:.2}x | {:.0} | {target} |",
            s / cp.0,
            rss as f64 / 1e6
        );
    }
}

/// One run in a fresh process, after `sync`: (seconds, peak RSS bytes; 0 for `cp`).
fn measure(what: &str, model: &Path, tensor: &str) -> (f64, u64) {
    common::succeed(&mut Command::new("sync"));
    let out = tempfile::tempdir_in(common::root().join("target")).unwrap();
    let target = out.path().join("out");
    if what == "cp" {
        let start = Instant::now();
        common::succeed(Command::new("cp").arg(model).arg(&target));
        return (start.elapsed().as_secs_f64(), 0);
    }
    let exe = std::env::current_exe().unwrap();
    let o = common::succeed(
        Command::new(exe)
            .args(["--child", what])
            .arg(model)
            .arg(tensor)
            .arg(&target),
    );
    parse(&String::from_utf8_lossy(&o.stdout))
}

fn parse(line: &str) -> (f64, u64) {
    let mut it = line.split_whitespace();
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse::<f64>().unwrap() as u64,
    )
}

fn child(what: &str, model: &Path, tensor: &str, out: &Path) {
    let start = Instant::now();
    if what == "split" {
        nsplit::split::split_at(
            model,
            &[tensor.to_string()],
            out,
            &Default::default(),
            nsplit::output::ExternalData::Auto,
            None,
        )
        .unwrap();
    } else {
        let mut opts = common::job_options("3g,lte,wifi", false);
        // The generated model's batch is symbolic; the job costs it at one.
        opts.input_shapes = nsplit::shapes::InputShapes::parse(&["input=1x4096".into()]).unwrap();
        nsplit::job::run(model, out, &opts).unwrap();
    }
    let rss = common::peak_rss();
    println!("{} {}", start.elapsed().as_secs_f64(), rss);
}
