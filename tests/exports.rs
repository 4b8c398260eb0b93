//! Models as exporters write them: dims paddle2onnx leaves unknown (`-1`, one name `?` for all),
//! sizes that strided convs and STFT windows collapse at small probes, dim names that given sizes
//! set apart, declarations our inference contradicts. Each splits, declares only what holds for
//! every size, and composes.

use crate::common::*;
use crate::emit::{declared, find, load};
use nsplit::proto::{model, node, value_info};
use nsplit::tensor::{DType, Dim, TensorInfo};
use onnx_protobuf::Message;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The main job `nsplit MODEL --out DIST EXTRA..`, which must succeed with every pair verified.
fn plan_verified(model: &str, dist: &std::path::Path, extra: &[&str]) {
    let mut args = vec![model, "--out", dist.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = nsplit(&args);
    assert!(o.status.success(), "{model}: {}", stderr(&o));
    assert_every_pair_verified(dist);
}

/// `nsplit split MODEL --at AT --out OUT EXTRA..`, which must succeed.
fn split_ok(model: &str, at: &str, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["split", model, "--at", at, "--out", out];
    args.extend_from_slice(extra);
    let o = nsplit(&args);
    assert!(o.status.success(), "split {model} at {at}: {}", stderr(&o));
    o
}

/// The command failed with exit code 1, and `text` is on stdout or stderr.
fn assert_fails_with(o: &std::process::Output, text: &str) {
    let said = stdout(o) + &stderr(o);
    assert_eq!(o.status.code(), Some(1), "{said}");
    assert!(said.contains(text), "expected `{text}` in: {said}");
}

/// The main job's table: every pair verified.
fn assert_every_pair_verified(dir: &std::path::Path) {
    let table: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("selection.json")).unwrap()).unwrap();
    for cut in table["cuts"].as_array().unwrap() {
        assert_eq!(
            cut["verification"]["status"], "passed",
            "{}: {}",
            cut["id"], cut["verification"]
        );
    }
}

