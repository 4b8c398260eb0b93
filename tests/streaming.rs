//! Big models at the speed of the disk: weights move file to file and the output is what it was
//! when they went through memory; the whole model (all-mobile head, all-cloud tail) is one copy;
//! the user's files are never linked or changed.

use crate::common::{fixture, root};
use nsplit::load::Model;
use nsplit::output::ExternalData;
use nsplit::plan::network;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file of a folder by name, with its SHA-256.
fn hashes(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                sha256(&p),
            )
        })
        .collect()
}

/// Splits whose halves were hashed with nsplit 559d3f5, which held every weight in memory:
/// leaving the weights in the file must not change a byte, inline or external, in every
/// `--external-data` mode that converts between the two.
#[test]
fn split_halves_are_byte_identical_with_weights_left_on_disk() {
    let cases = [
        ("lenet_auto", "lenet.onnx", "pool2_out", ExternalData::Auto),
        (
            "lenet_always",
            "lenet.onnx",
            "pool2_out",
            ExternalData::Always,
        ),
        (
            "resnet_block_auto",
            "resnet_block.onnx",
            "block_relu1_out",
            ExternalData::Auto,
        ),
        (
            "external_data_auto",
            "external_data.onnx",
            "relu_out",
            ExternalData::Auto,
        ),
        (
            "external_data_never",
            "external_data.onnx",
            "relu_out",
            ExternalData::Never,
        ),
    ];
    let golden_path = root().join("golden/streaming/split-sha256.json");
    let mut got = BTreeMap::new();
    for (case, model, at, mode) in cases {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join(case);
        nsplit::split::split_at(
            &fixture(model),
            &[at.into()],
            &dir,
            &Default::default(),
            mode,
            None,
        )
        .unwrap();
        got.insert(case.to_string(), hashes(&dir));
    }
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let json = serde_json::to_string_pretty(&got).unwrap() + "\n";
        std::fs::write(&golden_path, json).unwrap();
        return;
    }
    let want: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_str(&std::fs::read_to_string(&golden_path).unwrap()).unwrap();
    assert_eq!(got, want, "halves differ from {}", golden_path.display());

    // The inline models above did keep weights on disk (else the test would prove nothing).
    for model in ["lenet.onnx", "resnet_block.onnx"] {
        let m = Model::load(&fixture(model)).unwrap();
        let on_disk = m
            .graph()
            .initializer
            .iter()
            .filter(|t| m.file_range(t).unwrap().is_some())
            .count();
        assert!(on_disk > 0, "{model}: no initializer left in the file");
    }
}

/// A weight read back from the file is the weight protobuf decodes.
#[test]
fn weights_left_in_the_file_read_back_as_decoded() {
    use onnx_protobuf::{Message, ModelProto};
    let path = fixture("lenet.onnx");
    let model = Model::load(&path).unwrap();
    let full = ModelProto::parse_from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    for (t, want) in model
        .graph()
        .initializer
        .iter()
        .zip(&full.graph.initializer)
    {
        let bytes = model.tensor_bytes(t).unwrap().unwrap();
        assert_eq!(&bytes[..], &want.raw_data[..], "{}", t.name);
        assert_eq!(model.materialized(t).unwrap(), *want, "{}", t.name);
    }
}

