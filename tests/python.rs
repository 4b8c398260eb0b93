//! The official onnx checker and onnxruntime on the fixtures (scripts/check_fixtures.py).
//!
//! Python is found at `$NSPLIT_PYTHON`, else `.venv/bin/python`, else `python3`. Where there is no
//! Python at all the test says so loudly and passes; a Python without onnx/onnxruntime fails,
//! with the command that installs them.

mod common;
use common::root;
use std::process::Command;

fn python() -> Option<String> {
    if let Some(p) = std::env::var_os("NSPLIT_PYTHON") {
        return Some(p.to_string_lossy().into_owned());
    }
    let venv = root().join(".venv/bin/python");
    if venv.exists() {
        return Some(venv.to_string_lossy().into_owned());
    }
    Command::new("python3")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "python3".into())
}

/// A Python without onnx/onnxruntime fails the test, with the command that installs them.
fn require_tools(py: &str) {
    let has_tools = Command::new(py)
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .unwrap();
    assert!(
        has_tools.status.success(),
        "{py} lacks onnx/onnxruntime/numpy; install them: python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements.txt"
    );
}

/// `--input-shape` items as the manifest's `shapes` object: name -> dims.
fn given_shapes(items: &[String]) -> serde_json::Value {
    let shapes = nsplit::shapes::InputShapes::parse(items).unwrap();
    serde_json::to_value(shapes.0).unwrap()
}