/// paddle2onnx's `x: [-1, 3, ?, ?]` with a height and width that differ: sizes given for them
/// are taken (no "two sizes for `?`"), the main job verifies every pair, and a split without
/// sizes declares the strided convs' outputs as expressions of the `?` dims (each a size of its
/// own), never the 1 they collapse to at small sizes.
#[test]
fn paddle_question_marks_are_sizes_of_their_own() {
    let model = "fixtures/paddle_style_dims.onnx";
    let report = annotate_json(model, &["--input-shape", "x=1x3x48x192"], &[]);
    let relu2 = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "relu2")
        .unwrap_or_else(|| panic!("no relu2 in {report}"));
    assert_eq!(
        relu2["outputs"][0]["shape"],
        serde_json::json!([1, 16, 12, 48]),
        "{relu2}"
    );

    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    plan_verified(
        model,
        &dist,
        &[
            "--input-shape",
            "x=1x3x48x192",
            "--buckets",
            "0.1,1,10,100,1000",
        ],
    );

    // Each stride-2 conv's output as tract derives it from the input's `?` dims, each a size of
    // its own: an expression, never the 1 the convs give at 1x1.
    for (at, height, width) in [
        ("relu1_out", "(x_dim2+1)/2", "(x_dim3+1)/2"),
        ("relu2_out", "(x_dim2+3)/4", "(x_dim3+3)/4"),
    ] {
        let halves = dir.path().join(at);
        let o = nsplit(&[
            "split",
            model,
            "--at",
            at,
            "--out",
            halves.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{at}: {}", stderr(&o));
        assert!(stdout(&o).contains("verified in"), "{at}: {}", stdout(&o));
        let want = vec![
            "x_dim0".to_string(),
            (if at == "relu1_out" { "8" } else { "16" }).to_string(),
            height.to_string(),
            width.to_string(),
        ];
        let head = load(&halves.join("head.onnx"));
        let tail = load(&halves.join("tail.onnx"));
        assert_eq!(declared(find(&head.graph.output, at)), want, "{at} head");
        assert_eq!(declared(find(&tail.graph.input, at)), want, "{at} tail");
        // The tail runs at a size no probe used, in onnxruntime.
        let o = nsplit(&[
            "split",
            model,
            "--at",
            at,
            "--out",
            halves.to_str().unwrap(),
            "--input-shape",
            "x=2x3x96x40",
        ]);
        assert!(o.status.success(), "{at} at 96x40: {}", stderr(&o));
        assert!(stdout(&o).contains("x=2x3x96x40"), "{}", stdout(&o));
    }
}

/// An STFT written as a Conv (window 64, hop 16) over symbolic `samples`: its frame count is
/// `(samples - 64) / 16 + 1`, which no size under 64 shows. Split after it without sizes, the
/// boundary's frames are declared as tract's symbolic analysis derives them (never 0, never a
/// probe's value), and the split is checked at generated sizes the original runs at (the picked
/// 1 sample does not run).
#[test]
fn stft_frames_are_declared_symbolic() {
    let model = "fixtures/stft_frontend.onnx";
    let dir = tempfile::tempdir().unwrap();
    let halves = dir.path().join("halves");
    let o = split_ok(model, "spectrum", halves.to_str().unwrap(), &[]);
    let text = stdout(&o);
    assert!(
        text.contains("spectrum  float  batch_sizex16x(-3+(samples)/16)  ? bytes"),
        "{text}"
    );
    assert!(
        text.contains("verified in") && text.contains("audio=1x64"),
        "{text}"
    );
    let tail = load(&halves.join("tail.onnx"));
    assert_eq!(
        declared(find(&tail.graph.input, "spectrum")),
        ["batch_size", "16", "-3+(samples)/16"]
    );

    let dist = dir.path().join("dist");
    plan_verified(
        model,
        &dist,
        &[
            "--input-shape",
            "audio=1x16000",
            "--buckets",
            "0.1,1,10,100,1000",
        ],
    );
}

/// Two inputs whose dims the model names alike (`L`), given sizes that differ: the sizes win,
/// with one warning, and each dim is a size of its own. `Concat` of them is `a + b` long.
#[test]
fn sizes_given_overrule_a_shared_dim_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared_name.onnx");
    let input = |name: &str| {
        value_info(
            name,
            &TensorInfo {
                dtype: Some(DType::FLOAT),
                dims: Some(vec![Dim::Symbol("N".into()), Dim::Symbol("L".into())]),
            },
        )
    };
    let mut graph = onnx_protobuf::GraphProto {
        name: "shared_name".into(),
        node: vec![
            node(
                "concat",
                "Concat",
                &["a", "b"],
                &["ab"],
                vec![nsplit::proto::attr_int("axis", 1)],
            ),
            node("relu", "Relu", &["ab"], &["y"], vec![]),
        ],
        input: vec![input("a"), input("b")],
        ..Default::default()
    };
    graph.output.push(value_info(
        "y",
        &TensorInfo {
            dtype: Some(DType::FLOAT),
            dims: Some(vec![Dim::Symbol("N".into()), Dim::Unknown]),
        },
    ));
    let m = model(graph, 8, &[("", 17)]);
    std::fs::write(&path, m.write_to_bytes().unwrap()).unwrap();
    let path = path.to_str().unwrap();

    let o = nsplit(&[
        "annotate",
        path,
        "--format",
        "json",
        "--input-shape",
        "a=2x5",
        "--input-shape",
        "b=2x7",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{}", stderr(&o));
    assert!(
        warnings[0].contains("`L`") && warnings[0].contains("5 and 7"),
        "{}",
        warnings[0]
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let relu = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "relu")
        .unwrap();
    assert_eq!(
        relu["outputs"][0]["shape"],
        serde_json::json!([2, 12]),
        "{relu}"
    );

    // Split without sizes, the halves name `ab`'s length apart from `L`; checked at sizes that
    // keep `L` one size (nothing gives two).
    let halves = dir.path().join("halves");
    split_ok(path, "ab", halves.to_str().unwrap(), &[]);
    let tail = load(&halves.join("tail.onnx"));
    assert_eq!(declared(find(&tail.graph.input, "ab")), ["N", "2*L"]);
}

/// A declaration only tract's analysis contradicts (its ConstantOfShape is double where ONNX
/// says float, and the model declares float): the model is not refused; a warning names the
/// tensor and the node, and the halves declare what the model does. A declaration the ONNX rules
/// prove wrong (`y` = Relu of a `1 x 4`, declared `1 x 5`) is refused, as onnx's checker refuses
/// it, and so are element types the model itself states that break an op's constraints.
#[test]
fn declarations_overrule_tract_not_the_specification() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zeros.onnx");
    let graph = onnx_protobuf::GraphProto {
        name: "zeros".into(),
        node: vec![
            node("zeros", "ConstantOfShape", &["shape"], &["z"], vec![]),
            node("relu", "Relu", &["z"], &["y"], vec![]),
        ],
        input: vec![value_info(
            "shape",
            &TensorInfo {
                dtype: Some(DType(7)),
                dims: Some(vec![Dim::Known(2)]),
            },
        )],
        value_info: vec![value_info(
            "z",
            &TensorInfo {
                dtype: Some(DType::FLOAT),
                dims: Some(vec![Dim::Unknown, Dim::Unknown]),
            },
        )],
        output: vec![value_info(
            "y",
            &TensorInfo {
                dtype: Some(DType::FLOAT),
                dims: Some(vec![Dim::Unknown, Dim::Unknown]),
            },
        )],
        ..Default::default()
    };
    std::fs::write(
        &path,
        model(graph, 8, &[("", 17)]).write_to_bytes().unwrap(),
    )
    .unwrap();
    let halves = dir.path().join("halves");
    let o = nsplit(&[
        "split",
        path.to_str().unwrap(),
        "--at",
        "z",
        "--out",
        halves.to_str().unwrap(),
        "--input-value",
        "shape=3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("verified in"), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning:")
            && err.contains("`z` (node `zeros`, ConstantOfShape) is declared float")
            && err.contains("tract"),
        "{err}"
    );
    let tail = load(&halves.join("tail.onnx"));
    let z = find(&tail.graph.input, "z");
    assert_eq!(
        nsplit::shapes::info_from_type(&z.type_).dtype,
        Some(DType::FLOAT)
    );

    let o = nsplit(&["annotate", "fixtures/bad/declaration_contradicts.onnx"]);
    assert_fails_with(
        &o,
        "`y` is declared float 1x5, but the graph computes float 1x4",
    );
    let o = nsplit(&["annotate", "fixtures/bad/type_mismatch.onnx"]);
    assert_fails_with(&o, "type constraints");
}

/// A half that declares a dim the runtime does not compute is caught by `verify`, naming the
/// tensor and the point (a runtime checks the dims of a model's inputs, not of its outputs).
#[test]
fn verify_catches_a_declared_dim_the_half_does_not_compute() {
    let dir = tempfile::tempdir().unwrap();
    let halves = dir.path().join("halves");
    split_ok(
        "fixtures/symbolic_batch.onnx",
        "relu_out",
        halves.to_str().unwrap(),
        &[],
    );
    let head_path = halves.join("head.onnx");
    let mut head = load(&head_path);
    let out = head
        .graph
        .as_mut()
        .unwrap()
        .output
        .iter_mut()
        .find(|v| v.name == "relu_out")
        .unwrap();
    *out = value_info(
        "relu_out",
        &TensorInfo {
            dtype: Some(DType::FLOAT),
            dims: Some(vec![
                Dim::Symbol("N".into()),
                Dim::Known(8),
                Dim::Known(16),
                Dim::Known(32),
            ]),
        },
    );
    std::fs::write(&head_path, head.write_to_bytes().unwrap()).unwrap();
    let o = nsplit(&[
        "verify",
        "fixtures/symbolic_batch.onnx",
        head_path.to_str().unwrap(),
        halves.join("tail.onnx").to_str().unwrap(),
    ]);
    assert_fails_with(
        &o,
        "head.onnx declares `relu_out` Nx8x16x32, but it computes 1x8x32x32",
    );
}

/// A decoder step as torch.onnx's dynamo exporter writes it: `past: [batch, past, 8]`, the new
/// token `x: [batch, 1, 8]`, and `attention_mask: [batch, past + 1]`. The dim expression is read:
/// every point the halves are checked at keeps the mask one longer than the cache, a size given
/// that contradicts it is an error naming it, and a split declares `past + 1` where it holds.
#[test]
fn dim_expressions_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decoder_step.onnx");
    let sym = |s: &str| Dim::Symbol(s.into());
    let vi = |name: &str, dtype: DType, dims: Vec<Dim>| {
        value_info(
            name,
            &TensorInfo {
                dtype: Some(dtype),
                dims: Some(dims),
            },
        )
    };
    let attr = nsplit::proto::attr_int;
    let graph = onnx_protobuf::GraphProto {
        name: "decoder_step".into(),
        node: vec![
            node(
                "concat",
                "Concat",
                &["past", "x"],
                &["present"],
                vec![attr("axis", 1)],
            ),
            node(
                "unsqueeze",
                "Unsqueeze",
                &["attention_mask", "axes"],
                &["mask3"],
                vec![],
            ),
            node("cast", "Cast", &["mask3"], &["maskf"], vec![attr("to", 1)]),
            node("mul", "Mul", &["present", "maskf"], &["y"], vec![]),
        ],
        initializer: vec![nsplit::proto::tensor_i64("axes", &[1], &[2])],
        input: vec![
            vi(
                "x",
                DType::FLOAT,
                vec![sym("batch"), Dim::Known(1), Dim::Known(8)],
            ),
            vi(
                "past",
                DType::FLOAT,
                vec![sym("batch"), sym("past"), Dim::Known(8)],
            ),
            vi(
                "attention_mask",
                DType(7),
                vec![sym("batch"), sym("past + 1")],
            ),
        ],
        output: vec![vi(
            "y",
            DType::FLOAT,
            vec![sym("batch"), sym("past + 1"), Dim::Known(8)],
        )],
        ..Default::default()
    };
    std::fs::write(
        &path,
        model(graph, 8, &[("", 17)]).write_to_bytes().unwrap(),
    )
    .unwrap();
    let path = path.to_str().unwrap();

    let halves = dir.path().join("halves");
    let o = split_ok(path, "present", halves.to_str().unwrap(), &[]);
    let text = stdout(&o);
    // batch 1, past 1 (mask 2); then batch 3, past 33 (mask 34): both points compared.
    assert!(
        text.contains("attention_mask=1x2; ") && text.contains("attention_mask=3x34"),
        "{text}"
    );
    let tail = load(&halves.join("tail.onnx"));
    assert_eq!(
        declared(find(&tail.graph.input, "present")),
        ["batch", "past + 1", "8"]
    );

    let shapes = ["--input-shape", "x=2x1x8", "--input-shape", "past=2x11x8"];
    let dist = dir.path().join("dist");
    plan_verified(
        path,
        &dist,
        &[&shapes[..], &["--buckets", "1,100"]].concat(),
    );

    let o = nsplit(&[
        "annotate",
        path,
        "--input-shape",
        "past=2x11x8",
        "--input-shape",
        "attention_mask=2x13",
        "--input-shape",
        "x=2x1x8",
    ]);
    assert_fails_with(&o, "`past + 1`, which is 12 where past = 11, not 13");
}

