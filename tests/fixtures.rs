//! The bundled fixtures: every one loads, is fully shaped, and has the graph, shapes and costs
//! worked out by hand here.

use crate::common::*;
use nsplit::graph::GraphNode;
use nsplit::report::Annotations;

#[test]
fn every_fixture_is_fully_shaped() {
    for (name, shapes) in FIXTURES {
        let a = analyse(&fixture(name), shapes);
        let unknown: Vec<_> = a
            .shapes
            .unknown()
            .map(|t| a.graph.tensor(t).name.clone())
            .collect();
        assert!(unknown.is_empty(), "{name}: unknown shapes for {unknown:?}");
        for (n, _) in a.graph.ops() {
            assert!(
                a.features.get(n).flops.is_some(),
                "{name}: node {} has no FLOP count",
                a.graph.op(n).label()
            );
        }
    }
}

#[test]
fn shapes_agree_with_tract() {
    for (name, shapes) in FIXTURES {
        let a = analyse(&fixture(name), shapes);
        let inputs: Vec<(&str, Vec<usize>)> = shapes
            .iter()
            .map(|s| {
                let (n, d) = s.split_once('=').unwrap();
                (n, d.split('x').map(|v| v.parse().unwrap()).collect())
            })
            .collect();
        let tract = tract_shapes(&fixture(name), &inputs);
        assert!(!tract.is_empty(), "{name}: tract found nothing");
        for (tensor, tract_dims) in &tract {
            if let Some(t) = a.graph.tensor_id(tensor) {
                let ours = a.shapes.get(t).concrete_dims();
                assert_eq!(ours.as_ref(), Some(tract_dims), "{name}: tensor {tensor}");
            }
        }
    }
}

#[test]
fn lenet_shapes_and_flops_by_hand() {
    let a = analyse(&fixture("lenet.onnx"), &[]);
    assert_eq!(dims(&a, "conv1_out"), [1, 6, 28, 28]);
    assert_eq!(dims(&a, "pool2_out"), [1, 16, 5, 5]);
    assert_eq!(dims(&a, "output"), [1, 10]);
    // conv1 6x28x28 outputs x 25 taps, conv2 16x10x10 x 6x25, then 400x120, 120x84, 84x10.
    let macs = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10;
    let report = Annotations::of(&a, &Default::default());
    assert_eq!(report.totals.macs, macs);
    let conv1 = report.nodes.iter().find(|n| n.name == "conv1").unwrap();
    assert_eq!(conv1.flops, Some(2 * 6 * 28 * 28 * 25));
    assert_eq!(conv1.bytes_written, Some(6 * 28 * 28 * 4));
    assert_eq!(conv1.weight_bytes, (6 * 25 + 6) * 4);
    assert_eq!(conv1.bytes_read, Some((28 * 28 + 6 * 25 + 6) * 4));
    assert_eq!(conv1.class, "conv");
    let pool1 = report.nodes.iter().find(|n| n.name == "pool1").unwrap();
    assert_eq!(
        pool1.flops,
        Some(6 * 14 * 14 * 4),
        "one op per window element"
    );
}

#[test]
fn skip_connection_and_branches_are_edges() {
    let a = analyse(&fixture("resnet_block.onnx"), &[]);
    let add = a
        .graph
        .ops()
        .find(|(_, op)| op.op_type == "Add")
        .map(|(n, _)| n)
        .unwrap();
    // The Add reads the block's last BatchNormalization and the stem's output (the skip).
    let preds: Vec<String> = a
        .graph
        .op_predecessors(add)
        .map(|p| a.graph.op(p).op_type.clone())
        .collect();
    assert_eq!(preds.len(), 2, "{preds:?}");
    assert!(
        preds.contains(&"Relu".to_string()) && preds.contains(&"BatchNormalization".to_string()),
        "{preds:?}"
    );

    let a = analyse(&fixture("inception_block.onnx"), &[]);
    let concat = a
        .graph
        .ops()
        .find(|(_, op)| op.op_type == "Concat")
        .map(|(n, _)| n)
        .unwrap();
    assert_eq!(a.graph.op_predecessors(concat).count(), 4);
    assert_eq!(dims(&a, "output"), [1, 56, 28, 28]);
}

