//! The official onnx checker and onnxruntime on the fixtures (scripts/check_fixtures.py).
//!
//! Python is found by `common::python_tools`: `$NSPLIT_PYTHON`, else `.venv/bin/python`, else
//! `python3`. Where none has onnx, onnxruntime and numpy the checks are skipped loudly, except
//! under CI (`CI` set), where a missing tool is a broken set-up and fails the run.

use crate::common::{self, fed_inputs, python_tools, root, succeed};
use onnx_protobuf::Message;
use std::process::Command;

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
    let Some(py) = python_tools("the onnx checker / onnxruntime run of the fixtures") else {
        return;
    };
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
    let Some(py) = python_tools("the onnx checker / onnxruntime composition of every prefix cut")
    else {
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
        for t in common::corpus_tests(&dir, "node") {
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
/// objectives over round-trip-free networks from 1 to 1000 Mbps (so mid-network cuts are chosen);
/// every pair must be verified by onnxruntime in the job itself, and scripts/check_halves.py then
/// checks every pair listed in selection.json independently.
#[test]
fn main_job_pairs_pass_checker_and_compose_in_onnxruntime() {
    use common::{fixture, light_models, nsplit, FIXTURES};
    let Some(py) = python_tools("the onnx checker / onnxruntime check of the main job's pairs")
    else {
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
    let (mut mid, mut verified) = (0, 0);
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
                // nsplit's own check ran in onnxruntime, the runtime servers use.
                let v = &c["verification"];
                assert_eq!(v["status"], "passed", "{}: {c}", model.display());
                assert_eq!(v["verifier"], "onnxruntime", "{}: {c}", model.display());
                verified += 1;
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
        "{} pairs from the main job ({mid} mid-network, {verified} verified by onnxruntime)\n{}",
        cases.len(),
        text.lines().rev().take(2).collect::<Vec<_>>().join("\n")
    );
    assert!(passed, "check_halves.py failed:\n{text}");
}

/// The tools the checks use are the ones `scripts/requirements.txt` pins (so CI is
/// reproducible). Also the child that `missing_python_fails_under_ci_and_skips_loudly_elsewhere`
/// runs with a Python that does not exist.
#[test]
fn python_tools_match_the_pins() {
    let Some(py) = python_tools("the version check of the Python tools") else {
        return;
    };
    let pins = std::fs::read_to_string(root().join("scripts/requirements.txt")).unwrap();
    for package in ["onnx", "onnxruntime", "numpy"] {
        let pin = pins
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{package}==")))
            .unwrap_or_else(|| panic!("scripts/requirements.txt does not pin {package}"));
        let out = Command::new(&py)
            .args([
                "-c",
                &format!("import {package}; print({package}.__version__)"),
            ])
            .output()
            .unwrap();
        let installed = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(
            installed, pin,
            "{py} has {package} {installed}, pinned {pin}"
        );
    }
}

/// The operator schemas nsplit checks nodes against are exactly those of the pinned onnx:
/// regenerating `src/ops/schemas.json` changes no byte.
#[test]
fn operator_schemas_are_the_pinned_onnx_releases() {
    let Some(py) = python_tools("the operator schema check") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("schemas.json");
    succeed(
        Command::new(&py)
            .arg(root().join("scripts/gen_op_schemas.py"))
            .arg(&fresh),
    );
    let committed = std::fs::read(root().join("src/ops/schemas.json")).unwrap();
    assert!(
        std::fs::read(&fresh).unwrap() == committed,
        "src/ops/schemas.json is not what the pinned onnx gives; regenerate it with `{py} scripts/gen_op_schemas.py` and read the diff"
    );
}

/// With `CI` set and no usable Python, a check that needs the tools fails; without `CI` it is
/// skipped, loudly, and passes. Runs `python_tools_match_the_pins` in a child of this test
/// binary with a Python that does not exist.
#[test]
fn missing_python_fails_under_ci_and_skips_loudly_elsewhere() {
    let run = |ci: Option<&str>| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "python::python_tools_match_the_pins",
            "--nocapture",
        ])
        .env("NSPLIT_PYTHON", "no-such-python-for-nsplit");
        match ci {
            Some(v) => cmd.env("CI", v),
            None => cmd.env_remove("CI"),
        };
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (passed, text) = run(Some("true"));
    assert!(!passed, "under CI a missing Python must fail:\n{text}");
    assert!(
        text.contains("CI is set but cannot run no-such-python-for-nsplit"),
        "{text}"
    );
    let (passed, text) = run(None);
    assert!(passed, "outside CI a missing Python is a skip:\n{text}");
    assert!(text.contains("*** SKIPPED: the version check"), "{text}");
    assert!(text.contains("1 passed"), "the child ran the check: {text}");
}

