//! Load + graph + shapes + features: time and peak memory on big models, as ratios against a
//! baseline measured in the same run (reading the same files into memory), since the machine is
//! shared and absolute times drift.
//!
//! ```text
//! cargo run --release --bin nsplit-fixtures -- --vgg16 target/bench-models/vgg16.onnx
//! cargo bench --bench load [-- MODEL.onnx ...]
//! ```
//! Without arguments it measures the corpus's largest light net and the generated VGG-16, where
//! present. Each measurement runs in a fresh child process, so peak RSS is its own.

use nsplit::dev as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const RUNS: usize = 3;

fn main() {
    let args = common::args();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1], Path::new(&args[2]));
    }
    let root = nsplit::dev::root();
    let models: Vec<PathBuf> = if args.is_empty() {
        [
            "corpus/onnx-backend/light/light_vgg19.onnx",
            "target/bench-models/vgg16.onnx",
        ]
        .iter()
        .map(|p| root.join(p))
        .filter(|p| {
            let found = p.exists();
            if !found {
                eprintln!(
                    "skipping {} (absent; see the header of benches/load.rs)",
                    p.display()
                );
            }
            found
        })
        .collect()
    } else {
        args.iter().map(PathBuf::from).collect()
    };
    // The light nets build their weights with ConstantOfShape: their files are tiny, so memory is
    // compared with the larger of the files and the weights the model materialises.
    println!("| model | files MB | weights MB | read s (baseline) | analyse s | time ratio | peak RSS MB | RSS / model size |");
    println!("|---|---|---|---|---|---|---|---|");
    for m in models {
        let file_bytes = files_size(&m);
        let read = common::median(RUNS, || measure("read", &m));
        let analyse = common::median(RUNS, || measure("analyse", &m));
        let weights = measure("weights", &m).1;
        println!(
            "| {} | {:.1} | {:.1} | {:.3} | {:.3} | {:.2}x | {:.1} | {:.2}x |",
            m.file_name().unwrap().to_string_lossy(),
            file_bytes as f64 / 1e6,
            weights as f64 / 1e6,
            read.0,
            analyse.0,
            analyse.0 / read.0,
            analyse.1 as f64 / 1e6,
            analyse.1 as f64 / file_bytes.max(weights) as f64
        );
    }
}

/// The model file plus external data files beside it that share its name.
fn files_size(model: &Path) -> u64 {
    let stem = model.file_name().unwrap().to_string_lossy().to_string();
    std::fs::read_dir(model.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&stem))
        .map(|e| std::fs::metadata(e.path()).unwrap().len())
        .sum()
}

fn measure(mode: &str, model: &Path) -> (f64, u64) {
    let exe = std::env::current_exe().unwrap();
    let out = nsplit::dev::succeed(Command::new(exe).args(["--child", mode]).arg(model));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace();
    (
        parts.next().unwrap().parse().unwrap(),
        parts.next().unwrap().parse().unwrap(),
    )
}

fn child(mode: &str, model: &Path) {
    let start = Instant::now();
    match mode {
        "read" => {
            let mut total = 0;
            let stem = model.file_name().unwrap().to_string_lossy().to_string();
            for e in std::fs::read_dir(model.parent().unwrap())
                .unwrap()
                .filter_map(|e| e.ok())
            {
                if e.file_name().to_string_lossy().starts_with(&stem) {
                    total += std::hint::black_box(std::fs::read(e.path()).unwrap()).len();
                }
            }
            std::hint::black_box(total);
        }
        "analyse" => {
            let a = nsplit::Analysis::run(model, &Default::default()).unwrap();
            std::hint::black_box(
                nsplit::report::Annotations::of(&a, &Default::default())
                    .totals
                    .flops,
            );
        }
        "weights" => {
            let a = nsplit::Analysis::run(model, &Default::default()).unwrap();
            println!(
                "0 {}",
                nsplit::report::Annotations::of(&a, &Default::default())
                    .totals
                    .weight_bytes
            );
            return;
        }
        other => panic!("unknown mode {other}"),
    }
    println!("{} {}", start.elapsed().as_secs_f64(), common::peak_rss());
}
