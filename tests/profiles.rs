//! Device profiles: the format round-trips, bad profiles fail naming the field, predictions grow
//! with work, and annotate reports them.

use crate::common::*;
use nsplit::cost::profile::{DeviceProfile, BUILT_IN};
use nsplit::cost::{OpClass, ALL_CLASSES};

#[test]
fn built_in_profiles_are_valid_and_round_trip() {
    for (name, _) in BUILT_IN {
        let p = DeviceProfile::resolve(name).unwrap();
        assert_eq!(&p.name, name);
        assert!(!p.provenance.source.is_empty());
        let again = DeviceProfile::from_json(&p.to_json(), "round trip").unwrap();
        assert_eq!(p, again);
    }
    assert_eq!(
        DeviceProfile::resolve("jetson-tk1")
            .unwrap()
            .provenance
            .kind,
        nsplit::cost::profile::ProvenanceKind::Estimated
    );
}

fn broken(edit: impl Fn(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&DeviceProfile::resolve("jetson-tk1").unwrap().to_json()).unwrap();
    edit(&mut v);
    format!(
        "{:#}",
        DeviceProfile::from_json(&v.to_string(), "my.json").unwrap_err()
    )
}

#[test]
fn bad_profiles_name_the_field() {
    let e = broken(|v| v["fallback"]["peak_gflops"] = serde_json::json!(-1.0));
    assert!(
        e.contains("my.json") && e.contains("fallback.peak_gflops"),
        "{e}"
    );
    let e = broken(|v| v["version"] = serde_json::json!(99));
    assert!(e.contains("`version`"), "{e}");
    let e = broken(|v| {
        v["power_w"]
            .as_object_mut()
            .unwrap()
            .remove("default")
            .map(|_| ())
            .unwrap()
    });
    assert!(e.contains("power_w.default"), "{e}");
    let e = broken(
        |v| v["regressions"]["convolution"] = serde_json::json!({"form": "linear", "variables": ["mflops"], "coefficients": [0.1, 0.2], "r2": 1.0, "holdout_error": 0.0, "samples": 9}),
    );
    assert!(e.contains("regressions.convolution"), "{e}");
    let e = broken(
        |v| v["regressions"]["conv"] = serde_json::json!({"form": "linear", "variables": ["mflops"], "coefficients": [0.1], "r2": 1.0, "holdout_error": 0.0, "samples": 9}),
    );
    assert!(e.contains("regressions.conv.coefficients"), "{e}");
    let e = broken(
        |v| v["regressions"]["conv"] = serde_json::json!({"form": "linear", "variables": ["mflops"], "coefficients": [0.1, 0.2], "hinge": {"variable": "mb_read", "at": 4.0, "slope": 0.1}, "r2": 1.0, "holdout_error": 0.0, "samples": 9}),
    );
    assert!(e.contains("regressions.conv.hinge.variable"), "{e}");
    let e = broken(|v| v["context_factors"] = serde_json::json!({"conv": 0.0}));
    assert!(e.contains("context_factors.conv"), "{e}");
    let e = broken(|v| v["context_factors"] = serde_json::json!({"convolution": 1.2}));
    assert!(e.contains("context_factors.convolution"), "{e}");
    let e = broken(|v| v["context_factors"] = serde_json::json!({"in_cache:convolution": 1.2}));
    assert!(e.contains("context_factors.in_cache:convolution"), "{e}");
    let e = broken(|v| v["context_factors"] = serde_json::json!({"in_cache:pool": -1.0}));
    assert!(
        e.contains("context_factors.in_cache:pool") && e.contains("positive number"),
        "{e}"
    );
    for key in ["in_cache:", "in_cache:default", "in_cache:op:Conv1x1"] {
        let e = broken(|v| v["context_factors"] = serde_json::json!({ key: 1.1 }));
        assert!(e.contains("unknown op class"), "{key}: {e}");
    }
    let e = broken(|v| v["cache_mb"] = serde_json::json!(0.0));
    assert!(e.contains("cache_mb"), "{e}");
    let e = broken(|v| v["run_overhead_ms"] = serde_json::json!(-0.1));
    assert!(e.contains("run_overhead_ms"), "{e}");
    let e = broken(|v| v["surprise"] = serde_json::json!(1));
    assert!(e.contains("surprise"), "{e}");
    let e = format!(
        "{:#}",
        DeviceProfile::resolve("no-such-profile").unwrap_err()
    );
    assert!(e.contains("jetson-tk1") && e.contains("titan-x"), "{e}");
}