/// A model steered by an input's value (an int64 sample rate: 16000 runs, any other rate fails
/// in every runtime). On random inputs its halves are unverified, and the reason names the
/// flags; `--input-value sr=16000` or a sample `.npz` (a folder of them too) verify them, in
/// `split`, `verify` and the main job.
#[test]
fn real_inputs_reach_a_branch_random_ones_cannot() {
    let model = "fixtures/sample_rate_branch.onnx";
    let dir = tempfile::tempdir().unwrap();
    let halves = dir.path().join("halves");
    let h = halves.to_str().unwrap();
    let o = nsplit(&["split", model, "--at", "framed", "--out", h]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("unverified:")
            && text.contains("on random inputs")
            && text.contains("--sample-inputs")
            && text.contains("--input-value"),
        "{text}"
    );

    let o = split_ok(model, "framed", h, &["--input-value", "sr=16000"]);
    assert!(
        stdout(&o).contains("verified in onnxruntime"),
        "{}",
        stdout(&o)
    );

    let samples = dir.path().join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    for (k, n) in [(0, 320usize), (1, 480)] {
        let audio: Vec<f32> = (0..2 * n)
            .map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0)
            .collect();
        nsplit::runtime::npy::write_npz(
            &samples.join(format!("speech{k}.npz")),
            &[
                (
                    "audio".into(),
                    tract_onnx::prelude::Tensor::from_shape(&[2, n], &audio).unwrap(),
                ),
                ("sr".into(), tract_onnx::prelude::tensor0(16000i64)),
            ],
        )
        .unwrap();
    }
    let o = nsplit(&[
        "verify",
        model,
        &format!("{h}/head.onnx"),
        &format!("{h}/tail.onnx"),
        "--sample-inputs",
        samples.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("speech0.npz (audio=2x320, sr=scalar)")
            && out.contains("speech1.npz (audio=2x480, sr=scalar)"),
        "{out}"
    );

    let dist = dir.path().join("dist");
    plan_verified(
        model,
        &dist,
        &[
            "--input-shape",
            "audio=1x1600",
            "--input-value",
            "sr=16000",
            "--buckets",
            "0.1,1000",
        ],
    );

    // A sample that lacks an input, or names one the model does not have, is an error.
    nsplit::runtime::npy::write_npz(
        &dir.path().join("partial.npz"),
        &[(
            "audio".into(),
            tract_onnx::prelude::Tensor::from_shape(&[1, 4], &[0f32; 4]).unwrap(),
        )],
    )
    .unwrap();
    let o = nsplit(&[
        "split",
        model,
        "--at",
        "framed",
        "--out",
        dir.path().join("never").to_str().unwrap(),
        "--sample-inputs",
        dir.path().join("partial.npz").to_str().unwrap(),
    ]);
    assert_fails_with(&o, "has no array `sr`");
    assert!(!dir.path().join("never").exists());
}

