#!/usr/bin/env python3
"""Check emitted head/tail pairs with the official onnx checker and onnxruntime.

Usage:  check_halves.py MANIFEST.json
The manifest (written by the Rust tests) is a list of cases:
  {"label": str, "original": path, "head": path|null, "tail": path|null,
   "inputs": dir-with-input_N.pb|null, "shapes": {input: dims}?, "points": [{input: dims}, ...]?}
For every case: each half passes onnx.checker.check_model(full_check=True) and loads in
onnxruntime; then head-then-tail is run on the recorded inputs (or seeded random ones) and every
original output must match the original's (float32/64: rtol 1e-4, atol 1e-5; float16 and
bfloat16: rtol 1e-3, atol 1e-3, i.e. one unit in the last place, as the onnx backend tests allow;
other types exactly).
With "points" (a model with symbolic input dims), the pair is composed at each point (e.g. batch 1
and batch 3), and every input and output a half declares is checked against the shapes seen:
a dim_value must equal the size at every point (a frozen dim fails), a dim whose size moves
exactly as one symbolic input dim of the original (2 -> 5 as `batch`) must be declared as that
dim_param, and a dim declared as one of the original's dim_params must have its sizes.
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


def declared_dims(vi):
    """(kind, value) per dim of a value_info: ("value", n), ("param", name) or ("open", None)."""
    dims = []
    for d in vi.type.tensor_type.shape.dim:
        kind = d.WhichOneof("value")
        dims.append(("value", d.dim_value) if kind == "dim_value" else
                    ("param", d.dim_param) if kind == "dim_param" else ("open", None))
    return dims


def symbols_of(original, points):
    """{dim_param: (size at each point)} for the original's symbolic input dims."""
    symbols = {}
    for vi in original.graph.input:
        for axis, (kind, name) in enumerate(declared_dims(vi)):
            if kind == "param" and all(vi.name in p for p in points):
                symbols.setdefault(name, tuple(p[vi.name][axis] for p in points))
    return symbols


def check_declarations(half_path, seen, symbols):
    """Every input/output the half declares agrees with the shapes seen at every point."""
    half = onnx.load(half_path, load_external_data=False)
    problems = []
    for vi in list(half.graph.input) + list(half.graph.output):
        if vi.name not in seen[0] or not vi.type.HasField("tensor_type"):
            continue
        shapes = [np.shape(values[vi.name]) for values in seen]
        dims = declared_dims(vi)
        if not vi.type.tensor_type.HasField("shape"):
            continue
        if any(len(s) != len(dims) for s in shapes):
            problems.append(f"{vi.name}: declared rank {len(dims)}, ran with {shapes}")
            continue
        for axis, (kind, value) in enumerate(dims):
            sizes = tuple(s[axis] for s in shapes)
            named = [n for n, v in symbols.items() if v == sizes]
            if kind == "value" and any(v != value for v in sizes):
                problems.append(f"{vi.name} axis {axis}: declared {value}, ran at {sizes} (frozen)")
            elif kind == "param" and value in symbols and symbols[value] != sizes:
                problems.append(f"{vi.name} axis {axis}: declared `{value}` {symbols[value]}, ran at {sizes}")
            elif len(set(sizes)) > 1 and len(named) == 1 and (kind, value) != ("param", named[0]):
                problems.append(f"{vi.name} axis {axis}: moves as `{named[0]}` {sizes} but is declared {kind} {value}")
    return problems


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
    points = case.get("points") or [case.get("shapes", {})]
    seen = []
    for k, shapes in enumerate(points):
        if case.get("inputs") and k == 0:
            values = recorded_inputs(original, case["inputs"])
        else:
            values = random_inputs(orig, rng, shapes)
        try:
            want = run(orig, values)
        except Exception as e:  # noqa: BLE001
            return "original-unrunnable", str(e).splitlines()[0]
        for s in sessions:
            values.update(run(s, values))
        bad = [n for n, v in want.items() if n not in values or not same(v, values[n])]
        if bad:
            return "mismatch", f"outputs differ at {shapes}: {bad}"
        seen.append(values)
    if case.get("points"):
        symbols = symbols_of(original, case["points"])
        problems = [p for h in halves for p in check_declarations(h, seen, symbols)]
        if problems:
            return "mismatch", "; ".join(problems[:5])
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