#[test]
fn predictions_grow_with_flops_within_a_class() {
    for (name, _) in BUILT_IN {
        let p = DeviceProfile::resolve(name).unwrap();
        for class in ALL_CLASSES {
            let mut last = 0.0;
            for mflops in [0u64, 1, 10, 100, 1_000, 10_000] {
                let ms = p
                    .latency_ms(
                        class,
                        Some(mflops * 1_000_000),
                        Some(1_000_000),
                        Some(100_000),
                    )
                    .unwrap();
                assert!(
                    ms >= last,
                    "{name} {class:?}: {ms} ms at {mflops} MFLOPs < {last}"
                );
                last = ms;
            }
        }
        assert!(
            p.latency_ms(OpClass::Conv, None, Some(1), Some(1))
                .is_none(),
            "unknown work, no prediction"
        );
    }
}

#[test]
fn annotate_reports_latency_and_energy() {
    let v = annotate_json(
        "fixtures/lenet.onnx",
        &["--mobile", "jetson-tk1", "--cloud", "titan-x"],
        &[],
    );
    let conv1 = &v["nodes"][0];
    let (m, c, e) = (
        conv1["mobile_ms"].as_f64().unwrap(),
        conv1["cloud_ms"].as_f64().unwrap(),
        conv1["mobile_mj"].as_f64().unwrap(),
    );
    assert!(
        m > c && c > 0.0,
        "a phone-class GPU is slower than a server GPU"
    );
    assert!(
        (e - m * 10.0).abs() < 1e-12,
        "conv energy = time x 10 W on the TK1 profile"
    );
    assert_eq!(v["profiles"]["mobile"], "jetson-tk1");
    assert_eq!(v["profiles"]["mobile_provenance"], "estimated");
    let sum: f64 = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["mobile_ms"].as_f64().unwrap())
        .sum();
    assert!((v["totals"]["mobile_ms"].as_f64().unwrap() - sum).abs() < 1e-9);

    let out = nsplit(&["annotate", "fixtures/lenet.onnx", "--mobile", "nope.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.json"));
}

/// The work of an op of 10 MFLOPs that reads and writes `mb` MB in all.
fn work(mb: f64) -> nsplit::cost::profile::Figures {
    nsplit::cost::profile::Figures {
        mflops: 10.0,
        mb_read: mb / 2.0,
        mb_written: mb / 2.0,
        mb_patches: 0.0,
        steps: 0.0,
    }
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} against {b}");
}

/// A kernel's own factor wins over its class's, and an op takes its factor in proportion to
/// its bytes over the cache: in full past it, a tenth of it at a tenth of the cache.
#[test]
fn context_factors_by_kernel_and_cache_share() {
    let mut p = DeviceProfile::resolve("jetson-tk1").unwrap();
    p.context_factors = [("conv".to_string(), 1.2), ("op:Conv1x1".to_string(), 1.5)].into();
    // No cache size recorded: factors in full, the kernel's before the class's.
    close(p.context_factor("Conv1x1", OpClass::Conv, &work(0.01)), 1.5);
    close(
        p.context_factor("ConvDirect", OpClass::Conv, &work(0.01)),
        1.2,
    );
    close(
        p.context_factor("Relu", OpClass::Activation, &work(8.0)),
        1.0,
    );
    p.cache_mb = Some(2.0);
    close(p.context_factor("Conv1x1", OpClass::Conv, &work(8.0)), 1.5);
    close(p.context_factor("Conv1x1", OpClass::Conv, &work(0.2)), 1.05);
    close(p.context_factor("", OpClass::Conv, &work(1.0)), 1.1);
    // The prediction carries it.
    let alone = {
        let mut q = p.clone();
        q.context_factors.clear();
        q.figures_latency_ms("", OpClass::Conv, &work(1.0))
    };
    close(
        p.figures_latency_ms("", OpClass::Conv, &work(1.0)),
        1.1 * alone,
    );
    let again = DeviceProfile::from_json(&p.to_json(), "round trip").unwrap();
    assert_eq!(again, p);
}