/// The main job where one network makes everything run on the phone and another everything on
/// the server: the all-mobile head and the all-cloud tail are one file where the model has no
/// data file; with one, each is a model and data file of its own, so the head an app bundles
/// reads no file named after the tail. The source's files keep one link each and their bytes.
#[test]
fn all_mobile_and_all_cloud_share_one_copy_and_the_source_is_untouched() {
    for model in ["lenet.onnx", "external_data.onnx"] {
        let tmp = tempfile::tempdir().unwrap();
        // The source copied aside, so that its link count is ours to check.
        let src_dir = tmp.path().join("src");
        std::fs::create_dir(&src_dir).unwrap();
        for f in std::fs::read_dir(root().join("fixtures")).unwrap() {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with(model) {
                std::fs::copy(&p, src_dir.join(&name)).unwrap();
            }
        }
        let source = hashes(&src_dir);
        let wifi = network::reference_network("wifi").unwrap();
        let file = network::BucketsFile::without_round_trip(&[0.001, 1e6], &wifi);
        let buckets = tmp.path().join("buckets.json");
        std::fs::write(&buckets, serde_json::to_string(&file).unwrap()).unwrap();
        let mut opts = nsplit::dev::job_options(buckets.to_str().unwrap(), false);
        opts.plan.cloud_load = 0.001;
        opts.triton = Some(Default::default());
        let out = tmp.path().join("out");
        nsplit::job::run(&src_dir.join(model), &out, &opts).unwrap();

        let meta = |name: &str| std::fs::metadata(out.join(name)).unwrap();
        let (head, tail) = (meta("all-mobile.head.onnx"), meta("all-cloud.tail.onnx"));
        let data: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".data"))
            .collect();
        if model == "external_data.onnx" {
            assert_ne!(
                head.ino(),
                tail.ino(),
                "{model}: the head reads the tail's data"
            );
            for half in ["all-mobile.head.onnx", "all-cloud.tail.onnx"] {
                let written = Model::load(&out.join(half)).unwrap();
                assert_eq!(written.data_files().unwrap(), vec![format!("{half}.data")]);
                // A data file with several links is refused by the onnx checker.
                assert_eq!(meta(&format!("{half}.data")).nlink(), 1);
            }
            assert_eq!(
                std::fs::read(out.join("all-mobile.head.onnx.data")).unwrap(),
                std::fs::read(out.join("all-cloud.tail.onnx.data")).unwrap()
            );
            // The served tail takes the data file it names along.
            let served = std::fs::read_dir(out.join("triton"))
                .unwrap()
                .map(|e| e.unwrap().path().join("1"))
                .find(|p| p.join("model.onnx").exists())
                .expect("a served tail");
            let tail_bytes = std::fs::read(out.join("all-cloud.tail.onnx")).unwrap();
            assert_eq!(
                std::fs::read(served.join("model.onnx")).unwrap(),
                tail_bytes
            );
            assert!(
                served.join("all-cloud.tail.onnx.data").exists(),
                "{}: {data:?}",
                served.display()
            );
        } else {
            assert_eq!(
                head.ino(),
                tail.ino(),
                "{model}: two copies of the whole model"
            );
            assert_eq!(head.nlink(), 2, "{model}");
            assert!(data.is_empty(), "{model}: {data:?}");
        }

        assert_eq!(hashes(&src_dir), source, "{model}: the source changed");
        let written: Vec<u64> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().ino())
            .collect();
        for f in std::fs::read_dir(&src_dir).unwrap() {
            let m = f.unwrap().metadata().unwrap();
            assert_eq!(m.nlink(), 1, "{model}: a source file was linked");
            assert!(
                !written.contains(&m.ino()),
                "{model}: output is a source file"
            );
        }
    }
}

/// A tensor whose data stays in the file keeps every other field of its own (doc string,
/// metadata) in the half, as protobuf wrote it.
#[test]
fn weights_left_in_the_file_keep_every_field_of_their_tensor() {
    use onnx_protobuf::{Message, ModelProto, StringStringEntryProto};
    let mut proto =
        ModelProto::parse_from_bytes(&std::fs::read(fixture("lenet.onnx")).unwrap()).unwrap();
    let big = proto
        .graph
        .mut_or_insert_default()
        .initializer
        .iter_mut()
        .find(|t| t.raw_data.len() >= nsplit::load::STREAM_MIN_BYTES as usize)
        .unwrap();
    big.doc_string = "kept".into();
    big.metadata_props.push(StringStringEntryProto {
        key: "origin".into(),
        value: "a test".into(),
        ..Default::default()
    });
    let want = big.clone();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.onnx");
    std::fs::write(&path, proto.write_to_bytes().unwrap()).unwrap();
    let out = tmp.path().join("out");
    let at = ["pool2_out".to_string()];
    nsplit::split::split_at(
        &path,
        &at,
        &out,
        &Default::default(),
        ExternalData::Auto,
        None,
    )
    .unwrap();
    let found: Vec<_> = ["head.onnx", "tail.onnx"]
        .iter()
        .map(|f| ModelProto::parse_from_bytes(&std::fs::read(out.join(f)).unwrap()).unwrap())
        .flat_map(|m| m.graph.initializer.clone())
        .filter(|t| t.name == want.name)
        .collect();
    assert_eq!(found, [want]);
}

/// A model saved over while nsplit runs is refused, not mixed with its new bytes.
#[test]
fn a_source_changed_after_loading_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.onnx");
    std::fs::copy(fixture("lenet.onnx"), &path).unwrap();
    let model = Model::load(&path).unwrap();
    model.check_unchanged().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let err = model.check_unchanged().unwrap_err().to_string();
    assert!(err.contains("changed while nsplit ran"), "{err}");
}
