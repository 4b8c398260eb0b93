//! Emission: head then tail equals the original, for every cut of every fixture; boundaries
//! include every crossing tensor; empty sides are not written; bad requests fail cleanly.

use crate::common::*;
use nsplit::cut::Cut;
use onnx_protobuf::{Message, ModelProto};

#[test]
fn every_prefix_of_every_fixture_composes() {
    for (name, shapes) in FIXTURES {
        let n = analyse(&fixture(name), shapes).graph.order.len();
        let worst = compose_prefixes(&fixture(name), shapes, &prefixes(n))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!(
            "{name}: {} cuts, max abs difference {worst:e}",
            prefixes(n).len()
        );
    }
}

pub(crate) fn load(path: &std::path::Path) -> ModelProto {
    ModelProto::parse_from_bytes(&std::fs::read(path).unwrap()).unwrap()
}

fn names(vis: &[onnx_protobuf::ValueInfoProto]) -> Vec<String> {
    vis.iter().map(|v| v.name.clone()).collect()
}

#[test]
fn skip_connection_crosses_with_the_block() {
    let mut a = analyse(&fixture("resnet_block.onnx"), &[]);
    // Cut inside the block, after its first BatchNormalization: both the block's running tensor
    // and the stem output (read again by the Add) must cross.
    let k = a
        .graph
        .ops()
        .position(|(_, op)| op.op_type == "BatchNormalization")
        .unwrap()
        + 1;
    let cut = Cut::prefix(&a.graph, k);
    let dir = tempfile::tempdir().unwrap();
    let pair = write_cut(&mut a, &cut, dir.path());
    let boundary: Vec<String> = pair
        .boundary
        .iter()
        .map(|&t| a.graph.tensor(t).name.clone())
        .collect();
    assert_eq!(boundary.len(), 2, "{boundary:?}");
    let add = a.graph.ops().find(|(_, op)| op.op_type == "Add").unwrap().1;
    let skip = a.graph.tensor(add.inputs[1].unwrap()).name.clone();
    assert!(
        boundary.contains(&skip),
        "skip tensor {skip} missing from {boundary:?}"
    );
    let head = load(&pair.head.unwrap().path);
    let tail = load(&pair.tail.unwrap().path);
    assert_eq!(
        names(&head.graph.output),
        boundary,
        "head outputs = boundary, in order"
    );
    assert_eq!(
        names(&tail.graph.input),
        boundary,
        "tail inputs = boundary, in order"
    );
    for (h, t) in head.graph.output.iter().zip(&tail.graph.input) {
        assert_eq!(h.type_, t.type_, "{} typed alike on both sides", h.name);
    }
}

#[test]
fn inception_branches_all_cross() {
    let mut a = analyse(&fixture("inception_block.onnx"), &[]);
    // Head = the four branches' first layers: each branch output read by the tail crosses once.
    let firsts = ["b1_relu_out", "b2_relu1_out", "b3_relu1_out", "b4_pool_out"];
    let ids: Vec<_> = firsts
        .iter()
        .map(|n| a.graph.tensor_id(n).unwrap())
        .collect();
    let cut = Cut::upstream_of(&a.graph, &ids);
    let boundary: Vec<String> = cut
        .boundary(&a.graph)
        .iter()
        .map(|&t| a.graph.tensor(t).name.clone())
        .collect();
    assert_eq!(
        boundary, firsts,
        "each branch's tensor crosses once, in topological order"
    );
    let dir = tempfile::tempdir().unwrap();
    write_cut(&mut a, &cut, dir.path());
}

