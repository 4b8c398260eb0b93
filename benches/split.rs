//! Split a VGG-16-sized model at its middle: nsplit against `onnx.utils.extract_model` on the
//! same cut, in the same run, as ratios (the machine is shared; absolute times drift).
//!
//! ```text
//! cargo run --release --bin nsplit-fixtures -- --vgg16 target/bench-models/vgg16.onnx
//! cargo bench --bench split [-- MODEL.onnx]
//! ```
//! Python with onnx is found at `$NSPLIT_PYTHON`, else `.venv/bin/python`, else `python3`.
//! Each run is a fresh process (peak RSS is its own), median of 3.

use nsplit::dev as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const RUNS: usize = 3;

fn main() {
    let args = common::args();
    if args.first().map(String::as_str) == Some("--child") {
        return child(Path::new(&args[1]), &args[2], Path::new(&args[3]));
    }
    let root = nsplit::dev::root();
    let model = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/bench-models/vgg16.onnx"));
    if !model.exists() {
        eprintln!(
            "{} is absent; see the header of benches/split.rs",
            model.display()
        );
        return;
    }
    let analysis = nsplit::Analysis::run(&model, &Default::default()).unwrap();
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
    drop(analysis);
    let size = std::fs::metadata(&model).unwrap().len();
    let python = common::python();
    println!(
        "model {} ({:.1} MB), cut after `{tensor}` (node `{}`)",
        model.display(),
        size as f64 / 1e6,
        mid.label()
    );

    let ours = common::median(RUNS, || {
        let out = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let o = Command::new(exe)
            .arg("--child")
            .arg(&model)
            .arg(&tensor)
            .arg(out.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        parse(&String::from_utf8_lossy(&o.stdout))
    });
    let script = format!(
        r#"
import resource, sys, time, tempfile, os
import onnx.utils
t = time.perf_counter()
d = tempfile.mkdtemp()
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
        "speed-up: {:.1}x faster; memory: {:.2}x of extract_model's peak",
        theirs.0 / ours.0,
        ours.1 as f64 / theirs.1 as f64
    );
}

fn parse(line: &str) -> (f64, u64) {
    let mut it = line.split_whitespace();
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse::<f64>().unwrap() as u64,
    )
}

fn child(model: &Path, tensor: &str, out: &Path) {
    let start = Instant::now();
    nsplit::split::split_at(
        model,
        &[tensor.to_string()],
        out,
        &Default::default(),
        nsplit::output::ExternalData::Auto,
    )
    .unwrap();
    let rss = common::peak_rss();
    println!("{} {}", start.elapsed().as_secs_f64(), rss);
}
