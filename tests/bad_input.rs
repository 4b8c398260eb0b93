//! Bad input: one clear line on stderr naming the file, node or tensor, exit code 1, no panic.

use crate::common::*;

fn expect_error(args: &[&str], must_mention: &[&str]) {
    let out = nsplit(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: expected exit 1, stderr: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{args:?}: nothing on stdout on error"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: one line, got: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    for m in must_mention {
        assert!(
            stderr.contains(m),
            "{args:?}: error should mention `{m}`: {stderr}"
        );
    }
}

#[test]
fn unreadable_models() {
    expect_error(
        &["annotate", "fixtures/bad/empty.onnx"],
        &["empty.onnx", "empty"],
    );
    expect_error(
        &["annotate", "fixtures/bad/random.onnx"],
        &["random.onnx", "not a valid ONNX model"],
    );
    expect_error(
        &["annotate", "fixtures/bad/truncated.onnx"],
        &["truncated.onnx", "truncated"],
    );
    expect_error(
        &["annotate", "fixtures/no_such_model.onnx"],
        &["no_such_model.onnx"],
    );
    // A folder given as the model names the models it holds.
    expect_error(
        &["annotate", "fixtures/exports"],
        &[
            "fixtures/exports is a folder",
            "fixtures/exports/bert.dynamo.onnx",
        ],
    );
}

#[test]
fn external_data_problems() {
    expect_error(
        &["annotate", "fixtures/bad/missing_external.onnx"],
        &["missing_external.onnx", "does_not_exist.bin", "missing"],
    );
    expect_error(
        &["annotate", "fixtures/bad/escaping_external.onnx"],
        &["escaping_external.onnx", "../x.bin"],
    );
    expect_error(
        &["annotate", "fixtures/bad/absolute_external.onnx"],
        &["absolute_external.onnx", "/etc/passwd"],
    );
}

#[test]
fn broken_graphs() {
    expect_error(
        &["annotate", "fixtures/bad/cycle.onnx"],
        &["cycle.onnx", "cycle", "`A`", "`B`"],
    );
    expect_error(
        &["annotate", "fixtures/bad/dangling.onnx"],
        &["dangling.onnx", "`nowhere`"],
    );
    expect_error(
        &["annotate", "fixtures/bad/duplicate_producer.onnx"],
        &["duplicate_producer.onnx", "produced twice"],
    );
}

