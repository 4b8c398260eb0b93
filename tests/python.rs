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
        let given: serde_json::Map<String, serde_json::Value> = shapes
            .iter()
            .filter_map(|s| s.split_once('='))
            .map(|(n, d)| {
                (
                    n.to_string(),
                    d.split('x')
                        .map(|v| v.parse::<u64>().unwrap())
                        .collect::<Vec<_>>()
                        .into(),
                )
            })
            .collect();
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
    let manifest = work.path().join("manifest.json");
    std::fs::write(&manifest, serde_json::to_string_pretty(&cases).unwrap()).unwrap();
    require_tools(&py);
    let out = Command::new(&py)
        .arg(root().join("scripts/check_halves.py"))
        .arg(&manifest)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{node_tests} node tests ({control_flow_tests} with If/Loop/Scan); {} cuts emitted, {refused} refused (a crossing tensor of unknown type or rank)\n{}",
        cases.len(),
        text.lines().rev().take(2).collect::<Vec<_>>().join("\n")
    );
    std::fs::write(root().join("target/halves-report.txt"), &text).ok();
    if std::env::var_os("NSPLIT_KEEP_HALVES").is_some() {
        eprintln!("kept the halves in {}", work.keep().display());
    }
    assert!(out.status.success(), "check_halves.py failed:\n{text}");
}
