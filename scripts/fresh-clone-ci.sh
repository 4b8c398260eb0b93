#!/usr/bin/env bash
# Prove that CI works on a machine that has never seen the project: clone the committed HEAD
# into a new temporary folder and run `.ci/run` there, with an empty target folder and none of
# the variables a developer's shell may carry. Prints the wall time, build included.
#
# Usage: scripts/fresh-clone-ci.sh [--keep]
#   --keep   leave the clone (and its log) behind for inspection; by default it is removed
#            on success and kept on failure.
# Only committed work is tested: commit first.
set -euo pipefail

keep=0
[[ "${1:-}" == "--keep" ]] && keep=1

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/nsplit-fresh-XXXXXX")"
clone="$work/nsplit"
log="$work/ci.log"

git clone --quiet --no-hardlinks "$repo" "$clone"
echo "fresh clone of $(git -C "$clone" rev-parse --short HEAD) in $clone; log: $log"
if [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]]; then
    echo "note: the working tree has uncommitted changes; they are not in the clone"
fi

start=$(date +%s)
set +e
(
    cd "$clone"
    exec env -u NSPLIT_PYTHON -u PYTHON -u NSPLIT_CORPUS -u NSPLIT_REQUIRE_CORPUS \
        -u CARGO_TARGET_DIR -u VIRTUAL_ENV -u UPDATE_GOLDEN -u ORT_DYLIB_PATH -u ORT_LOG \
        -u NSPLIT_KEEP_HALVES -u NSPLIT_TRITON_PYTHON CI=true bash .ci/run
) >"$log" 2>&1
status=$?
set -e
elapsed=$(($(date +%s) - start))

grep -E '^test result:|Running |FAILED|panicked' "$log" | tail -n 40 || true
printf 'fresh-clone .ci/run: exit %d after %dm%02ds (%d s)\n' "$status" $((elapsed / 60)) $((elapsed % 60)) "$elapsed"
if [[ "$status" == 0 && "$keep" == 0 ]]; then
    rm -rf "$work"
else
    echo "kept: $work"
fi
exit "$status"
