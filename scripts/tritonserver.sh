#!/usr/bin/env bash
# Start Triton Inference Server (from the nvidia-pytriton wheel) with its Python backend, for a
# repository nsplit wrote with --triton-backend python. The tests start the server this way;
# docs/deploy.md shows it by hand.
#
#   scripts/tritonserver.sh --model-repository REPO [tritonserver options...]
#
# The server's Python is $NSPLIT_TRITON_PYTHON, else .venv-triton/bin/python (made by .ci/run:
# python3 -m venv .venv-triton && .venv-triton/bin/pip install -r scripts/requirements-triton.txt
# && .venv-triton/bin/pip install --no-deps -r scripts/requirements-tritonserver.txt).
# The script ends by exec'ing tritonserver: its pid is the server's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${NSPLIT_TRITON_PYTHON:-$root/.venv-triton/bin/python}
if [[ ! -x $python ]]; then
    echo "error: no Python at $python for the Triton server; set it up as the head of scripts/tritonserver.sh says" >&2
    exit 2
fi
read -r site version < <("$python" -c 'import sys, sysconfig; print(sysconfig.get_paths()["purelib"], "%d.%d" % sys.version_info[:2])')
dist=$site/pytriton/tritonserver
if [[ ! -x $dist/bin/tritonserver ]]; then
    echo "error: $python has no nvidia-pytriton (pip install --no-deps -r scripts/requirements-tritonserver.txt)" >&2
    exit 2
fi
stub=$dist/python_backend_stubs/$version/triton_python_backend_stub
if [[ ! -x $stub ]]; then
    echo "error: nvidia-pytriton has no Python-backend stub for Python $version" >&2
    exit 2
fi
# Triton runs the stub found beside libtriton_python.so; the wheel keeps one stub per Python
# version elsewhere. A backend folder of our own in the venv, with the stub for this Python.
backends=$(dirname "$(dirname "$python")")/nsplit-triton-backends
mkdir -p "$backends/python"
for f in "$dist"/backends/python/libtriton_python.so "$dist"/backends/python/triton_python_backend_utils.py "$stub"; do
    # Copied under a temporary name and renamed: a running server may have the old one loaded.
    dest=$backends/python/$(basename "$f")
    cmp -s "$f" "$dest" || { cp "$f" "$dest.tmp.$$" && mv -f "$dest.tmp.$$" "$dest"; }
done
# The stub's embedded Python finds the venv's packages (numpy, onnxruntime) through PATH, and
# the server's bundled libraries through LD_LIBRARY_PATH (the copied stub's rpath no longer
# reaches them).
export PATH="$(dirname "$python"):$PATH"
export LD_LIBRARY_PATH="$site/nvidia_pytriton.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$dist/bin/tritonserver" --backend-directory "$backends" --allow-grpc false --allow-metrics false "$@"
