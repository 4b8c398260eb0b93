#!/usr/bin/env python3
"""Check the fixtures written by `cargo run --bin nsplit-fixtures`.

Good fixtures: onnx.checker.check_model(path, full_check=True) must pass and the
model must run in onnxruntime on seeded random inputs (symbolic dims = 1), with the
expected output shape. Bad fixtures: onnx must reject each one (load or check).

Usage:  python3 scripts/check_fixtures.py [FIXTURES_DIR]
Needs:  the pinned onnx, onnxruntime, numpy: python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements.txt
"""

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

# fixture -> {output name: expected shape}
GOOD = {
    "lenet.onnx": {"output": [1, 10]},
    "resnet_block.onnx": {"output": [1, 10]},
    "inception_block.onnx": {"output": [1, 56, 28, 28]},
    "lstm.onnx": {"logits": [1, 5]},
    "gru.onnx": {"logits": [1, 5]},
    "if_outer_scope.onnx": {"out": [1, 8]},
    "external_data.onnx": {"output": [1, 10]},
    "symbolic_batch.onnx": {"output": [1, 4]},
    "ir3_initializer_inputs.onnx": {"output": [1, 4]},
    "custom_domain.onnx": {"output": [1, 4]},
    "symbolic_classifier.onnx": {"probs": [1, 10]},
    "transformer_block.onnx": {"y": [1, 1, 16]},
    "onnx_current.onnx": {"y": [1, 4]},
    "constant_output.onnx": {"y": [1, 4], "c": [3]},
}

BAD = [
    "empty.onnx",
    "random.onnx",
    "truncated.onnx",
    "missing_external.onnx",
    "escaping_external.onnx",
    "absolute_external.onnx",
    "cycle.onnx",
    "dangling.onnx",
    "duplicate_producer.onnx",
    # Malformed models (tests/bad_input.rs): nsplit refuses each for the reason onnx gives.
    "conv_strides_zero.onnx",
    "maxpool_strides_zero.onnx",
    "conv_short_kernel.onnx",
    "conv_dilations_zero.onnx",
    "conv_negative_pads.onnx",
    "concat_axis_out_of_range.onnx",
    "transpose_bad_perm.onnx",
    "overflow_reshape.onnx",
    "unknown_attribute.onnx",
    "attribute_wrong_type.onnx",
    "missing_required_attribute.onnx",
    "wrong_input_count.onnx",
    "unknown_op.onnx",
    "empty_required_input.onnx",
    "no_element_type.onnx",
    "declaration_contradicts.onnx",
    "broadcast_mismatch.onnx",
    "onehot_axis_huge.onnx",
    "type_mismatch.onnx",
]
# Invalid by the operator specification, yet onnx's checker passes them: a Conv with group 0,
# and an input of 2^124 elements. nsplit refuses both (tests/bad_input.rs). And a legal model
# no machine can run (64 TiB), which nsplit plans without materialising, and a legal Range of
# 16 GiB whose evaluation in tract's analysis nsplit stops, and a Reshape whose shape input is
# declared 2^40 long, which nsplit analyses without building that rank.
CHECKER_ACCEPTS = [
    "conv_group_zero.onnx",
    "overflow_declared.onnx",
    "eyelike_huge.onnx",
    "range_runaway.onnx",
    "reshape_shape_huge.onnx",
]

ORT_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64}


def random_inputs(sess, rng):
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        feeds[i.name] = rng.standard_normal(shape).astype(ORT_TYPES[i.type])
    return feeds


def check_good(path, expected, rng):
    onnx.checker.check_model(path, full_check=True)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(None, random_inputs(sess, rng))
    got = {n: list(o.shape) for n, o in zip(names, outs)}
    if got != expected:
        raise AssertionError(f"outputs {got}, expected {expected}")
    for n, o in zip(names, outs):
        if not np.all(np.isfinite(o)):
            raise AssertionError(f"output {n} has non-finite values")
    return got


def check_bad(path):
    """Returns the error onnx raises; raises AssertionError if onnx accepts the file."""
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        # check_model on a loaded model does not read external data; do that too.
        onnx.checker.check_model(path, full_check=True)
        onnx.load(path, load_external_data=True)
    except Exception as e:  # noqa: BLE001 - any rejection is what we want
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:100]}"
    raise AssertionError("accepted by onnx")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures")
    rng = np.random.default_rng(0)
    failures = 0
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    for name, expected in GOOD.items():
        path = os.path.join(root, name)
        try:
            got = check_good(path, expected, rng)
            print(f"ok    {name}: checker full_check passed, ORT outputs {got}")
        except Exception as e:  # noqa: BLE001
            failures += 1
            print(f"FAIL  {name}: {type(e).__name__}: {e}")
    for name in CHECKER_ACCEPTS:
        try:
            onnx.checker.check_model(os.path.join(root, "bad", name), full_check=True)
            print(f"ok    bad/{name}: the checker passes it (nsplit refuses it)")
        except Exception as e:  # noqa: BLE001
            failures += 1
            print(f"FAIL  bad/{name}: the checker now rejects it ({e}); move it to BAD")
    for name in BAD:
        path = os.path.join(root, "bad", name)
        try:
            why = check_bad(path)
            print(f"ok    bad/{name}: rejected ({why})")
        except Exception as e:  # noqa: BLE001
            failures += 1
            print(f"FAIL  bad/{name}: {e}")
    if failures:
        print(f"{failures} fixture(s) failed")
        return 1
    print("all fixtures ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