#[test]
fn halves_carry_only_their_weights_and_the_stamps() {
    let mut a = analyse(&fixture("lenet.onnx"), &[]);
    let sha = nsplit::emit::sha256_file(&fixture("lenet.onnx")).unwrap();
    let cut = Cut::upstream_of(&a.graph, &[a.graph.tensor_id("pool2_out").unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let pair = write_cut(&mut a, &cut, dir.path());
    let head = load(&pair.head.unwrap().path);
    let tail = load(&pair.tail.unwrap().path);
    let inits = |m: &ModelProto| {
        m.graph
            .initializer
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        inits(&head).iter().all(|n| n.starts_with("conv")),
        "{:?}",
        inits(&head)
    );
    assert!(
        inits(&tail).iter().all(|n| n.starts_with("fc")),
        "{:?}",
        inits(&tail)
    );
    for (m, role) in [(&head, "head"), (&tail, "tail")] {
        let meta = |k: &str| {
            m.metadata_props
                .iter()
                .find(|e| e.key == k)
                .map(|e| e.value.clone())
        };
        assert_eq!(meta("nsplit.source_sha256"), Some(sha.clone()));
        assert_eq!(meta("nsplit.role").as_deref(), Some(role));
        assert_eq!(meta("nsplit.boundary").as_deref(), Some("pool2_out"));
        assert_eq!(meta("nsplit.cut_id"), Some(pair.cut_id.clone()));
        assert_eq!(m.ir_version, 8);
        assert_eq!(m.opset_import.len(), 1);
    }
}

#[test]
fn external_data_stays_external_per_half() {
    let mut a = analyse(&fixture("external_data.onnx"), &[]);
    let cut = Cut::upstream_of(&a.graph, &[a.graph.tensor_id("relu_out").unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let pair = write_cut(&mut a, &cut, dir.path());
    for w in [pair.head.unwrap(), pair.tail.unwrap()] {
        let data = w.data_file.clone().expect("external data file");
        let m = load(&w.path);
        let total: u64 = m
            .graph
            .initializer
            .iter()
            .map(|t| {
                let len = t
                    .external_data
                    .iter()
                    .find(|e| e.key == "length")
                    .map(|e| e.value.parse::<u64>().unwrap());
                assert_eq!(
                    t.external_data
                        .iter()
                        .find(|e| e.key == "location")
                        .unwrap()
                        .value,
                    data.file_name().unwrap().to_str().unwrap()
                );
                len.unwrap()
            })
            .sum();
        assert_eq!(
            total,
            std::fs::metadata(&data).unwrap().len(),
            "{} holds exactly its tensors",
            data.display()
        );
    }
}

#[test]
fn all_cloud_and_all_mobile_write_one_real_model() {
    let mut a = analyse(&fixture("lenet.onnx"), &[]);
    let dir = tempfile::tempdir().unwrap();
    let cut = Cut::all_cloud(&a.graph);
    let pair = write_cut(&mut a, &cut, dir.path());
    assert!(pair.head.is_none());
    assert_eq!(load(&pair.tail.unwrap().path).graph.node.len(), 13);
    let dir = tempfile::tempdir().unwrap();
    let cut = Cut::all_mobile(&a.graph);
    let pair = write_cut(&mut a, &cut, dir.path());
    assert!(pair.tail.is_none());
    assert_eq!(load(&pair.head.unwrap().path).graph.node.len(), 13);
    assert!(!dir.path().join("tail.onnx").exists());

    let dir = tempfile::tempdir().unwrap();
    let out = nsplit(&[
        "split",
        "fixtures/lenet.onnx",
        "--at",
        "output",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("tail: none (everything runs on the phone)")
    );
}

#[test]
fn split_command_writes_and_verify_command_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = nsplit(&[
        "split",
        "fixtures/inception_block.onnx",
        "--at",
        "b1_relu_out,b4_pool_out",
        "--out",
        d,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("b1_relu_out  float  1x16x28x28  50176 bytes"),
        "{text}"
    );
    let head = format!("{d}/head.onnx");
    let tail = format!("{d}/tail.onnx");
    let out = nsplit(&["verify", "fixtures/inception_block.onnx", &head, &tail]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Swapping the halves' roles cannot compose: verify must not pass.
    let out = nsplit(&["verify", "fixtures/lenet.onnx", &head, &tail]);
    assert_ne!(out.status.code(), Some(0));
}

/// `--at NODE` cuts after the node: the head computes its outputs, the same cut as `--at` its
/// output tensor.
#[test]
fn split_at_a_node_name_cuts_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = vec![];
    for at in ["pool2", "pool2_out"] {
        let d = dir.path().join(at);
        let out = nsplit(&[
            "split",
            "fixtures/lenet.onnx",
            "--at",
            at,
            "--out",
            d.to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("pool2_out  float  1x16x5x5"), "{text}");
        ids.push(text.lines().next().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1]);
}

/// Files nsplit writes keep the user's umask: a figure and an .npz are as readable as the
/// halves, not 0600 as a temporary file is created.
#[test]
fn written_files_follow_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let umask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Umask:"))?.to_string();
            u32::from_str_radix(line.split_whitespace().nth(1)?, 8).ok()
        });
    let Some(umask) = umask else {
        eprintln!(
            "\n*** SKIPPED: no /proc/self/status Umask line; the umask check did not run ***\n"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("plot.svg");
    let out = nsplit(&[
        "annotate",
        "fixtures/lenet.onnx",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&plot).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode,
        0o666 & !umask,
        "plot.svg is {mode:o} under umask {umask:o}"
    );
}

#[test]
fn bad_split_requests_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("out");
    let ds = d.to_str().unwrap();
    let out = nsplit(&["split", "fixtures/lenet.onnx", "--at", "nope", "--out", ds]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`nope` is neither a tensor nor a node"));
    assert!(!d.exists(), "no output folder left behind");

    let out = nsplit(&[
        "split",
        "fixtures/if_outer_scope.onnx",
        "--at",
        "y_then",
        "--out",
        ds,
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("inside a subgraph"), "{err}");

    let file = dir.path().join("a_file");
    std::fs::write(&file, b"x").unwrap();
    let out = nsplit(&[
        "split",
        "fixtures/lenet.onnx",
        "--at",
        "pool1_out",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a folder"));
}

/// A folder that cannot be written: chmod is not enough for root, so the immutable attribute
/// (chattr +i) is used too. Where neither makes the folder read-only (root on a file system
/// without chattr), the test says so loudly and skips.
#[test]
fn unwritable_output_folder_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mut perms = std::fs::metadata(&ro).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    std::fs::set_permissions(&ro, perms).unwrap();
    let immutable = std::process::Command::new("chattr")
        .arg("+i")
        .arg(&ro)
        .status()
        .is_ok_and(|s| s.success());
    if std::fs::write(ro.join("probe"), b"x").is_ok() {
        eprintln!(
            "\n*** SKIPPED: could not make a read-only folder here (chmod 555 does not bind root, \
             chattr +i worked: {immutable}); the unwritable --out case was not tested ***\n"
        );
        return;
    }
    let out = nsplit(&[
        "split",
        "fixtures/lenet.onnx",
        "--at",
        "pool1_out",
        "--out",
        ro.to_str().unwrap(),
    ]);
    if immutable {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&ro)
            .status();
    }
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not writable") && err.contains("ro"), "{err}");
    assert_eq!(
        std::fs::read_dir(&ro).unwrap().count(),
        0,
        "nothing left behind"
    );
}

/// Declared dims of a value_info as text: `N`, `8`, `?`.
pub(crate) fn declared(vi: &onnx_protobuf::ValueInfoProto) -> Vec<String> {
    nsplit::shapes::info_from_type(&vi.type_)
        .dims
        .unwrap_or_default()
        .iter()
        .map(|d| d.to_string())
        .collect()
}

pub(crate) fn find<'a>(
    vis: &'a [onnx_protobuf::ValueInfoProto],
    name: &str,
) -> &'a onnx_protobuf::ValueInfoProto {
    vis.iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no `{name}` among {:?}", names(vis)))
}

/// `nsplit split` needs no sizes, and the halves declare the original's symbols: the boundary
/// of a CNN over `N`, the attention scores of a transformer over `batch` and `seq`, and an output
/// the original declares only by element type.
#[test]
fn split_without_sizes_keeps_symbolic_dims() {
    for (model, at, crossing, want, output, want_out) in [
        (
            "fixtures/symbolic_batch.onnx",
            "relu_out",
            "relu_out",
            vec!["N", "8", "32", "32"],
            "output",
            vec!["N", "4"],
        ),
        (
            "fixtures/transformer_block.onnx",
            "attn_out",
            "attn_out",
            vec!["batch", "2", "seq", "seq"],
            "y",
            vec!["batch", "seq", "16"],
        ),
        (
            "fixtures/symbolic_classifier.onnx",
            "flatten_out",
            "flatten_out",
            vec!["batch", "1024"],
            "probs",
            vec!["batch", "10"],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let out = nsplit(&["split", model, "--at", at, "--out", d]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // No size was given, so the report gives the shape symbolically and no byte count.
        assert!(
            text.contains(&format!("{crossing}  float  {}  ? bytes", want.join("x"))),
            "{model}: {text}"
        );
        let head = load(&dir.path().join("head.onnx"));
        let tail = load(&dir.path().join("tail.onnx"));
        assert_eq!(
            declared(find(&head.graph.output, crossing)),
            want,
            "{model} head"
        );
        assert_eq!(
            declared(find(&tail.graph.input, crossing)),
            want,
            "{model} tail"
        );
        assert_eq!(
            declared(find(&tail.graph.output, output)),
            want_out,
            "{model} output"
        );
        // With a size, the same split reports bytes but still declares the symbols.
        let out = nsplit(&[
            "split",
            model,
            "--at",
            at,
            "--out",
            d,
            "--input-shape",
            &format!(
                "{}={}",
                head.graph.input[0].name,
                match model {
                    "fixtures/symbolic_batch.onnx" => "2x3x32x32",
                    "fixtures/transformer_block.onnx" => "2x4x16",
                    _ => "2x3x16x16",
                }
            ),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!text.contains("? bytes"), "{model}: {text}");
        let tail = load(&dir.path().join("tail.onnx"));
        assert_eq!(
            declared(find(&tail.graph.input, crossing)),
            want,
            "{model} sized tail"
        );
    }
}

/// The main job costs a symbolic model at the given size but writes halves that declare the
/// symbol, and checks each pair at that size and at batch + 2.
#[test]
fn main_job_halves_keep_the_batch_symbol_and_are_checked_at_two_batches() {
    let dir = tempfile::tempdir().unwrap();
    let buckets = round_trip_free_buckets(dir.path(), &[1.0, 1000.0]);
    let out = dir.path().join("dist");
    let run = nsplit(&[
        "fixtures/symbolic_batch.onnx",
        "--out",
        out.to_str().unwrap(),
        "--input-shape",
        "images=2x3x32x32",
        "--buckets",
        buckets.to_str().unwrap(),
        "--verifier",
        "tract",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("selection.json")).unwrap())
            .unwrap();
    let mut tails = 0;
    for c in table["cuts"].as_array().unwrap() {
        let v = &c["verification"];
        assert_eq!(v["status"], "passed", "{c}");
        assert_eq!(v["verifier"], "tract", "{c}");
        assert_eq!(
            v["sizes"],
            serde_json::json!(["images=2x3x32x32", "images=4x3x32x32"]),
            "{c}"
        );
        if let Some(t) = c["tail"].as_str() {
            let tail = load(&out.join(t));
            for vi in tail.graph.input.iter().chain(&tail.graph.output) {
                assert_eq!(declared(vi)[0], "N", "{t}: {}", vi.name);
            }
            tails += 1;
        }
    }
    assert!(tails > 0, "{table}");
}

/// A model saved by the current onnx release (IR 14; node and graph metadata_props; a model
/// `configuration` and node `device_configurations`, which our protobuf schema does not know)
/// loads, splits, keeps all of them byte for byte in the halves, and verifies.
#[test]
fn current_onnx_model_splits_and_keeps_unknown_fields() {
    let src = load(&fixture("onnx_current.onnx"));
    assert!(src.ir_version >= 14, "fixture is IR {}", src.ir_version);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = nsplit(&[
        "split",
        "fixtures/onnx_current.onnx",
        "--at",
        "relu_out",
        "--out",
        d,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).is_empty(),
        "IR 14 is known: no warning"
    );
    let head_bytes = std::fs::read(dir.path().join("head.onnx")).unwrap();
    let tail_bytes = std::fs::read(dir.path().join("tail.onnx")).unwrap();
    let has = |bytes: &[u8], s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
    for n in ["fc1_matmul", "fc1", "relu"] {
        assert!(
            has(&head_bytes, &format!("node-meta-{n}")),
            "head lost {n}'s metadata"
        );
    }
    assert!(
        has(&tail_bytes, "node-meta-fc2"),
        "tail lost fc2's metadata"
    );
    assert!(
        has(&head_bytes, "device-config-relu"),
        "head lost a node's unknown field"
    );
    assert!(
        has(&tail_bytes, "device-config-fc2"),
        "tail lost a node's unknown field"
    );
    assert!(
        !has(&tail_bytes, "device-config-relu"),
        "a node's field went to the wrong half"
    );
    for bytes in [&head_bytes, &tail_bytes] {
        assert!(
            has(bytes, "graph-meta-onnx-current"),
            "a half lost the graph's metadata"
        );
        assert!(
            has(bytes, "nsplit-test-config"),
            "a half lost the model's unknown field"
        );
        assert_eq!(
            ModelProto::parse_from_bytes(bytes).unwrap().ir_version,
            src.ir_version
        );
    }
    let out = nsplit(&[
        "verify",
        "fixtures/onnx_current.onnx",
        &format!("{d}/head.onnx"),
        &format!("{d}/tail.onnx"),
        "--verifier",
        "tract",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("x=1x8; x=3x8"), "{text}");
}

/// An IR newer than we know is read with a one-line warning, and fields we do not know (here on
/// the model and its graph) travel into the halves.
#[test]
fn newer_ir_is_read_with_a_warning_and_unknown_fields_are_kept() {
    let mut m = load(&fixture("lenet.onnx"));
    m.ir_version = 99;
    m.special_fields
        .mut_unknown_fields()
        .add_length_delimited(4242, b"model-field-from-the-future".to_vec());
    m.graph
        .mut_or_insert_default()
        .special_fields
        .mut_unknown_fields()
        .add_length_delimited(4243, b"graph-field-from-the-future".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("future.onnx");
    std::fs::write(&model, m.write_to_bytes().unwrap()).unwrap();
    let out_dir = dir.path().join("out");
    let out = nsplit(&[
        "split",
        model.to_str().unwrap(),
        "--at",
        "pool1_out",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("warning:") && err.contains("IR version 99"),
        "{err}"
    );
    for half in ["head.onnx", "tail.onnx"] {
        let h = load(&out_dir.join(half));
        assert_eq!(h.ir_version, 99);
        let model_field = h.special_fields.unknown_fields().get(4242);
        assert!(
            model_field.is_some(),
            "{half} lost the model's unknown field"
        );
        let graph_field = h.graph.special_fields.unknown_fields().get(4243);
        assert!(
            graph_field.is_some(),
            "{half} lost the graph's unknown field"
        );
    }
}
