#!/usr/bin/env python3
"""Check emitted head/tail pairs with the official onnx checker and onnxruntime.

Usage:  check_halves.py MANIFEST.json
The manifest (written by the Rust tests) is a list of cases:
  {"label": str, "original": path, "head": path|null, "tail": path|null,
   "inputs": dir-with-input_N.pb|null}
For every case: each half passes onnx.checker.check_model(full_check=True) and loads in
onnxruntime; then head-then-tail is run on the recorded inputs (or seeded random ones) and every
original output must match the original's (float32/64: rtol 1e-4, atol 1e-5; float16 and
bfloat16: rtol 1e-3, atol 1e-3, i.e. one unit in the last place, as the onnx backend tests allow;
other types exactly).
Cases whose original does not run in onnxruntime are counted as such, not as failures.
Prints a summary line "N passed, N failed" and exits non-zero on any failure.
"""

import glob
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

ort.set_default_logger_severity(3)


def session(path):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def recorded_inputs(model, directory):
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    feeds = {}
    for k, vi in enumerate(inputs):
        with open(os.path.join(directory, f"input_{k}.pb"), "rb") as f:
            data = f.read()
        kind = vi.type.WhichOneof("value")
        if kind == "sequence_type":
            seq = onnx.SequenceProto()
            seq.ParseFromString(data)
            feeds[vi.name] = numpy_helper.to_list(seq)
        elif kind == "optional_type":
            opt = onnx.OptionalProto()
            opt.ParseFromString(data)
            feeds[vi.name] = numpy_helper.to_optional(opt)
        else:
            t = onnx.TensorProto()
            t.ParseFromString(data)
            feeds[vi.name] = numpy_helper.to_array(t)
    return feeds


NP = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


def random_inputs(sess, rng, shapes):
    feeds = {}
    for i in sess.get_inputs():
        shape = shapes.get(i.name) or [d if isinstance(d, int) else 1 for d in i.shape]
        dt = NP[i.type]
        if dt == np.bool_:
            feeds[i.name] = np.ones(shape, dtype=dt)
        elif np.issubdtype(dt, np.integer):
            feeds[i.name] = rng.integers(0, 2, size=shape).astype(dt)
        else:
            feeds[i.name] = rng.uniform(-1, 1, size=shape).astype(dt)
    return feeds


def run(sess, values):
    names = [o.name for o in sess.get_outputs()]
    feeds = {i.name: values[i.name] for i in sess.get_inputs()}
    return dict(zip(names, sess.run(None, feeds)))


def same(a, b):
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype == np.float16:
        return np.allclose(b, a, rtol=1e-3, atol=1e-3, equal_nan=True)
    if a.dtype.kind in "fc":
        return np.allclose(b, a, rtol=1e-4, atol=1e-5, equal_nan=True)
    return np.array_equal(a, b)


def check(case, rng):
    halves = [p for p in (case["head"], case["tail"]) if p]
    for p in halves:
        onnx.checker.check_model(p, full_check=True)
    original = onnx.load(case["original"], load_external_data=False)
    try:
        orig = session(case["original"])
    except Exception as e:  # noqa: BLE001
        return "original-unrunnable", str(e).splitlines()[0]
    sessions = [session(p) for p in halves]
    if case.get("inputs"):
        values = recorded_inputs(original, case["inputs"])
    else:
        values = random_inputs(orig, rng, case.get("shapes", {}))
    try:
        want = run(orig, values)
    except Exception as e:  # noqa: BLE001
        return "original-unrunnable", str(e).splitlines()[0]
    for s in sessions:
        values.update(run(s, values))
    bad = [n for n, v in want.items() if n not in values or not same(v, values[n])]
    if bad:
        return "mismatch", f"outputs differ: {bad}"
    return "pass", ""


def main():
    cases = json.load(open(sys.argv[1]))
    rng = np.random.default_rng(0)
    counts = {"pass": 0, "mismatch": 0, "error": 0, "original-unrunnable": 0}
    failures = []
    for case in cases:
        try:
            status, why = check(case, rng)
        except Exception as e:  # noqa: BLE001 - any checker/ORT rejection of a half is a failure
            status, why = "error", f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
        counts[status] += 1
        if status in ("mismatch", "error"):
            failures.append(f"{case['label']}: {status}: {why}")
    for f in failures:
        print("FAIL", f)
    print(f"halves: {len(cases)} cases; original not runnable in onnxruntime: {counts['original-unrunnable']}")
    print(f"{counts['pass']} passed, {counts['mismatch'] + counts['error']} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
