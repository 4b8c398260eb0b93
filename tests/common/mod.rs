//! Helpers shared by the integration tests (those the benchmarks need too are in
//! `nsplit::dev`).

pub mod serving;

pub use nsplit::dev::{python, root, succeed};

use nsplit::shapes::InputShapes;
use nsplit::tensor::TensorInfo;
use nsplit::Analysis;
use onnx_protobuf::{type_proto, Message, ModelProto, TensorProto, ValueInfoProto};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every committed fixture, with the input shapes it needs.
pub const FIXTURES: &[(&str, &[&str])] = &[
    ("lenet.onnx", &[]),
    ("resnet_block.onnx", &[]),
    ("inception_block.onnx", &[]),
    ("lstm.onnx", &[]),
    ("gru.onnx", &[]),
    ("if_outer_scope.onnx", &[]),
    ("external_data.onnx", &[]),
    ("symbolic_batch.onnx", &["images=2x3x32x32"]),
    ("ir3_initializer_inputs.onnx", &[]),
    ("custom_domain.onnx", &[]),
    ("symbolic_classifier.onnx", &["pixels=1x3x16x16"]),
    ("transformer_block.onnx", &["x=1x8x16"]),
    ("onnx_current.onnx", &["x=1x8"]),
    ("constant_output.onnx", &[]),
];

pub fn fixture(name: &str) -> PathBuf {
    root().join("fixtures").join(name)
}

/// Analyse a model, fixing input shapes from `NAME=DIMS` items.
pub fn analyse(path: &Path, shapes: &[&str]) -> Analysis {
    let items: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
    Analysis::run(path, &InputShapes::parse(&items).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

/// The info of a tensor by name.
pub fn info<'a>(a: &'a Analysis, name: &str) -> &'a TensorInfo {
    a.shapes.get(
        a.graph
            .tensor_id(name)
            .unwrap_or_else(|| panic!("no tensor {name}")),
    )
}

pub fn dims(a: &Analysis, name: &str) -> Vec<u64> {
    info(a, name)
        .concrete_dims()
        .unwrap_or_else(|| panic!("{name} has no concrete shape: {:?}", info(a, name)))
}

/// Run the nsplit binary.
/// Run the nsplit binary from the repository root. It finds onnxruntime (its verifier) through
/// the same Python the tests use.
pub fn nsplit(args: &[&str]) -> Output {
    nsplit_with_env(args, &[])
}

/// Run the nsplit binary with extra environment variables.
pub fn nsplit_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nsplit"));
    cmd.args(args)
        .current_dir(root())
        .env("NSPLIT_PYTHON", python());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run nsplit")
}

