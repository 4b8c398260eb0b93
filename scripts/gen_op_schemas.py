#!/usr/bin/env python3
"""Write src/ops/schemas.json: every ONNX operator schema of the pinned onnx release.

nsplit checks each node against its schema (attribute names and types, required attributes,
input and output counts, single inputs left empty) the way onnx's checker does, without Python
at run time. One schema per line, sorted, so a new onnx release reads as a plain diff:

    [domain, op, since_version, deprecated, {attribute: [type, required]},
     [input options], min_in, max_in, [output options], min_out, max_out]

The header gives the newest opset of each domain in this release: a model importing a newer one
was written by a newer onnx, and its nodes are not checked against these schemas.

Options are "s" (single), "o" (optional), "v" (variadic). Run with the pinned onnx
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


def row(s):
    attrs = {n: [int(a.type.value), bool(a.required)] for n, a in sorted(s.attributes.items())}
    return [
        s.domain,
        s.name,
        s.since_version,
        bool(s.deprecated),
        attrs,
        [OPTION[i.option] for i in s.inputs],
        s.min_input,
        min(s.max_input, BIG),
        [OPTION[o.option] for o in s.outputs],
        s.min_output,
        min(s.max_output, BIG),
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
