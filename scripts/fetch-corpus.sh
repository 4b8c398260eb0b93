#!/usr/bin/env bash
# Fetch the ONNX backend-test models into corpus/onnx-backend/ (git-ignored).
#
# Downloads the onnx==1.22.0 wheel from PyPI with pip and extracts only
#   onnx/backend/test/data/{node,light,simple,pytorch-converted,pytorch-operator}/**
# so that e.g. corpus/onnx-backend/light/light_resnet50.onnx and
# corpus/onnx-backend/node/test_abs/model.onnx exist.
#
# Idempotent: does nothing if corpus/onnx-backend/.complete exists (delete it to refetch).
#
# Usage: scripts/fetch-corpus.sh [CORPUS_DIR]     (default: <repo>/corpus)
# Env:   NSPLIT_PYTHON (or PYTHON)  python interpreter with pip (default: python3)
set -euo pipefail

ONNX_VERSION=1.22.0
SUBDIRS=(node light simple pytorch-converted pytorch-operator)
PREFIX=onnx/backend/test/data

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
corpus="${1:-$repo/corpus}"
dest="$corpus/onnx-backend"
marker="$dest/.complete"
PYTHON="${NSPLIT_PYTHON:-${PYTHON:-python3}}"

if [[ -f "$marker" ]]; then
    echo "corpus already present: $dest (remove $marker to refetch)"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 1. Download: a manylinux wheel (the test data is identical in every wheel), then any
#    wheel pip picks for this interpreter, then the sdist.
dl() { "$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp/dl" "$@"; }
if dl --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 "onnx==$ONNX_VERSION" ||
    dl --only-binary=:all: "onnx==$ONNX_VERSION" ||
    dl --no-binary=:all: "onnx==$ONNX_VERSION"; then
    :
else
    echo "error: could not download onnx==$ONNX_VERSION with '$PYTHON -m pip download'" >&2
    exit 1
fi
archive="$(find "$tmp/dl" -maxdepth 1 -type f \( -name 'onnx-*.whl' -o -name 'onnx-*.tar.gz' \) | head -n 1)"
if [[ -z "$archive" ]]; then
    echo "error: pip download produced no onnx archive in $tmp/dl" >&2
    exit 1
fi
echo "downloaded $(basename "$archive")"

# 2. Extract only the wanted directories into $tmp/x/<subdir>/.
mkdir -p "$tmp/x"
if [[ "$archive" == *.whl ]] && command -v unzip >/dev/null 2>&1; then
    patterns=()
    for d in "${SUBDIRS[@]}"; do patterns+=("$PREFIX/$d/*"); done
    unzip -q "$archive" "${patterns[@]}" -d "$tmp/unz"
    for d in "${SUBDIRS[@]}"; do
        if [[ -d "$tmp/unz/$PREFIX/$d" ]]; then mv "$tmp/unz/$PREFIX/$d" "$tmp/x/$d"; fi
    done
else
    # No unzip (or an sdist): use Python's zipfile/tarfile. Paths are checked to stay inside.
    "$PYTHON" - "$archive" "$tmp/x" "$PREFIX" "${SUBDIRS[@]}" <<'EOF'
import os, sys, tarfile, zipfile

archive, out, prefix, subdirs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
wanted = tuple(f"{prefix}/{d}/" for d in subdirs)

def target(name):
    # Wheels hold onnx/...; sdists hold onnx-X.Y.Z/onnx/...
    i = name.find(prefix + "/")
    if i < 0 or not name[i:].startswith(wanted):
        return None
    rel = name[i + len(prefix) + 1:]
    path = os.path.normpath(os.path.join(out, rel))
    if not path.startswith(os.path.abspath(out) + os.sep) and not path.startswith(out + os.sep):
        raise SystemExit(f"refusing unsafe path in archive: {name}")
    return path

def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)

if archive.endswith(".whl"):
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            p = target(info.filename)
            if p and not info.is_dir():
                write(p, z.read(info))
else:
    with tarfile.open(archive) as t:
        for m in t.getmembers():
            p = target(m.name)
            if p and m.isfile():
                write(p, t.extractfile(m).read())
EOF
fi

# 3. Install atomically-ish: replace any partial previous attempt.
found=0
for d in "${SUBDIRS[@]}"; do
    if [[ -d "$tmp/x/$d" ]]; then found=1; else echo "warning: $PREFIX/$d not in $(basename "$archive")" >&2; fi
done
if [[ "$found" == 0 ]]; then
    echo "error: no backend test data found in $(basename "$archive")" >&2
    exit 1
fi
mkdir -p "$corpus"
rm -rf "$dest"
mv "$tmp/x" "$dest"
echo "onnx==$ONNX_VERSION $(basename "$archive")" >"$marker"
echo "corpus ready: $dest ($(find "$dest" -name '*.onnx' | wc -l) .onnx files, $(du -sh "$dest" | cut -f1))"