/// Run scripts/check_halves.py over `cases` (written as a manifest into `dir`): whether every
/// case passed, and the script's output.
fn check_halves(py: &str, dir: &std::path::Path, cases: &[serde_json::Value]) -> (bool, String) {
    let manifest = dir.join("manifest.json");
    std::fs::write(&manifest, serde_json::to_string_pretty(cases).unwrap()).unwrap();
    require_tools(py);
    let out = Command::new(py)
        .arg(root().join("scripts/check_halves.py"))
        .arg(&manifest)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn fixtures_pass_onnx_checker_and_run_in_onnxruntime() {
    let Some(py) = python() else {
        eprintln!("\n*** SKIPPED: no Python found; the onnx checker / onnxruntime checks did not run ***\n");
        return;
    };
    require_tools(&py);
    let out = Command::new(&py)
        .arg(root().join("scripts/check_fixtures.py"))
        .arg(root().join("fixtures"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "check_fixtures.py failed:\n{text}");
    assert!(
        text.contains("lenet.onnx"),
        "the script checked nothing:\n{text}"
    );
}

/// Emits head/tail pairs — every prefix cut of every fixture and, when the corpus is present,
/// of every multi-node node test — and has scripts/check_halves.py run the onnx checker on each
/// half and compose them in onnxruntime on the test's recorded inputs.
#[test]
fn emitted_halves_pass_checker_and_compose_in_onnxruntime() {
    use common::{corpus, fixture, input_shapes, try_write_cut};
    use nsplit::cut::Cut;
    let Some(py) = python() else {
        eprintln!("\n*** SKIPPED: no Python found; emitted halves were not checked by onnx/onnxruntime ***\n");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let mut cases = vec![];
    let mut emit_failures = vec![];
    let mut refused = 0;
    let mut emit_all = |label: &str,
                        model: &std::path::Path,
                        shapes: Vec<String>,
                        inputs: Option<std::path::PathBuf>| {
        let mut a = match nsplit::Analysis::run(
            model,
            &nsplit::shapes::InputShapes::parse(&shapes).unwrap(),
        ) {
            Ok(a) => a,
            Err(e) => return emit_failures.push(format!("{label}: analysis: {e:#}")),
        };
        let given = given_shapes(&shapes);
        for k in 0..=a.graph.order.len() {
            let dir = work.path().join(format!("{label}.{k}"));
            let cut = Cut::prefix(&a.graph, k);
            let pair = match try_write_cut(&mut a, &cut, &dir) {
                Ok(p) => p,
                // A cut through a tensor of unknown type or rank is refused by design.
                Err(e) if format!("{e}").contains("crosses the cut but its") => {
                    refused += 1;
                    continue;
                }
                Err(e) => {
                    emit_failures.push(format!("{label} prefix {k}: {e:#}"));
                    continue;
                }
            };
            cases.push(serde_json::json!({
                "label": format!("{label} prefix {k}"),
                "original": model,
                "head": pair.head.map(|w| w.path),
                "tail": pair.tail.map(|w| w.path),
                "inputs": inputs.clone(),
                "shapes": given,
            }));
        }
    };
    for (name, shapes) in common::FIXTURES {
        let shapes: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
        emit_all(name, &fixture(name), shapes, None);
    }
    let (mut node_tests, mut control_flow_tests) = (0, 0);
    if let Some(dir) = corpus() {
        let mut tests: Vec<_> = std::fs::read_dir(dir.join("node"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        tests.sort();
        for t in tests {
            let m = t.join("model.onnx");
            let Ok(bytes) = std::fs::read(&m) else {
                continue;
            };
            let proto =
                <onnx_protobuf::ModelProto as onnx_protobuf::Message>::parse_from_bytes(&bytes)
                    .unwrap();
            let control = proto
                .graph
                .node
                .iter()
                .any(|n| matches!(n.op_type.as_str(), "If" | "Loop" | "Scan"));
            // Single-node tests have only the trivial cuts; the control-flow ones still show that
            // a model with subgraphs is written whole and correctly.
            if proto.graph.node.len() < 2 && !control {
                continue;
            }
            node_tests += 1;
            control_flow_tests += control as usize;
            let label = t.file_name().unwrap().to_string_lossy().to_string();
            emit_all(
                &label,
                &m,
                input_shapes(&m),
                Some(t.join("test_data_set_0")),
            );
        }
    }
    assert!(
        emit_failures.is_empty(),
        "{} emissions failed:\n{}",
        emit_failures.len(),
        emit_failures.join("\n")
    );
    let (passed, text) = check_halves(&py, work.path(), &cases);
    eprintln!(
        "{node_tests} node tests ({control_flow_tests} with If/Loop/Scan); {} cuts emitted, {refused} refused (a crossing tensor of unknown type or rank)\n{}",
        cases.len(),
        text.lines().rev().take(2).collect::<Vec<_>>().join("\n")
    );
    std::fs::write(root().join("target/halves-report.txt"), &text).ok();
    if std::env::var_os("NSPLIT_KEEP_HALVES").is_some() {
        eprintln!("kept the halves in {}", work.keep().display());
    }
    assert!(passed, "check_halves.py failed:\n{text}");
}

/// The main job's own output: for every fixture and light model-zoo net, plans for both
/// objectives over round-trip-free networks from 1 to 1000 Mbps (so mid-network cuts are chosen),
/// then has scripts/check_halves.py check every pair listed in selection.json.
#[test]
fn main_job_pairs_pass_checker_and_compose_in_onnxruntime() {
    use common::{fixture, light_models, nsplit, FIXTURES};
    let Some(py) = python() else {
        eprintln!("\n*** SKIPPED: no Python found; the main job's pairs were not checked by onnx/onnxruntime ***\n");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let bucket_file = common::round_trip_free_buckets(work.path(), &[1.0, 10.0, 100.0, 1000.0]);
    let mut models: Vec<(std::path::PathBuf, Vec<String>)> = FIXTURES
        .iter()
        .map(|(n, s)| (fixture(n), s.iter().map(|s| s.to_string()).collect()))
        .collect();
    models.extend(light_models().into_iter().map(|m| (m, vec![])));
    let mut cases = vec![];
    let mut mid = 0;
    for (i, (model, shapes)) in models.iter().enumerate() {
        for objective in ["latency", "energy"] {
            let out = work.path().join(format!("{i}.{objective}"));
            let mut args = vec![
                model.to_str().unwrap().to_string(),
                "--out".into(),
                out.display().to_string(),
                "--buckets".into(),
                bucket_file.display().to_string(),
                "--objective".into(),
                objective.into(),
                "--no-verify".into(),
            ];
            for s in shapes {
                args.extend(["--input-shape".to_string(), s.clone()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = nsplit(&args);
            assert!(
                o.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let sel: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("selection.json")).unwrap())
                    .unwrap();
            let given = given_shapes(shapes);
            for c in sel["cuts"].as_array().unwrap() {
                let file = |side: &str| c[side].as_str().map(|f| out.join(f));
                mid += (file("head").is_some() && file("tail").is_some()) as usize;
                cases.push(serde_json::json!({
                    "label": format!("{} {objective} {}", model.display(), c["id"]),
                    "original": model,
                    "head": file("head"),
                    "tail": file("tail"),
                    "inputs": null,
                    "shapes": given,
                }));
            }
        }
    }
    assert!(mid >= 5, "only {mid} mid-network cuts were chosen");
    let (passed, text) = check_halves(&py, work.path(), &cases);
    eprintln!(
        "{} pairs from the main job ({mid} mid-network)\n{}",
        cases.len(),
        text.lines().rev().take(2).collect::<Vec<_>>().join("\n")
    );
    assert!(passed, "check_halves.py failed:\n{text}");
}
