//! Helpers the integration tests and the benchmarks share (compiled with the `dev` feature,
//! which only the crate's own tests and benchmarks turn on): where the repository and Python are,
//! running a command that must succeed, and the benchmarks' measurements and documents.
//!
//! - [`paper`]: the tables of docs/paper-reproduction.md (the paper test and bench).

pub mod paper;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// The Python of the Triton server's venv (scripts/tritonserver.sh): `$NSPLIT_TRITON_PYTHON`,
/// else the repository's `.venv-triton/bin/python`.
pub fn triton_python() -> PathBuf {
    std::env::var_os("NSPLIT_TRITON_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv-triton/bin/python"))
}

/// The first input of `model`, drawn as `runtime::random_inputs` draws it (seed 0) at the
/// analysed sizes, written as `file`: its name and the file, as `nsplit run --input` takes them.
pub fn write_first_input(model: &Path, file: &Path) -> (String, PathBuf) {
    let a = crate::Analysis::run(model, &Default::default()).unwrap();
    let name = a.graph.tensor(a.graph.inputs[0]).name.clone();
    let values = crate::runtime::random_inputs(&a.graph, &a.shapes, None, 0).unwrap();
    crate::runtime::npy::write_npy(file, &values[&name]).unwrap();
    (name, file.to_path_buf())
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

/// A zoo network at its real size, seeded random weights (ResNet-18: 45 MB): written by the
/// fixture generator (`generator`, the benches' `CARGO_BIN_EXE_nsplit-fixtures`) into
/// `target/zoo-bench/` the first time (fixtures/zoo.md).
pub fn zoo_model(generator: &Path, name: &str) -> PathBuf {
    let dir = root().join("target/zoo-bench");
    let path = dir.join(format!("{name}.onnx"));
    if !path.exists() {
        // Written beside and renamed into place: an interrupted run leaves no half a model.
        let staging = dir.join("staging");
        succeed(
            Command::new(generator)
                .arg("--zoo")
                .arg(&staging)
                .args(["--only", name]),
        );
        std::fs::rename(staging.join(format!("{name}.onnx")), &path).unwrap();
    }
    path
}

/// Real models (scripts/fetch-real-models.sh) the benchmarks time with onnxruntime, with the
/// sizes they take: a face landmark CNN, a detector and a text recogniser, none of them in the
/// profiler's grid's or calibration's families by design.
pub const REAL_MODELS: [(&str, &[&str]); 3] = [
    ("mtcnn-onet.onnx", &["input_3=1x48x48x3"]),
    ("nudenet-320n.onnx", &["images=1x3x320x320"]),
    ("captcha-crnn.onnx", &["image=1x3x60x160"]),
];

/// The networks beyond the fixtures and the light nets that the onnxruntime benchmarks time
/// (accuracy, regret), with their input sizes: ResNet-18 (also in tract), MobileNetV2, and the
/// [`REAL_MODELS`] that are fetched.
pub fn networks_beyond(
    generator: &Path,
    runtime: crate::runtime::Runtime,
) -> Vec<(PathBuf, Vec<String>)> {
    let mut models = vec![(zoo_model(generator, "resnet18"), vec![])];
    if runtime == crate::runtime::Runtime::Onnxruntime {
        models.push((zoo_model(generator, "mobilenet_v2"), vec![]));
        let real = root().join("corpus/real-models");
        for (file, shapes) in REAL_MODELS {
            if real.join(file).exists() {
                models.push((
                    real.join(file),
                    shapes.iter().map(|s| s.to_string()).collect(),
                ));
            }
        }
    }
    models
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
            server_spread: crate::plan::DEFAULT_SERVER_SPREAD,
        },
        verify,
        verifier: crate::runtime::Verifier::Auto,
        samples: Default::default(),
        external_data: crate::output::ExternalData::Auto,
        progress: false,
        triton: None,
    }
}

/// A running tritonserver (scripts/tritonserver.sh) on a free loopback port, started by a test or
/// a benchmark and stopped (SIGTERM, then SIGKILL) by its pid when dropped.
pub struct Triton {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl Triton {
    pub fn start(python: &Path, repo: &Path, log: &Path) -> Triton {
        Triton::start_with(python, repo, log, &[])
    }

    /// [`Triton::start`] with variables `env` set for the server (and its Python backend).
    pub fn start_with(python: &Path, repo: &Path, log: &Path, env: &[(&str, &str)]) -> Triton {
        let port = free_port();
        let mut command = triton_command(python, repo, port);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .expect("start scripts/tritonserver.sh");
        let mut triton = Triton {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        };
        let server =
            crate::serve::kserve::Server::new(&triton.url, Duration::from_secs(2)).unwrap();
        let start = Instant::now();
        loop {
            if server.ready().is_ok() {
                eprintln!("triton ready in {:.1} s", start.elapsed().as_secs_f64());
                return triton;
            }
            if let Some(status) = triton.child.try_wait().unwrap() {
                panic!(
                    "tritonserver exited ({status}) before it was ready:\n{}",
                    triton.logs()
                );
            }
            if start.elapsed() > Duration::from_secs(180) {
                let logs = triton.logs();
                triton.stop();
                panic!("tritonserver was not ready after 180 s:\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Whether the server process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    pub fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let text = read(&self.log) + &read(&self.log.with_extension("err"));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Stop the server by its pid: SIGTERM lets it unload its models and their stub processes.
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(40) {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Triton {
    fn drop(&mut self) {
        self.stop();
    }
}
