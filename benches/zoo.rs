//! The whole pipeline on every zoo model: time and peak memory of `nsplit MODEL --out DIR`
//! without verification as a ratio against reading the model's files in the same run, and of
//! verification alone in onnxruntime and in tract (the original and every pair, with the slowest
//! pair's own time); then the onnx checker and onnxruntime on every pair written (not in CI: the
//! zoo is about 2 GB).
//!
//! ```text
//! cargo bench --bench zoo            # writes the zoo into target/zoo first if it is missing
//! ```
//! Each measurement is a fresh process (peak RSS is its own). Python with onnx/onnxruntime is
//! `$NSPLIT_PYTHON`, else `.venv/bin/python`, else `python3`.

use nsplit::dev as common;

use nsplit::plan::network;
use nsplit::selection::SelectionTable;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn main() {
    let args = common::args();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1], Path::new(&args[2]), Path::new(&args[3]));
    }
    let root = nsplit::dev::root();
    let zoo = root.join("target/zoo");
    if !zoo.join("bert_base.onnx").exists() {
        let ok = Command::new(env!("CARGO_BIN_EXE_nsplit-fixtures"))
            .args(["--zoo", zoo.to_str().unwrap()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "zoo generation failed");
    }
    let work = tempfile::tempdir().unwrap();
    let buckets = work.path().join("buckets.json");
    // Networks with no round trip from 1 to 1000 Mbps, so that mid-network cuts are written.
    let wifi = network::reference_network("wifi").unwrap();
    let file = network::BucketsFile {
        format: network::FORMAT.into(),
        version: 1,
        buckets: [1.0, 10.0, 100.0, 1000.0]
            .iter()
            .map(|&mbps| nsplit::plan::BandwidthBucket {
                rtt_ms: 0.0,
                ..network::at_bandwidth(mbps, &wifi)
            })
            .collect(),
    };
    std::fs::write(&buckets, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    let mut models: Vec<PathBuf> = std::fs::read_dir(&zoo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    models.sort();
    println!("| model | size MB | read s | pipeline s (x read) | pipeline peak MB (x size) | pairs | onnxruntime verify s (slowest pair) | peak MB | tract verify s (slowest pair) | peak MB | tract / onnxruntime |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut cases = vec![];
    for model in &models {
        let stem = model.file_stem().unwrap().to_string_lossy().into_owned();
        let data = PathBuf::from(format!("{}.data", model.display()));
        let size = std::fs::metadata(model).unwrap().len()
            + std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0);
        let out = work.path().join(&stem);
        let run = |mode: &str| {
            let o = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--child",
                    mode,
                    model.to_str().unwrap(),
                    out.to_str().unwrap(),
                ])
                .env("NSPLIT_BUCKETS", &buckets)
                .env("NSPLIT_PYTHON", common::python())
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{mode} {stem}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let mut it = text.split_whitespace().map(|v| v.parse::<f64>().unwrap());
            let secs = it.next().unwrap();
            let rss = it.next().unwrap();
            let slowest_pair = it.next().unwrap_or(f64::NAN);
            (secs, rss, slowest_pair)
        };
        let read = run("read");
        let pipeline = run("pipeline");
        let ort = run("verify-onnxruntime");
        let tract = run("verify-tract");
        let table = SelectionTable::load(&out).unwrap();
        for c in &table.cuts {
            let file = |f: &Option<String>| f.as_ref().map(|f| out.join(f));
            cases.push(serde_json::json!({
                "label": format!("{stem} {}", c.id),
                "original": model,
                "head": file(&c.head),
                "tail": file(&c.tail),
                "inputs": null,
            }));
        }
        println!(
            "| {stem} | {:.0} | {:.2} | {:.2} ({:.1}x) | {:.0} ({:.2}x) | {} | {:.2} ({:.2}) | {:.0} | {:.2} ({:.2}) | {:.0} | {:.1}x |",
            size as f64 / 1e6,
            read.0,
            pipeline.0,
            pipeline.0 / read.0,
            pipeline.1 / 1e6,
            pipeline.1 / size as f64,
            table.cuts.len(),
            ort.0,
            ort.2,
            ort.1 / 1e6,
            tract.0,
            tract.2,
            tract.1 / 1e6,
            tract.0 / ort.0,
        );
    }
    let manifest = work.path().join("manifest.json");
    std::fs::write(&manifest, serde_json::to_string_pretty(&cases).unwrap()).unwrap();
    let python = common::python();
    let o = Command::new(python)
        .arg(root.join("scripts/check_halves.py"))
        .arg(&manifest)
        .output()
        .unwrap();
    println!(
        "\nonnx checker + onnxruntime over {} pairs:\n{}{}",
        cases.len(),
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .join("\n"),
        if o.status.success() {
            ""
        } else {
            "\nFAILED (see above)"
        }
    );
}

/// One measured step in a fresh process: prints seconds and peak RSS bytes.
fn child(mode: &str, model: &Path, out: &Path) {
    let start = Instant::now();
    match mode {
        "read" => {
            let mut n = std::fs::read(model).unwrap().len();
            if let Ok(d) = std::fs::read(format!("{}.data", model.display())) {
                n += d.len();
            }
            std::hint::black_box(n);
        }
        "pipeline" => {
            let buckets = std::env::var("NSPLIT_BUCKETS").unwrap();
            let mut opts = common::job_options(&buckets, false);
            opts.profiles = nsplit::cost::Profiles::resolve("jetson-tk1-cpu", "titan-x").unwrap();
            nsplit::job::run(model, out, &opts).unwrap();
        }
        "verify-onnxruntime" | "verify-tract" => {
            let table = SelectionTable::load(out).unwrap();
            let a = nsplit::Analysis::run(model, &Default::default()).unwrap();
            let vopts = nsplit::verify::VerifyOptions {
                verifier: if mode == "verify-tract" {
                    nsplit::runtime::Verifier::Tract
                } else {
                    nsplit::runtime::Verifier::Onnxruntime
                },
                ..Default::default()
            };
            let reference = nsplit::verify::Reference::new(&a, &vopts)
                .unwrap()
                .unwrap_or_else(|why| panic!("{}: {why}", model.display()));
            let mut slowest = 0f64;
            for c in &table.cuts {
                let file = |f: &Option<String>| f.as_ref().map(|f| out.join(f));
                let (h, t) = (file(&c.head), file(&c.tail));
                let pair = Instant::now();
                let o = reference.check(h.as_deref(), t.as_deref(), &vopts).unwrap();
                slowest = slowest.max(pair.elapsed().as_secs_f64());
                assert!(o.passed(), "{} {}: {}", model.display(), c.id, o.to_text());
            }
            let rss = common::peak_rss();
            println!("{} {} {slowest}", start.elapsed().as_secs_f64(), rss);
            return;
        }
        _ => panic!("unknown mode {mode}"),
    }
    let rss = common::peak_rss();
    println!("{} {}", start.elapsed().as_secs_f64(), rss);
}