#[test]
fn symbolic_dims_need_input_shape() {
    expect_error(
        &["annotate", "fixtures/symbolic_batch.onnx"],
        &["`images`", "--input-shape images=1x3x32x32"],
    );
    expect_error(
        &[
            "annotate",
            "fixtures/lenet.onnx",
            "--input-shape",
            "nope=1x1",
        ],
        &["`nope`", "input"],
    );
    expect_error(
        &[
            "annotate",
            "fixtures/lenet.onnx",
            "--input-shape",
            "input=1x1x28",
        ],
        &["input", "1x1x28x28"],
    );
    expect_error(
        &[
            "annotate",
            "fixtures/lenet.onnx",
            "--input-shape",
            "input=1xAx28x28",
        ],
        &["`A`"],
    );
    // An empty input is not planned (at 0 ms, and "verified"); annotate warns.
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("dist");
    expect_error(
        &[
            "fixtures/symbolic_batch.onnx",
            "--out",
            dir.to_str().unwrap(),
            "--input-shape",
            "images=0x3x32x32",
        ],
        &["images=0x3x32x32: dim 0 is 0", "nothing to plan"],
    );
    assert!(!dir.exists());
    let o = nsplit(&[
        "annotate",
        "fixtures/symbolic_batch.onnx",
        "--input-shape",
        "images=0x3x32x32",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: --input-shape images=0x3x32x32"));
}

/// The energy objective on a profile without a power model is refused, not planned at 0 mJ.
#[test]
fn energy_needs_a_power_model() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("dist");
    expect_error(
        &[
            "fixtures/lenet.onnx",
            "--out",
            dir.to_str().unwrap(),
            "--mobile",
            "titan-x",
            "--objective",
            "energy",
        ],
        &["`titan-x` has no power model", "power_w"],
    );
    assert!(!dir.exists(), "a refused job leaves nothing");
}

/// A mistyped command is named with the one meant, not read as a model path.
#[test]
fn a_mistyped_command_says_which_was_meant() {
    for (typed, meant) in [
        ("anotate", "annotate"),
        ("selct", "select"),
        ("pakage", "package"),
    ] {
        let out = nsplit(&[typed, "x"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("did you mean `nsplit {meant}`")),
            "{stderr}"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = nsplit(&["annotate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = nsplit(&["annotate", "fixtures/lenet.onnx", "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Models the ONNX specification makes invalid (or whose sizes overflow 64 bits): the main job,
/// `annotate` and `split` each refuse them with the node, the attribute and the rule, and the
/// main job leaves nothing in `--out`.
#[test]
fn malformed_models_are_refused_and_leave_nothing() {
    let cases: &[(&str, &[&str])] = &[
        (
            "conv_strides_zero",
            &["node `conv` (Conv)", "`strides` = [0, 0]", "positive"],
        ),
        (
            "maxpool_strides_zero",
            &["node `pool` (MaxPool)", "`strides` = [0, 0]", "positive"],
        ),
        (
            "conv_short_kernel",
            &["node `conv` (Conv)", "`kernel_shape` = [3]", "needs 2"],
        ),
        (
            "conv_dilations_zero",
            &["node `conv` (Conv)", "`dilations` = [0, 0]", "positive"],
        ),
        (
            "conv_group_zero",
            &["node `conv` (Conv)", "`group` = 0", "positive"],
        ),
        (
            "conv_negative_pads",
            &["node `conv` (Conv)", "`pads`", "non-negative"],
        ),
        (
            "concat_axis_out_of_range",
            &["node `concat` (Concat)", "`axis` = 9", "rank-4"],
        ),
        (
            "transpose_bad_perm",
            &[
                "node `transpose` (Transpose)",
                "[5, 0, 1, 2]",
                "permutation",
            ],
        ),
        ("overflow_declared", &["`x`", "2^124 elements", "64 bits"]),
        (
            "overflow_reshape",
            &["node `reshape` (Reshape)", "`y`", "2^80 elements"],
        ),
    ];
    for (name, mentions) in cases {
        let model = format!("fixtures/bad/{name}.onnx");
        let mut with_file = mentions.to_vec();
        with_file.push(&model);
        expect_error(&["annotate", &model], &with_file);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("dist");
        expect_error(&[&model, "--out", out.to_str().unwrap()], &with_file);
        assert!(!out.exists(), "{name}: the main job left {}", out.display());
        let halves = dir.path().join("halves");
        expect_error(
            &[
                "split",
                &model,
                "--at",
                "y",
                "--out",
                halves.to_str().unwrap(),
            ],
            &with_file,
        );
        assert!(!halves.exists(), "{name}: split left {}", halves.display());
    }
}

/// tract's analysis runs on a thread with a time limit: past it, shapes come from the
/// declarations and our rules, and the run goes on (a model that sends tract into a loop cannot
/// hang nsplit).
#[test]
fn a_tract_analysis_past_its_time_limit_is_left_behind() {
    let report = annotate_json(
        "fixtures/lenet.onnx",
        &[],
        &[("NSPLIT_TRACT_TIMEOUT", "0.000001")],
    );
    let problem = report["tract_problem"].as_str().unwrap_or_default();
    assert!(problem.contains("did not finish"), "{problem}");
    assert_eq!(
        report["unknown_tensors"],
        serde_json::json!([]),
        "our rules shape lenet alone"
    );
}

/// A legal model whose tensors no machine holds (an EyeLike of a 2^22 x 2^22 input, 64 TiB):
/// tract's analysis, which would evaluate it and abort the process on the allocation, is not
/// run, and the main job plans it and writes it unverified, saying why.
#[test]
fn tensors_beyond_the_memory_limit_are_never_materialised() {
    let report = annotate_json("fixtures/bad/eyelike_huge.onnx", &[], &[]);
    let problem = report["tract_problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("`x` would take 64.0 TiB") && problem.contains("NSPLIT_MEMORY_LIMIT"),
        "{problem}"
    );
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    let out = nsplit(&[
        "fixtures/bad/eyelike_huge.onnx",
        "--out",
        dist.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .contains("unverified: running the model needs `x` of 64.0 TiB, over the memory limit"),
        "{stdout}"
    );
}

/// tract's analysis of a legal model whose constants it evaluates into 16 GiB (a Range to 2^31)
/// runs in a child process that is stopped at the memory limit; annotate goes on without it.
#[test]
fn a_runaway_tract_analysis_is_stopped_at_the_memory_limit() {
    let report = annotate_json(
        "fixtures/bad/range_runaway.onnx",
        &[],
        &[("NSPLIT_MEMORY_LIMIT", "0.25")],
    );
    let problem = report["tract_problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("took more than 256.0 MiB of memory"),
        "{problem}"
    );
}

/// Found by the fuzzer: a Reshape whose shape input is declared 2^40 long. No rule builds a rank
/// from that length, nothing is materialised, and the model is analysed.
#[test]
fn a_shape_input_of_absurd_length_allocates_nothing() {
    let report = annotate_json("fixtures/bad/reshape_shape_huge.onnx", &[], &[]);
    assert_eq!(report["unknown_tensors"][0]["name"], "y", "{report}");
}
