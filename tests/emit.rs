//! Emission: head then tail equals the original, for every cut of every fixture; boundaries
//! include every crossing tensor; empty sides are not written; bad requests fail cleanly.

mod common;
use common::*;
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

fn load(path: &std::path::Path) -> ModelProto {
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

#[test]
fn bad_split_requests_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("out");
    let ds = d.to_str().unwrap();
    let out = nsplit(&["split", "fixtures/lenet.onnx", "--at", "nope", "--out", ds]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`nope` is not a tensor"));
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
/// (chattr +i) is used too. The test fails if it cannot make such a folder, rather than pass
/// without testing anything.
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
    let writable = std::fs::write(ro.join("probe"), b"x").is_ok();
    assert!(
        !writable,
        "could not make a read-only folder (chattr +i worked: {immutable}); this test needs one"
    );
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
