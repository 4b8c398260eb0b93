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

#[test]
fn fixtures_pass_onnx_checker_and_run_in_onnxruntime() {
    let Some(py) = python() else {
        eprintln!("\n*** SKIPPED: no Python found; the onnx checker / onnxruntime checks did not run ***\n");
        return;
    };
    let has_tools = Command::new(&py)
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .unwrap();
    assert!(
        has_tools.status.success(),
        "{py} lacks onnx/onnxruntime/numpy; install them: python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements.txt"
    );
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
