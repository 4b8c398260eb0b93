#!/usr/bin/env python3
"""Write src/ops/schemas.json: every ONNX operator schema of the pinned onnx release.

nsplit checks each node against its schema (attribute names and types, required attributes,
input and output counts, single inputs left empty) the way onnx's checker does, without Python
at run time. One schema per line, sorted, so a new onnx release reads as a plain diff:

    [domain, op, since_version, deprecated, {attribute: [type, required]},
     [input options], min_in, max_in, [output options], min_out, max_out,
     [input type parameters], {type parameter: [tensor element types] or null},
     [output type parameters]]

The header gives the newest opset of each domain in this release: a model importing a newer one
was written by a newer onnx, and its nodes are not checked against these schemas.

Options are "s" (single), "o" (optional), "v" (variadic), "V" (variadic of mixed types). An
input's type parameter is a constraint name (`T`) or a fixed type (`tensor(int64)`); a
constraint lists the tensor element types (TensorProto.DataType numbers) it allows, or is null
where it allows no tensor (sequences, maps), which nsplit does not check. Run with the pinned onnx
(scripts/requirements.txt): `.venv/bin/python scripts/gen_op_schemas.py [OUT]`.
"""
import json
import os
import sys

import onnx
from onnx import defs

OPTION = {
    defs.OpSchema.FormalParameterOption.Single: "s",
    defs.OpSchema.FormalParameterOption.Optional: "o",
    defs.OpSchema.FormalParameterOption.Variadic: "v",
}
BIG = 2**31 - 1


def elem_type(type_str):
    """`tensor(float16)` -> 10; None for a non-tensor type."""
    if not (type_str.startswith("tensor(") and type_str.endswith(")")):
        return None
    return int(getattr(onnx.TensorProto, type_str[len("tensor("):-1].upper()))


def constraints(s):
    out = {}
    for c in s.type_constraints:
        types = [elem_type(t) for t in c.allowed_type_strs]
        tensors = sorted({t for t in types if t is not None})
        out[c.type_param_str] = tensors or None
    # A formal parameter with a fixed type (`tensor(int64)`) is its own constraint.
    for p in list(s.inputs) + list(s.outputs):
        if p.type_str not in out:
            t = elem_type(p.type_str)
            out[p.type_str] = None if t is None else [t]
    return dict(sorted(out.items()))


def option(p):
    o = OPTION[p.option]
    return "V" if o == "v" and not p.is_homogeneous else o


def row(s):
    attrs = {n: [int(a.type.value), bool(a.required)] for n, a in sorted(s.attributes.items())}
    return [
        s.domain,
        s.name,
        s.since_version,
        bool(s.deprecated),
        attrs,
        [option(i) for i in s.inputs],
        s.min_input,
        min(s.max_input, BIG),
        [option(o) for o in s.outputs],
        s.min_output,
        min(s.max_output, BIG),
        [i.type_str for i in s.inputs],
        constraints(s),
        [o.type_str for o in s.outputs],
    ]


def main():
    default = os.path.join(os.path.dirname(__file__), "..", "src", "ops", "schemas.json")
    out = sys.argv[1] if len(sys.argv) > 1 else default
    rows = sorted(
        (row(s) for s in defs.get_all_schemas_with_history()),
        key=lambda r: (r[0], r[1], r[2]),
    )
    text = "[\n" + ",\n".join(json.dumps(r, separators=(",", ":")) for r in rows) + "\n]\n"
    opsets = {}
    for r in rows:
        opsets[r[0]] = max(opsets.get(r[0], 1), r[2])
    # The release's own opset numbers, where onnx lists them (an opset may add no new op).
    release = onnx.helper.VERSION_TABLE[-1]
    opsets[""] = max(opsets[""], release[2])
    opsets["ai.onnx.ml"] = max(opsets.get("ai.onnx.ml", 1), release[3])
    header = {"onnx": onnx.__version__, "schemas": len(rows), "opsets": dict(sorted(opsets.items()))}
    with open(out, "w") as f:
        f.write('{"source":' + json.dumps(header) + ',"rows":' + text + "}\n")
    print(f"wrote {len(rows)} schemas of onnx {onnx.__version__} to {os.path.normpath(out)}")


if __name__ == "__main__":
    sys.exit(main())
