//! docs/tutorial.md, run as a user would run it: every command of its `sh` blocks from step 1 on,
//! in order, in one bash, in a scratch folder whose `fixtures/` and `scripts/` are the
//! repository's, with `nsplit` and `python3` (the tests' venv's, which has NumPy) on the PATH. The
//! tutorial starts the real Triton itself (`scripts/tritonserver.sh ... &`), waits for it to be
//! ready and stops it by its job (`kill %1`); the port is a free one instead of its 8000. The
//! whole run is one process group, killed if it outlives its deadline.

use crate::common::*;
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The commands of the tutorial's `sh` blocks after its first step's heading (the set-up block
/// before it installs the server's venv, which the tests have).
fn tutorial_commands() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("docs/tutorial.md")).unwrap();
    let steps = text
        .find("\n## 1.")
        .expect("docs/tutorial.md has a `## 1.` step");
    let mut commands = vec![];
    let mut in_sh = false;
    for line in text[steps..].lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh && !l.is_empty() => commands.push(l.to_string()),
            _ => {}
        }
    }
    commands
}

#[test]
fn every_command_of_the_tutorial_runs() {
    let Some((triton, _turn)) = triton_python() else {
        return;
    };
    let Some(python) = python_tools("the tutorial") else {
        return;
    };
    let commands = tutorial_commands();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("scripts/tritonserver.sh"))
            && commands.iter().any(|c| c.contains("--adaptive"))
            && commands.last().is_some_and(|c| c == "kill %1"),
        "the tutorial starts a server, runs adaptively and stops the server: {commands:?}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    for dir in ["fixtures", "scripts"] {
        std::os::unix::fs::symlink(root().join(dir), work.join(dir)).unwrap();
    }
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nsplit"), bin.join("nsplit")).unwrap();

    let port = nsplit::dev::free_port().to_string();
    let script = format!(
        "set -euxo pipefail\n{}\nwait || true\n",
        commands.join("\n").replace("8000", &port)
    );
    // `python3` is the tests' venv's (a link to it elsewhere would not find the venv).
    let venv_bin = std::path::Path::new(&python).parent().unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (out, err) = (tmp.path().join("stdout"), tmp.path().join("stderr"));
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .current_dir(&work)
        .env("PATH", path)
        .env("NSPLIT_TRITON_PYTHON", &triton)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = format!("-{}", child.id());
    let signal = |sig: &str| {
        let _ = Command::new("kill")
            .args([sig, "--", &group])
            .stderr(Stdio::null())
            .status();
    };
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(600) {
            signal("-KILL");
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // A tutorial that failed before its `kill %1` leaves the server running: stop what is left
    // of the group (the server unloads its models on SIGTERM).
    signal("-TERM");
    std::thread::sleep(Duration::from_secs(2));
    signal("-KILL");
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let tail = |s: &str| {
        s.lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "the tutorial failed ({status:?}) after {:.0} s:\n--- stdout\n{}\n--- stderr\n{}",
        start.elapsed().as_secs_f64(),
        tail(&stdout),
        tail(&stderr)
    );

    // Step 1: Wi-Fi splits, 3G runs on the phone, and the fallback is in the folder.
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("dist/selection.json")).unwrap())
            .unwrap();
    let cut_of = |network: &str| {
        table["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["network"]["name"] == network)
            .unwrap()["cut"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let wifi = cut_of("wifi");
    assert!(wifi.starts_with('h'), "Wi-Fi chose {wifi}, not a mid cut");
    assert_eq!(cut_of("3g"), "all-mobile");
    assert_eq!(table["fallback"], "all-mobile");
    assert!(work.join("dist/all-mobile.head.onnx").is_file());
    // Steps 2 and 4: the lookup and the request name the Wi-Fi cut.
    assert!(
        stdout.matches(&wifi).count() >= 2,
        "select and run name {wifi}:\n{stdout}"
    );
    // Step 5: every request answered, by the server (the adaptive run needs no fallback here).
    assert!(
        !stdout.contains("server unavailable"),
        "a request of the adaptive run missed the server:\n{stdout}"
    );
}