#[test]
fn if_bodies_capture_outer_tensors_recursively() {
    let a = analyse(&fixture("if_outer_scope.onnx"), &[]);
    let (n, op) = a.graph.ops().find(|(_, op)| op.op_type == "If").unwrap();
    let captured: Vec<&str> = op
        .captures
        .iter()
        .map(|&t| a.graph.tensor(t).name.as_str())
        .collect();
    // `w_else` is only read by the If nested in the else branch.
    for name in ["h", "w_then", "w_else"] {
        assert!(
            captured.contains(&name),
            "{name} not captured: {captured:?}"
        );
    }
    let relu = a
        .graph
        .ops()
        .find(|(_, op)| op.op_type == "Relu")
        .map(|(n, _)| n)
        .unwrap();
    assert!(
        a.graph.op_predecessors(n).any(|p| p == relu),
        "Relu -> If edge missing"
    );
    // Topological order puts every producer first.
    let pos = |m| a.graph.order.iter().position(|&x| x == m).unwrap();
    assert!(pos(relu) < pos(n));
}

#[test]
fn ir3_initializers_listed_as_inputs_are_weights() {
    let a = analyse(&fixture("ir3_initializer_inputs.onnx"), &[]);
    assert_eq!(a.graph.inputs.len(), 1, "only the real input is an input");
    let constant = a.graph.ops().find(|(_, op)| op.op_type == "Constant");
    assert!(
        constant.is_some(),
        "the fixture keeps a weight in a Constant node"
    );
    let (c, _) = constant.unwrap();
    let out = a.graph.op(c).outputs[0].unwrap();
    let reader = a.graph.tensor(out).consumers[0];
    assert!(a.features.get(reader).weight_bytes >= a.shapes.get(out).bytes().unwrap());
    let sources = a
        .graph
        .graph
        .node_weights()
        .filter(|w| matches!(w, GraphNode::Initializer(_)))
        .count();
    assert_eq!(sources, a.graph.initializers.len());
}

#[test]
fn external_data_is_read_from_beside_the_model() {
    let a = analyse(&fixture("external_data.onnx"), &[]);
    let w = a
        .model
        .graph()
        .initializer
        .iter()
        .find(|t| !t.external_data.is_empty())
        .unwrap();
    let bytes = a.model.tensor_bytes(w).unwrap().unwrap();
    assert_eq!(
        bytes.len() as u64,
        a.shapes
            .get(a.graph.tensor_id(&w.name).unwrap())
            .bytes()
            .unwrap()
    );
    assert_eq!(
        Annotations::of(&a, &Default::default()).totals.weight_bytes,
        (64 * 128 + 128 + 128 * 10 + 10) * 4
    );
}

#[test]
fn recurrent_cells_count_gate_products_and_steps() {
    for (name, gates, hidden) in [("lstm.onnx", 4, 32), ("gru.onnx", 3, 24)] {
        let a = analyse(&fixture(name), &[]);
        let (n, _) = a
            .graph
            .ops()
            .find(|(_, op)| op.op_type == "LSTM" || op.op_type == "GRU")
            .unwrap();
        let f = a.features.get(n);
        assert_eq!(f.macs, Some(10 * gates * hidden * (16 + hidden)), "{name}");
        // Ten steps of a one-directional cell, each at a cost of its own.
        assert_eq!(f.steps, Some(10), "{name}");
    }
}

#[test]
fn custom_domain_ops_are_shaped_by_our_rules() {
    let a = analyse(&fixture("custom_domain.onnx"), &[]);
    let (_, gelu) = a
        .graph
        .ops()
        .find(|(_, op)| op.domain == "com.microsoft")
        .unwrap();
    assert_eq!(
        dims(&a, &a.graph.tensor(gelu.outputs[0].unwrap()).name.clone()),
        [1, 16]
    );
}

#[test]
fn input_shape_fixes_symbolic_batch() {
    let a = analyse(&fixture("symbolic_batch.onnx"), &["images=3x3x32x32"]);
    assert_eq!(dims(&a, a.model.graph().output[0].name.as_str()), [3, 4]);
}

#[test]
fn annotations_match_golden_files() {
    for (name, shapes) in FIXTURES {
        let mut args = vec!["annotate", "--format", "json"];
        let path = format!("fixtures/{name}");
        args.push(&path);
        let flags: Vec<String> = shapes
            .iter()
            .map(|s| format!("--input-shape={s}"))
            .collect();
        args.extend(flags.iter().map(String::as_str));
        let out = nsplit(&args);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stem = name.trim_end_matches(".onnx");
        check_golden(
            &format!("annotate/{stem}.json"),
            &String::from_utf8(out.stdout).unwrap(),
        );
    }
    let out = nsplit(&["annotate", "fixtures/lenet.onnx"]);
    check_golden(
        "annotate/lenet.table.txt",
        &String::from_utf8(out.stdout).unwrap(),
    );
    let out = nsplit(&["annotate", "--format", "csv", "fixtures/lenet.onnx"]);
    check_golden(
        "annotate/lenet.csv",
        &String::from_utf8(out.stdout).unwrap(),
    );
}