/// An op whose data stays in cache takes its class's in-cache factor, else the one for every
/// class (older profiles), else none; in proportion to the share of the cache its bytes leave.
#[test]
fn in_cache_factors_by_class() {
    let mut p = DeviceProfile::resolve("jetson-tk1").unwrap();
    p.cache_mb = Some(2.0);
    p.context_factors = [
        ("conv".to_string(), 1.2),
        ("in_cache:pool".to_string(), 1.3),
    ]
    .into();
    // A tenth of the cache: 0.9 of the in-cache factor, 0.1 of the own one.
    close(
        p.context_factor("", OpClass::Pool, &work(0.2)),
        0.9 * 1.3 + 0.1,
    );
    close(
        p.context_factor("", OpClass::Conv, &work(0.2)),
        0.9 + 0.1 * 1.2,
    );
    p.context_factors.insert("in_cache".to_string(), 1.1);
    close(
        p.context_factor("", OpClass::Pool, &work(0.2)),
        0.9 * 1.3 + 0.1,
    );
    close(
        p.context_factor("", OpClass::Conv, &work(0.2)),
        0.9 * 1.1 + 0.1 * 1.2,
    );
    let again = DeviceProfile::from_json(&p.to_json(), "round trip").unwrap();
    assert_eq!(again, p);
}