/// `nsplit annotate MODEL --format json ARGS...` with `env`, which must succeed; its JSON report.
pub fn annotate_json(model: &str, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut all = vec!["annotate", model, "--format", "json"];
    all.extend_from_slice(args);
    let out = nsplit_with_env(&all, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Compare `actual` with the golden file byte for byte; `UPDATE_GOLDEN=1` rewrites it instead.
pub fn check_golden(rel: &str, actual: &str) {
    let path = root().join("golden").join(rel);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} unreadable ({e}); create it with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{} differs from the output at line {}:\n  golden: {:?}\n  actual: {:?}\n(run with UPDATE_GOLDEN=1 to accept, then read the diff)",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

/// Shapes plain tract computes for the unmodified model: name -> (onnx dtype, dims), fully known only.
pub fn tract_shapes(path: &Path, inputs: &[(&str, Vec<usize>)]) -> HashMap<String, Vec<u64>> {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_hir::infer::Factoid;
    let onnx = tract_onnx::onnx();
    let proto = onnx.proto_model_for_path(path).unwrap();
    let mut parsed = onnx
        .parse(&proto, path.parent().and_then(|p| p.to_str()))
        .unwrap();
    for (name, shape) in inputs {
        let outlet = parsed.outlets_by_name[*name];
        let fact = parsed.model.outlet_fact(outlet).unwrap().clone();
        parsed
            .model
            .set_outlet_fact(outlet, fact.with_shape(shape.clone()))
            .unwrap();
    }
    let _ = parsed.model.analyse(true);
    let mut out = HashMap::new();
    for (name, outlet) in &parsed.outlets_by_name {
        if let Some(shape) = parsed
            .model
            .outlet_fact(*outlet)
            .unwrap()
            .shape
            .concretize()
        {
            if let Ok(d) = shape
                .iter()
                .map(|d| d.to_i64().map(|v| v as u64).ok())
                .collect::<Option<Vec<u64>>>()
                .ok_or(())
            {
                out.insert(name.clone(), d);
            }
        }
    }
    out
}

/// Write the halves of `cut` into `dir` as head.onnx / tail.onnx; returns what was written.
pub fn write_cut(
    a: &mut Analysis,
    cut: &nsplit::cut::Cut,
    dir: &Path,
) -> nsplit::emit::WrittenPair {
    try_write_cut(a, cut, dir).unwrap_or_else(|e| panic!("{e:#}"))
}

pub fn try_write_cut(
    a: &mut Analysis,
    cut: &nsplit::cut::Cut,
    dir: &Path,
) -> anyhow::Result<nsplit::emit::WrittenPair> {
    use nsplit::emit::{write_pair, Emitter};
    use nsplit::output::{ExternalData, Staging};
    let mut staging = Staging::new(dir)?;
    let Analysis {
        model,
        graph,
        shapes,
        ..
    } = a;
    let mut emitter = Emitter::new(model, graph, shapes)?;
    let pair = write_pair(
        &mut emitter,
        cut,
        &mut staging,
        "head.onnx",
        "tail.onnx",
        ExternalData::Auto,
    )?;
    staging.commit()?;
    Ok(pair)
}

/// Split `path` at the top-level prefixes `ks` and check head-then-tail against the original with
/// tract (the original runs once). Returns the largest absolute difference seen.
pub fn compose_prefixes(path: &Path, shapes: &[&str], ks: &[usize]) -> Result<f64, String> {
    use nsplit::cut::Cut;
    use nsplit::verify::{Outcome, Reference, VerifyOptions};
    let items: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
    let input_shapes = InputShapes::parse(&items).unwrap();
    let mut a = Analysis::run(path, &input_shapes).map_err(|e| format!("{e:#}"))?;
    let opts = VerifyOptions {
        input_shapes,
        ..Default::default()
    };
    let reference = Reference::new(&a, &opts).map_err(|e| format!("{e:#}"))??;
    let mut worst = 0f64;
    for &k in ks {
        let dir = tempfile::tempdir().unwrap();
        let cut = Cut::prefix(&a.graph, k);
        let pair = write_cut(&mut a, &cut, dir.path());
        if k == 0 && pair.head.is_some() {
            return Err("all-cloud cut wrote a head".into());
        }
        let head = pair.head.as_ref().map(|w| w.path.as_path());
        let tail = pair.tail.as_ref().map(|w| w.path.as_path());
        match reference
            .check(head, tail, &opts)
            .map_err(|e| format!("prefix {k}: {e:#}"))?
        {
            Outcome::Compared { diffs, .. } => {
                for d in diffs {
                    if !d.ok {
                        return Err(format!(
                            "prefix {k} ({}): output {} differs by {}",
                            pair.cut_id, d.name, d.max_abs
                        ));
                    }
                    worst = worst.max(d.max_abs);
                }
            }
            Outcome::Unverifiable(why) => return Err(format!("prefix {k}: unverifiable: {why}")),
            Outcome::Rejected(why) => return Err(format!("prefix {k}: {why}")),
        }
    }
    Ok(worst)
}

/// Every prefix for graphs under 100 nodes, else 30 evenly spaced ones (both ends included).
pub fn prefixes(n: usize) -> Vec<usize> {
    if n < 100 {
        (0..=n).collect()
    } else {
        (0..30).map(|i| i * n / 29).collect()
    }
}

/// The ONNX backend-test corpus folder, if fetched. When absent this says so loudly, and fails
/// under CI or when `NSPLIT_REQUIRE_CORPUS` is set (as `.ci/run` does).
pub fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("NSPLIT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("corpus/onnx-backend"));
    if dir.join("light").is_dir() {
        return Some(dir);
    }
    if std::env::var_os("NSPLIT_REQUIRE_CORPUS").is_some() || in_ci() {
        panic!("NSPLIT_REQUIRE_CORPUS is set but the corpus is missing at {}; run scripts/fetch-corpus.sh", dir.display());
    }
    eprintln!("\n*** SKIPPED: ONNX backend-test corpus not found at {} — run scripts/fetch-corpus.sh ***\n", dir.display());
    None
}

/// A buckets file, written into `dir`, of networks with no round trip at these uplinks (downlink
/// equal, Wi-Fi radio): on them even the small fixtures get mid-network cuts.
pub fn round_trip_free_buckets(dir: &Path, mbps: &[f64]) -> PathBuf {
    use nsplit::plan::network::{reference_network, BucketsFile};
    let file = BucketsFile::without_round_trip(mbps, &reference_network("wifi").unwrap());
    let path = dir.join("buckets.json");
    std::fs::write(&path, file.to_json()).unwrap();
    path
}

/// The light model-zoo nets of the corpus in `dir`, sorted.
pub fn light_models_in(dir: &Path) -> Vec<PathBuf> {
    let mut models: Vec<PathBuf> = std::fs::read_dir(dir.join("light"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    models.sort();
    models
}

/// The test folders of one corpus family (`node`, `simple`, ...), sorted.
pub fn corpus_tests(dir: &Path, family: &str) -> Vec<PathBuf> {
    let mut tests: Vec<PathBuf> = std::fs::read_dir(dir.join(family))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    tests.sort();
    tests
}

/// The light model-zoo nets, or none (said loudly by [`corpus`]) when the corpus is absent.
pub fn light_models() -> Vec<PathBuf> {
    corpus().map(|d| light_models_in(&d)).unwrap_or_default()
}

/// The graph inputs a caller feeds: those that are not initializers too (IR 3 lists the weights
/// among the inputs).
pub fn fed_inputs(proto: &ModelProto) -> impl Iterator<Item = &ValueInfoProto> {
    let inits: Vec<&str> = proto
        .graph
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    proto
        .graph
        .input
        .iter()
        .filter(move |v| !inits.contains(&v.name.as_str()))
}

/// `--input-shape` items for the model's tensor inputs with symbolic or missing dims, from the test
/// data's recorded inputs (or 1 for each symbolic dim where no data exists).
pub fn input_shapes(model: &Path) -> Vec<String> {
    let proto = ModelProto::parse_from_bytes(&std::fs::read(model).unwrap()).unwrap();
    let data = model.parent().unwrap().join("test_data_set_0");
    let mut out = vec![];
    for (k, vi) in fed_inputs(&proto).enumerate() {
        let Some(type_proto::Value::TensorType(tt)) =
            vi.type_.as_ref().and_then(|t| t.value.as_ref())
        else {
            continue;
        };
        let concrete = tt
            .shape
            .as_ref()
            .is_some_and(|s| s.dim.iter().all(|d| d.has_dim_value()));
        if concrete {
            continue;
        }
        let recorded = std::fs::read(data.join(format!("input_{k}.pb")))
            .ok()
            .and_then(|b| TensorProto::parse_from_bytes(&b).ok());
        let dims: Vec<String> = match recorded {
            Some(t) => t.dims.iter().map(|d| d.to_string()).collect(),
            None => tt
                .shape
                .dim
                .iter()
                .map(|d| {
                    if d.has_dim_value() {
                        d.dim_value().to_string()
                    } else {
                        "1".into()
                    }
                })
                .collect(),
        };
        out.push(format!("{}={}", vi.name, dims.join("x")));
    }
    out
}

/// Whether this run is CI's (`CI` set to anything but empty, `0` or `false`): there a missing
/// tool is a broken set-up, never a reason to skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// `python()` when it can import onnx, onnxruntime and numpy. When it cannot, `what` (the check
/// that needs them) is skipped with a loud message, or, under CI, the test fails: CI installs
/// these tools (`.ci/run`), so their absence there is a broken set-up.
pub fn python_tools(what: &str) -> Option<String> {
    let py = python();
    let probe = Command::new(&py)
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output();
    let why = match probe {
        Ok(o) if o.status.success() => return Some(py),
        Ok(o) => format!(
            "{py} cannot import onnx, onnxruntime and numpy: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => format!("cannot run {py}: {e}"),
    };
    let fix = "python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements.txt \
               (or set NSPLIT_PYTHON)";
    if in_ci() {
        panic!("CI is set but {why}; {what} cannot run. Install the tools: {fix}");
    }
    eprintln!("\n*** SKIPPED: {what}: {why}. Install the tools: {fix} ***\n");
    None
}

/// Held by each test that starts a Triton: one at a time, so that two servers and their clients
/// do not share this machine's cores while the tests time them.
static ONE_SERVER_TEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The Python of the server's venv, and the turn of a test that starts a server (hold it for
/// the test); `None` when there is no such venv (skipped loudly; a failure under CI).
pub fn triton_python() -> Option<(PathBuf, std::sync::MutexGuard<'static, ()>)> {
    let python = nsplit::dev::triton_python();
    let probe = Command::new(&python)
        .args([
            "-c",
            "import onnxruntime, numpy, importlib.util as u; assert u.find_spec('pytriton')",
        ])
        .output();
    if probe.as_ref().is_ok_and(|o| o.status.success()) {
        // A test that failed while holding it poisons nothing the next one needs.
        let turn = ONE_SERVER_TEST
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        return Some((python, turn));
    }
    let why = format!(
        "{} has no nvidia-pytriton, onnxruntime and numpy (the Triton server's environment: see scripts/tritonserver.sh)",
        python.display()
    );
    if in_ci() {
        panic!("{why}");
    }
    eprintln!("\n*** SKIPPED: {why} ***\n");
    None
}
