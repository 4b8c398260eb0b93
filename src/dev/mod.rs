//! Helpers the integration tests and the benchmarks share (compiled with the `dev` feature,
//! which only the crate's own tests and benchmarks turn on): where the repository and Python are,
//! running a command that must succeed, and the benchmarks' measurements and documents.
//!
//! - [`paper`]: the tables of docs/paper-reproduction.md (the paper test and bench).

pub mod paper;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root folder.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Python with the onnx tools: `$NSPLIT_PYTHON`, else the repository's `.venv/bin/python`, else
/// `python3`.
pub fn python() -> String {
    if let Some(p) = std::env::var_os("NSPLIT_PYTHON") {
        return p.to_string_lossy().into_owned();
    }
    let venv = root().join(".venv/bin/python");
    if venv.exists() {
        return venv.to_string_lossy().into_owned();
    }
    "python3".into()
}

/// Run `cmd` to the end; panic with its stderr when it fails.
pub fn succeed(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The command-line arguments, without the `--bench` cargo adds and without `--runtime NAME`
/// (read by [`runtime_arg`]).
pub fn args() -> Vec<String> {
    let mut out = vec![];
    let mut all = std::env::args().skip(1);
    while let Some(a) = all.next() {
        match a.as_str() {
            "--bench" => {}
            "--runtime" => {
                all.next();
            }
            _ => out.push(a),
        }
    }
    out
}

/// The runtime a benchmark times in: `--runtime tract|onnxruntime` among its arguments, else the
/// environment variable `env`, else tract.
pub fn runtime_arg(env: &str) -> crate::runtime::Runtime {
    use crate::runtime::Runtime;
    let args: Vec<String> = std::env::args().collect();
    let named = args
        .iter()
        .position(|a| a == "--runtime")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var(env).ok());
    match named.as_deref() {
        None | Some("tract") => Runtime::Tract,
        Some("onnxruntime") => Runtime::Onnxruntime,
        Some(other) => panic!("--runtime {other}: tract or onnxruntime"),
    }
}

/// Peak resident set size of this process (VmHWM), in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The run with the median time of `runs` runs of (seconds, peak RSS bytes).
pub fn median(runs: usize, mut f: impl FnMut() -> (f64, u64)) -> (f64, u64) {
    let mut all: Vec<(f64, u64)> = (0..runs).map(|_| f()).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    all[runs / 2]
}

/// Replace the part of the Markdown file `path` between `<!-- NAME:begin -->` and
/// `<!-- NAME:end -->` with `content` (appending both markers and it when absent), so that two
/// benchmarks can each regenerate their own part of one document.
pub fn replace_section(path: &Path, name: &str, content: &str) {
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{begin}\n{}\n{end}", content.trim_end());
    let new = match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &doc[..b], &doc[e + end.len()..]),
        _ => format!("{}\n\n{block}\n", doc.trim_end()),
    };
    std::fs::write(path, new).unwrap();
}

/// The part of the Markdown file `path` between the markers [`replace_section`] writes, with
/// them; empty when absent.
pub fn section(path: &Path, name: &str) -> String {
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if b < e => doc[b..e + end.len()].to_string(),
        _ => String::new(),
    }
}

/// A loopback port nothing listens on (the moment it is returned).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// The command that starts the test inference server (`scripts/tritonserver.sh`, Triton from
/// the Python environment `python`) on the model repository `repo`, HTTP on loopback at
/// `port`; the caller sets its output and spawns it.
pub fn triton_command(python: &Path, repo: &Path, port: u16) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/tritonserver.sh"))
        .args(["--model-repository", &repo.to_string_lossy()])
        .args([
            "--http-address",
            "127.0.0.1",
            "--http-port",
            &port.to_string(),
        ])
        .env("NSPLIT_TRITON_PYTHON", python);
    cmd
}

/// The main job's options as the command line's defaults give them, with `buckets` (a list of
/// network names or a file) and verification on or off.
pub fn job_options(buckets: &str, verify: bool) -> crate::job::JobOptions {
    use crate::plan::network;
    let lte = network::reference_network(network::DEFAULT_BASE_NETWORK).unwrap();
    crate::job::JobOptions {
        input_shapes: Default::default(),
        profiles: crate::cost::Profiles::default(),
        plan: crate::plan::PlanOptions {
            objective: crate::plan::Objective::Latency,
            cloud_load: 1.0,
            buckets: network::parse_buckets(buckets, &lte).unwrap(),
            sweep: crate::plan::Sweep {
                from_mbps: 0.1,
                to_mbps: 1000.0,
                like: lte,
            },
            fallback: true,
        },
        verify,
        verifier: crate::runtime::Verifier::Auto,
        samples: Default::default(),
        external_data: crate::output::ExternalData::Auto,
        progress: false,
        triton: None,
    }
}