/// A server's profile given as the phone's has no power model: no energy, neither zero nor a
/// negative zero.
#[test]
fn no_power_model_no_energy() {
    let v = annotate_json("fixtures/lenet.onnx", &["--mobile", "titan-x"], &[]);
    assert!(v["totals"]["mobile_mj"].is_null(), "{}", v["totals"]);
    assert!(v["totals"]["mobile_ms"].as_f64().unwrap() > 0.0);
    let out = nsplit(&["annotate", "fixtures/lenet.onnx", "--mobile", "titan-x"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(no energy predicted)"), "{text}");
    assert!(!text.contains("mJ"), "{text}");
    let v = annotate_json("fixtures/lenet.onnx", &["--mobile", "x86-2core"], &[]);
    assert!(v["totals"]["mobile_mj"].as_f64().unwrap() > 0.0);
}

/// A view (lenet's Flatten) takes no time on any profile, and says why; the convolutions do.
#[test]
fn views_take_no_time() {
    for mobile in ["jetson-tk1", "x86-2core"] {
        let v = annotate_json("fixtures/lenet.onnx", &["--mobile", mobile], &[]);
        let node = |op: &str| {
            v["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["op"] == op)
                .unwrap()
                .clone()
        };
        let flatten = node("Flatten");
        assert_eq!(flatten["mobile_ms"].as_f64(), Some(0.0), "{mobile}");
        assert!(flatten["note"].as_str().unwrap().contains("a view"));
        assert!(
            node("Conv")["mobile_ms"].as_f64().unwrap() > 0.0,
            "{mobile}"
        );
    }
}

/// `nsplit profile --quick` with `args`, written (the folder holding it, and its path) and read
/// back.
fn quick_profile(args: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, DeviceProfile) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("profile.json");
    let mut all = vec!["profile", "--quick", "--out", out.to_str().unwrap()];
    all.extend(args);
    let run = nsplit(&all);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let p = DeviceProfile::resolve(out.to_str().unwrap()).unwrap();
    (dir, out, p)
}

#[test]
fn quick_profile_runs_and_loads() {
    let (_dir, out, p) = quick_profile(&["--role", "cloud", "--name", "bench-server"]);
    assert_eq!(
        p.provenance.kind,
        nsplit::cost::profile::ProvenanceKind::Measured
    );
    assert_eq!(p.role, nsplit::cost::profile::Role::Cloud);
    assert_eq!(p.name, "bench-server");
    assert_eq!(
        p.runtime.as_deref(),
        Some("tract-onnx 0.23 (1 thread, optimised)")
    );
    assert!(p.provenance.source.contains("timed with tract-onnx 0.23"));
    for class in ["conv", "matmul", "pool", "activation", "norm", "recurrent"] {
        let r = p
            .regressions
            .get(class)
            .unwrap_or_else(|| panic!("no {class} regression"));
        // Fit quality depends on how quiet the machine is (a benchmark's business, see
        // docs/accuracy.md); here only that a regression was fitted from the grid.
        assert!(
            r.samples >= 4
                && r.holdout_error.is_finite()
                && r.coefficients.iter().all(|c| c.is_finite()),
            "{class}: {r:?}"
        );
    }
    // The kernel variants the cost rules name get fits of their own.
    for key in [
        "op:Conv1x1",
        "op:ConvDepthwise",
        "op:ConvDirect",
        "op:Broadcast",
        "op:GRULinearBeforeReset",
        "op:LRN",
        "op:AveragePool",
        "op:GlobalPool",
    ] {
        assert!(p.regressions.contains_key(key), "no {key} regression");
    }
    assert!(p.run_overhead_ms >= 0.0);
    // Every class of the calibration CNN has a factor; classes it lacks (recurrent) have none.
    for class in ["conv", "matmul", "norm", "pool", "activation", "softmax"] {
        assert!(
            p.context_factors.contains_key(class),
            "no context factor for {class}: {:?}",
            p.context_factors
        );
    }
    assert!(!p.context_factors.contains_key("recurrent"));
    assert!(!p.context_factors.contains_key("default"));
    for (class, f) in &p.context_factors {
        assert!((0.5..=3.0).contains(f), "context factor of {class}: {f}");
    }
    // Slopes are non-negative: a bigger conv never takes less time.
    let small = p
        .latency_ms(OpClass::Conv, Some(1_000_000), Some(100_000), Some(100_000))
        .unwrap();
    let big = p
        .latency_ms(
            OpClass::Conv,
            Some(1_000_000_000),
            Some(100_000),
            Some(100_000),
        )
        .unwrap();
    assert!(big >= small);
    let out = nsplit(&[
        "annotate",
        "fixtures/lenet.onnx",
        "--cloud",
        out.to_str().unwrap(),
    ]);
    assert!(out.status.success());
}

/// A profile taken in onnxruntime says so, fits what it times, and `annotate --measure
/// --runtime onnxruntime` traces onnxruntime's kernels (named after fused outputs, `_nchwc`) to
/// the model's nodes.
#[test]
fn quick_onnxruntime_profile_names_its_runtime_and_measures_per_node() {
    if python_tools("the onnxruntime profile").is_none() {
        return;
    }
    let (_dir, out, p) = quick_profile(&["--runtime", "onnxruntime"]);
    assert_eq!(
        p.name,
        format!("measured-{}-onnxruntime", std::env::consts::ARCH)
    );
    let runtime = p.runtime.clone().unwrap();
    assert!(
        runtime.starts_with("onnxruntime 1.") && runtime.contains("1 thread"),
        "{runtime}"
    );
    assert!(p.provenance.source.contains("timed with onnxruntime 1."));
    for class in ["conv", "matmul", "pool", "activation", "norm"] {
        let r = &p.regressions[class];
        assert!(r.samples >= 4 && r.coefficients.iter().all(|c| c.is_finite()));
    }
    assert!(
        p.context_factors.contains_key("conv"),
        "{:?}",
        p.context_factors
    );

    let v = annotate_json(
        "fixtures/resnet_block.onnx",
        &[
            "--mobile",
            out.to_str().unwrap(),
            "--measure",
            "--runtime",
            "onnxruntime",
        ],
        &[],
    );
    assert_eq!(v["totals"]["measured_runtime"], "onnxruntime");
    let total = v["totals"]["measured_ms"].as_f64().unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    let per_node: f64 = nodes.iter().filter_map(|n| n["measured_ms"].as_f64()).sum();
    // Every kernel but onnxruntime's layout changes is traced to a node: the nodes hold most of
    // the run, and none twice (the kernels are timed with onnxruntime's profiler on, the run
    // without it: a little apart).
    assert!(
        per_node > 0.5 * total && per_node <= total * 1.5,
        "nodes {per_node} ms of a {total} ms run"
    );
    let timed = |name: &str| {
        nodes.iter().find(|n| n["name"] == name).unwrap()["measured_ms"]
            .as_f64()
            .unwrap()
    };
    // The stem conv and its Relu run as one kernel named after the Relu's output.
    assert!(timed("stem_relu") + timed("stem_conv") > 0.0);
    assert!(timed("fc") > 0.0);
}