/// A dim declared as an expression that divides (`floor(s0/2)`, as a strided layer's output
/// size is written) takes a given size: its symbol is solved from it (s0 = 16 for 8).
#[test]
fn a_dividing_dim_expression_is_solved_from_a_given_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floor.onnx");
    let half = |name: &str| {
        value_info(
            name,
            &TensorInfo {
                dtype: Some(DType::FLOAT),
                dims: Some(vec![Dim::Known(1), Dim::Symbol("floor(s0/2)".into())]),
            },
        )
    };
    let graph = onnx_protobuf::GraphProto {
        name: "floor".into(),
        node: vec![node("relu", "Relu", &["x"], &["y"], vec![])],
        input: vec![half("x")],
        output: vec![half("y")],
        ..Default::default()
    };
    std::fs::write(
        &path,
        model(graph, 8, &[("", 17)]).write_to_bytes().unwrap(),
    )
    .unwrap();
    let report = annotate_json(path.to_str().unwrap(), &["--input-shape", "x=1x8"], &[]);
    assert_eq!(
        report["nodes"][0]["outputs"][0]["shape"],
        serde_json::json!([1, 8]),
        "{report}"
    );
}

/// An `If` steered by a dim that is fixed for every size (`x`'s width, declared 4), as silero's
/// decoder tests its state's: the branch that runs (a Relu) keeps `x`'s shape, the other (a
/// Squeeze of the batch) is invalid wherever the batch is not 1, and tract, which analyses both,
/// fails there. The condition is settled, the `If` typed after its running branch, so a cut
/// after it is declared `N x 4` (before, its rank was unknown and the cut refused) and composes.
#[test]
fn an_if_settled_by_a_fixed_dim_is_typed_after_its_branch() {
    use nsplit::proto::{attr_graph, attr_int, attr_tensor, tensor_i64};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settled_if.onnx");
    let x = || {
        value_info(
            "x",
            &TensorInfo {
                dtype: Some(DType::FLOAT),
                dims: Some(vec![Dim::Symbol("N".into()), Dim::Known(4)]),
            },
        )
    };
    let branch = |name: &str, nodes: Vec<onnx_protobuf::NodeProto>, out: &str| {
        let mut g = onnx_protobuf::GraphProto {
            name: name.into(),
            node: nodes,
            ..Default::default()
        };
        g.output.push(value_info(
            out,
            &TensorInfo {
                dtype: Some(DType::FLOAT),
                dims: None,
            },
        ));
        g
    };
    let constant = |out: &str, dims: &[i64], v: &[i64]| {
        node(
            out,
            "Constant",
            &[],
            &[out],
            vec![attr_tensor("value", tensor_i64(out, dims, v))],
        )
    };
    let then = branch(
        "then",
        vec![node("relu_then", "Relu", &["x"], &["then_out"], vec![])],
        "then_out",
    );
    let els = branch(
        "else",
        vec![
            constant("zero", &[1], &[0]),
            node("squeeze", "Squeeze", &["x", "zero"], &["else_out"], vec![]),
        ],
        "else_out",
    );
    let mut graph = onnx_protobuf::GraphProto {
        name: "settled_if".into(),
        node: vec![
            node("shape", "Shape", &["x"], &["shape"], vec![]),
            constant("axis1", &[], &[1]),
            node(
                "width",
                "Gather",
                &["shape", "axis1"],
                &["width"],
                vec![attr_int("axis", 0)],
            ),
            constant("four", &[], &[4]),
            node("is4", "Equal", &["width", "four"], &["is4"], vec![]),
            node(
                "branch",
                "If",
                &["is4"],
                &["picked"],
                vec![
                    attr_graph("then_branch", then),
                    attr_graph("else_branch", els),
                ],
            ),
            node("sig", "Sigmoid", &["picked"], &["y"], vec![]),
        ],
        input: vec![x()],
        ..Default::default()
    };
    graph.output.push(value_info(
        "y",
        &TensorInfo {
            dtype: Some(DType::FLOAT),
            dims: Some(vec![Dim::Unknown, Dim::Unknown]),
        },
    ));
    let m = model(graph, 8, &[("", 17)]);
    std::fs::write(&path, m.write_to_bytes().unwrap()).unwrap();
    let path = path.to_str().unwrap();

    let halves = dir.path().join("halves");
    let o = split_ok(path, "picked", halves.to_str().unwrap(), &[]);
    assert!(stdout(&o).contains("verified in"), "{}", stdout(&o));
    let tail = load(&halves.join("tail.onnx"));
    assert_eq!(declared(find(&tail.graph.input, "picked")), ["N", "4"]);
    plan_verified(
        path,
        &dir.path().join("dist"),
        &["--input-shape", "x=2x4", "--buckets", "0.1,1,10,100,1000"],
    );
}
