//! The ONNX backend-test corpus (`onnx==1.22.0` wheel: node, simple, pytorch-* and light model-zoo
//! nets), fetched by `scripts/fetch-corpus.sh` into `corpus/onnx-backend/`.
//!
//! When the corpus is absent these tests say so loudly and pass, unless `NSPLIT_REQUIRE_CORPUS` is
//! set (as `.ci/run` does), in which case its absence fails them.

use crate::common::*;
use nsplit::report::Annotations;
use nsplit::shapes::InputShapes;
use nsplit::Analysis;
use onnx_protobuf::{Message, TensorProto};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

#[test]
fn light_model_zoo_nets_are_fully_shaped_and_counted() {
    let Some(dir) = corpus() else { return };
    let models = light_models_in(&dir);
    assert!(
        models.len() >= 9,
        "expected the light model-zoo nets, found {models:?}"
    );
    // Conv/Gemm/MatMul GMACs at the declared 224x224 input, from the published architectures.
    let expected_gmacs = [("alexnet", 0.654), ("vgg19", 19.63), ("resnet50", 4.09)];
    let mut checked = 0;
    for m in &models {
        let a = Analysis::run(m, &InputShapes::parse(&input_shapes(m)).unwrap())
            .unwrap_or_else(|e| panic!("{e:#}"));
        let unknown: Vec<String> = a
            .shapes
            .unknown()
            .map(|t| a.graph.tensor(t).name.clone())
            .collect();
        assert!(
            unknown.is_empty(),
            "{}: not fully shaped: {unknown:?}",
            m.display()
        );
        // Our table (tract on a weight-free copy, then value_info and rules) against plain tract
        // on the unmodified model.
        let tract = tract_shapes(m, &[]);
        assert!(
            tract.len() > a.graph.tensors.len() / 2,
            "{}: tract typed too little",
            m.display()
        );
        for (tensor, dims) in &tract {
            if let Some(t) = a.graph.tensor_id(tensor) {
                assert_eq!(
                    a.shapes.get(t).concrete_dims().as_ref(),
                    Some(dims),
                    "{}: {tensor}",
                    m.display()
                );
            }
        }
        let report = Annotations::of(&a, &Default::default());
        let name = m.file_stem().unwrap().to_string_lossy().to_string();
        eprintln!(
            "{name}: {} nodes, {:.3} GMACs, {:.1} MB weights",
            report.totals.nodes,
            report.totals.macs as f64 / 1e9,
            report.totals.weight_bytes as f64 / 1e6
        );
        for (key, gmacs) in expected_gmacs {
            if name.contains(key) {
                let ours = report.totals.macs as f64 / 1e9;
                assert!(
                    (ours / gmacs - 1.0).abs() < 0.05,
                    "{name}: {ours:.3} GMACs, expected {gmacs} within 5%"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(
        checked,
        expected_gmacs.len(),
        "AlexNet, VGG-19 and ResNet-50 must all be in the corpus"
    );
}

/// Every multi-purpose test model (node, simple, pytorch-converted, pytorch-operator): loads, and
/// is fully shaped in >= 95% of cases; graph outputs agree with the recorded outputs.
#[test]
fn node_tests_load_and_are_shaped() {
    let Some(dir) = corpus() else { return };
    let mut models = vec![];
    for family in ["node", "simple", "pytorch-converted", "pytorch-operator"] {
        let Ok(entries) = std::fs::read_dir(dir.join(family)) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path().join("model.onnx");
            if p.is_file() {
                models.push(p);
            }
        }
    }
    models.sort();
    assert!(
        models.len() > 1500,
        "expected the full node-test corpus, found {}",
        models.len()
    );

    let (mut load_failures, mut not_shaped, mut mismatches) =
        (vec![], BTreeMap::<String, Vec<String>>::new(), vec![]);
    let (mut shaped, mut node_family, mut node_family_shaped, mut compared) = (0, 0, 0, 0);
    for m in &models {
        let test = m
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let in_node_family = m.parent().unwrap().parent().unwrap().ends_with("node");
        node_family += in_node_family as usize;
        let a = match Analysis::run(m, &InputShapes::parse(&input_shapes(m)).unwrap()) {
            Ok(a) => a,
            Err(e) => {
                load_failures.push(format!("{test}: {e:#}"));
                continue;
            }
        };
        let unknown: Vec<_> = a.shapes.unknown().collect();
        if unknown.is_empty() {
            shaped += 1;
            node_family_shaped += in_node_family as usize;
        } else {
            let t = a.graph.tensor(unknown[0]);
            let op = match t.producer {
                nsplit::graph::Producer::Node(n, _) => a.graph.op(n).qualified_op(),
                _ => "(graph input)".into(),
            };
            let why = a
                .shapes
                .tract_problem
                .as_deref()
                .unwrap_or("typed what it could; no rule of ours applies")
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            not_shaped
                .entry(op)
                .or_default()
                .push(format!("{test} (`{}`; tract: {why})", t.name));
        }
        // Graph outputs against the recorded outputs of test_data_set_0.
        let data = m.parent().unwrap().join("test_data_set_0");
        for (k, &out) in a.graph.outputs.iter().enumerate() {
            let Some(ours) = a.shapes.get(out).concrete_dims() else {
                continue;
            };
            let Ok(bytes) = std::fs::read(data.join(format!("output_{k}.pb"))) else {
                continue;
            };
            let Ok(t) = TensorProto::parse_from_bytes(&bytes) else {
                continue;
            };
            // Sequence/optional outputs do not parse as a tensor with our name.
            if t.name != a.graph.tensor(out).name && !t.name.is_empty() {
                continue;
            }
            let recorded: Vec<u64> = t.dims.iter().map(|&d| d as u64).collect();
            compared += 1;
            if recorded != ours {
                mismatches.push(format!(
                    "{test}: output `{}` is {recorded:?}, we say {ours:?}",
                    a.graph.tensor(out).name
                ));
            }
        }
    }
    let loaded = models.len() - load_failures.len();
    let mut report = String::new();
    let _ = writeln!(report, "# Node-test corpus shape coverage\n");
    let _ = writeln!(
        report,
        "{} models, {loaded} loaded, {shaped} fully shaped ({:.1}%)\n",
        models.len(),
        100.0 * shaped as f64 / loaded.max(1) as f64
    );
    let _ = writeln!(
        report,
        "node/ alone: {node_family} models, {node_family_shaped} fully shaped ({:.1}%)\n",
        100.0 * node_family_shaped as f64 / node_family.max(1) as f64
    );
    let _ = writeln!(
        report,
        "## Not fully shaped, by the op producing the first unknown tensor\n"
    );
    for (op, tests) in &not_shaped {
        let _ = writeln!(report, "- {op} ({}): {}", tests.len(), tests.join("; "));
    }
    let _ = writeln!(
        report,
        "\n{compared} graph outputs compared with the recorded test outputs, {} differ",
        mismatches.len()
    );
    let _ = writeln!(report, "\n## Load failures\n\n{}", load_failures.join("\n"));
    let _ = writeln!(
        report,
        "\n## Output shape mismatches\n\n{}",
        mismatches.join("\n")
    );
    std::fs::create_dir_all(root().join("target")).unwrap();
    std::fs::write(root().join("target/corpus-report.md"), &report).unwrap();
    eprintln!("{}", report.lines().take(5).collect::<Vec<_>>().join("\n"));
    eprintln!("full report: target/corpus-report.md");

    assert!(
        compared > 1500,
        "only {compared} outputs compared with recorded data"
    );
    assert!(
        load_failures.is_empty(),
        "{} models failed to load:\n{}",
        load_failures.len(),
        load_failures.join("\n")
    );
    assert!(
        mismatches.is_empty(),
        "{} output shapes differ from the recorded outputs:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    for (what, ok, all) in [
        ("all families", shaped, loaded),
        ("node/", node_family_shaped, node_family),
    ] {
        let share = ok as f64 / all as f64;
        assert!(
            share >= 0.95,
            "{what}: only {:.1}% fully shaped; see target/corpus-report.md",
            100.0 * share
        );
    }
}

/// Our own shape rules alone (no tract, no value_info) against the recorded outputs: every output
/// they type must match, and they must type a fair share.
#[test]
fn our_shape_rules_agree_with_recorded_outputs() {
    let Some(dir) = corpus() else { return };
    let sources = nsplit::shapes::Sources {
        tract: false,
        value_info: false,
        rules: true,
    };
    let (mut compared, mut mismatches) = (0, vec![]);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir.join("node"))
        .unwrap()
        .map(|e| e.unwrap().path().join("model.onnx"))
        .collect();
    entries.sort();
    for m in entries.iter().filter(|m| m.is_file()) {
        let model = nsplit::load::Model::load(m).unwrap();
        let graph = nsplit::graph::ModelGraph::build(model.graph()).unwrap();
        let Ok(shapes) = nsplit::shapes::infer_from(
            &model,
            &graph,
            &InputShapes::parse(&input_shapes(m)).unwrap(),
            sources,
        ) else {
            continue;
        };
        let data = m.parent().unwrap().join("test_data_set_0");
        for (k, &out) in graph.outputs.iter().enumerate() {
            let Some(ours) = shapes.get(out).concrete_dims() else {
                continue;
            };
            let Ok(t) = std::fs::read(data.join(format!("output_{k}.pb")))
                .map(|b| TensorProto::parse_from_bytes(&b))
            else {
                continue;
            };
            let Ok(t) = t else { continue };
            if t.name != graph.tensor(out).name && !t.name.is_empty() {
                continue;
            }
            compared += 1;
            let recorded: Vec<u64> = t.dims.iter().map(|&d| d as u64).collect();
            let dtype_ok = shapes.get(out).dtype.map(|d| d.0) == Some(t.data_type);
            if recorded != ours || !dtype_ok {
                mismatches.push(format!(
                    "{}: `{}` recorded {recorded:?} type {}, rules say {ours:?} type {:?}",
                    m.parent().unwrap().file_name().unwrap().to_string_lossy(),
                    t.name,
                    t.data_type,
                    shapes.get(out).dtype
                ));
            }
        }
    }
    eprintln!(
        "rules alone typed {compared} recorded node-test outputs, {} differ",
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(compared > 800, "rules alone typed only {compared} outputs");
}

/// Head then tail equals the original under tract for 30 evenly spaced cuts of every light
/// model-zoo net (every cut for nets under 100 nodes).
#[test]
fn light_model_zoo_nets_compose_at_every_sampled_cut() {
    let Some(dir) = corpus() else { return };
    let models = light_models_in(&dir);
    for m in &models {
        let shapes = input_shapes(m);
        let shape_refs: Vec<&str> = shapes.iter().map(String::as_str).collect();
        let n = analyse(m, &shape_refs).graph.order.len();
        let start = std::time::Instant::now();
        let worst = compose_prefixes(m, &shape_refs, &prefixes(n))
            .unwrap_or_else(|e| panic!("{}: {e}", m.display()));
        eprintln!(
            "{}: {} cuts compose, max abs difference {worst:e} ({:.1}s)",
            m.display(),
            prefixes(n).len(),
            start.elapsed().as_secs_f64()
        );
    }
}