/// The models with symbolic input dimensions, split at every prefix cut with no `--input-shape`
/// (as `nsplit split` does), and the two points each pair is composed at in onnxruntime.
const SYMBOLIC: &[(&str, [&str; 3])] = &[
    // Batch 1 and 3 as the issue asks, then a point of the test's own (not the tool's: its
    // second and third points are 3 and 6), so the halves must hold at any size.
    (
        "symbolic_batch.onnx",
        ["images=1x3x32x32", "images=3x3x32x32", "images=5x3x32x32"],
    ),
    (
        "symbolic_classifier.onnx",
        ["pixels=1x3x16x16", "pixels=3x3x16x16", "pixels=7x3x16x16"],
    ),
    // Two sequence lengths besides the batches.
    (
        "transformer_block.onnx",
        ["x=1x8x16", "x=3x5x16", "x=2x11x16"],
    ),
    ("onnx_current.onnx", ["x=1x8", "x=3x8", "x=4x8"]),
];

/// Symbolic dimensions survive the split: every prefix cut of every symbolic fixture, emitted
/// without sizes, composes in onnxruntime at batch 1, 3 and another (and three sequence lengths
/// for the transformer), and every input and output of each half declares `batch` / `seq` / `N`
/// wherever the size moves with it, never a frozen size nor a wrong name
/// (scripts/check_halves.py, "points").
#[test]
fn symbolic_halves_declare_symbols_and_compose_at_two_batch_sizes() {
    use common::{fixture, try_write_cut};
    use nsplit::cut::Cut;
    use nsplit::shapes::{InputShapes, Sizes};
    let Some(py) = python_tools("the onnx checker / onnxruntime check of symbolic halves") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let mut cases = vec![];
    for (name, at) in SYMBOLIC {
        let model = fixture(name);
        let mut a = nsplit::Analysis::run_with(&model, &InputShapes::default(), Sizes::Optional)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let points: Vec<_> = at.iter().map(|p| given_shapes(&[p.to_string()])).collect();
        let cuts = a.graph.order.len();
        assert!(cuts >= 4, "{name}: {cuts} nodes");
        for k in 0..=cuts {
            let dir = work.path().join(format!("{name}.{k}"));
            let cut = Cut::prefix(&a.graph, k);
            let pair = try_write_cut(&mut a, &cut, &dir)
                .unwrap_or_else(|e| panic!("{name} prefix {k}: {e:#}"));
            cases.push(serde_json::json!({
                "label": format!("{name} prefix {k}"),
                "original": model,
                "head": pair.head.map(|w| w.path),
                "tail": pair.tail.map(|w| w.path),
                "points": points,
            }));
        }
    }
    // The corpus models with a symbolic input dim (sequence maps over `N`): every prefix,
    // composed on the recorded inputs; each half's graph inputs, and the outputs the original
    // declares in full, are declared exactly as in the original.
    let mut corpus_models = 0;
    if let Some(dir) = common::corpus() {
        for sub in ["node", "simple"] {
            for t in common::corpus_tests(&dir, sub) {
                let model = t.join("model.onnx");
                let Ok(bytes) = std::fs::read(&model) else {
                    continue;
                };
                let original = onnx_protobuf::ModelProto::parse_from_bytes(&bytes).unwrap();
                if !declares_a_symbol(&original) {
                    continue;
                }
                corpus_models += 1;
                let label = t.file_name().unwrap().to_string_lossy().to_string();
                let mut a =
                    nsplit::Analysis::run_with(&model, &InputShapes::default(), Sizes::Optional)
                        .unwrap_or_else(|e| panic!("{label}: {e:#}"));
                for k in 0..=a.graph.order.len() {
                    let dir = work.path().join(format!("{label}.{k}"));
                    let cut = Cut::prefix(&a.graph, k);
                    let pair = match try_write_cut(&mut a, &cut, &dir) {
                        Ok(p) => p,
                        // A cut through a tensor of unknown type or rank is refused by design
                        // (here SequenceLength's output, which neither tract nor our rules type).
                        Err(e) if format!("{e}").contains("crosses the cut but its") => continue,
                        Err(e) => panic!("{label} prefix {k}: {e:#}"),
                    };
                    for half in [&pair.head, &pair.tail].into_iter().flatten() {
                        let h = onnx_protobuf::ModelProto::parse_from_bytes(
                            &std::fs::read(&half.path).unwrap(),
                        )
                        .unwrap();
                        let same = |vis: &[onnx_protobuf::ValueInfoProto],
                                    originals: &[onnx_protobuf::ValueInfoProto],
                                    all: bool| {
                            for vi in vis {
                                let Some(o) = originals.iter().find(|o| o.name == vi.name) else {
                                    continue;
                                };
                                let full = nsplit::shapes::info_from_type(&o.type_)
                                    .dims
                                    .is_some_and(|d| {
                                        d.iter().all(|d| !matches!(d, nsplit::tensor::Dim::Unknown))
                                    });
                                if all || full {
                                    assert_eq!(
                                        vi.type_, o.type_,
                                        "{label} prefix {k}: {}",
                                        vi.name
                                    );
                                }
                            }
                        };
                        same(&h.graph.input, &original.graph.input, true);
                        same(&h.graph.output, &original.graph.output, false);
                    }
                    cases.push(serde_json::json!({
                        "label": format!("{label} prefix {k}"),
                        "original": model,
                        "head": pair.head.map(|w| w.path),
                        "tail": pair.tail.map(|w| w.path),
                        "inputs": t.join("test_data_set_0"),
                    }));
                }
            }
        }
        assert!(
            corpus_models >= 5,
            "only {corpus_models} symbolic corpus models"
        );
    }
    let (passed, text) = check_halves(&py, work.path(), &cases);
    eprintln!(
        "{} symbolic fixtures and {corpus_models} symbolic corpus models\n{}",
        SYMBOLIC.len(),
        text.lines().rev().take(2).collect::<Vec<_>>().join("\n")
    );
    assert!(passed, "check_halves.py failed:\n{text}");
    assert!(
        text.contains(&format!("{} passed, 0 failed", cases.len())),
        "{text}"
    );
}

/// A graph input (not an initializer) whose tensor type, or a sequence's element type, has a
/// dim that is not a value.
fn declares_a_symbol(m: &onnx_protobuf::ModelProto) -> bool {
    use onnx_protobuf::type_proto::Value;
    fn tensor_dims(t: &onnx_protobuf::TypeProto) -> Option<&onnx_protobuf::TensorShapeProto> {
        match t.value.as_ref()? {
            Value::TensorType(t) => t.shape.as_ref(),
            Value::SequenceType(s) => tensor_dims(s.elem_type.as_ref()?),
            _ => None,
        }
    }
    fed_inputs(m)
        .filter_map(|i| tensor_dims(i.type_.as_ref()?))
        .flat_map(|s| &s.dim)
        .any(|d| {
            !matches!(
                d.value,
                Some(onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(_))
            )
        })
}
