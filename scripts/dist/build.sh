#!/usr/bin/env bash
# Builds portable `gpulibs` release binaries for Linux with glibc >= 2.17 (the manylinux2014
# baseline), checks their glibc symbol versions, and packs every release artifact of each target
# from ONE cargo build:
#   - the wheel (maturin `bindings = "bin"`, packaging/python/pyproject.toml, linked with zig
#     against glibc 2.17, tagged manylinux2014),
#   - the binary, taken out of that wheel byte for byte (target/dist/out/<triple>/gpulibs),
#   - the release archive gpulibs-<version>-<triple>.tar.gz and its .sha256 (archive.sh).
# The npm packages are packed from the same binary by npm.sh.
#
#   scripts/dist/build.sh [--target x86_64|aarch64|all] [--no-archive]
#
# Tools are pinned in scripts/dist/env.sh (pip installs them into target/dist/tools); the build is
# --locked, with SOURCE_DATE_EPOCH = the commit time and this checkout's paths remapped, in its own
# target dir (target/dist/cargo), so a second run of one commit compiles nothing and gives the same
# bytes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=env.sh
source "$here/env.sh"

target=x86_64
archive=1
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target=${2:?--target needs x86_64, aarch64 or all}; shift 2 ;;
    --target=*) target=${1#--target=}; shift ;;
    --no-archive) archive=0; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
triples=$(dist_targets "$target")
version=$(dist_version)

dist_tools
for triple in $triples; do
  dist_need_std "$triple"
  arch=${triple%%-*}
  wheels=$DIST_OUT/wheels
  mkdir -p "$wheels" "$DIST_OUT/$triple"
  rm -f "$wheels"/gpulibs-"$version"-*manylinux2014_"$arch".*whl
  echo "==> maturin build --zig --compatibility manylinux2014 --target $triple (target dir $CARGO_TARGET_DIR)"
  start=$(date +%s)
  (cd "$DIST_REPO/packaging/python" &&
    maturin build --release --locked --zig --compatibility manylinux2014 --target "$triple" --out "$wheels")
  echo "built in $(($(date +%s) - start)) s"
  wheel=$(ls "$wheels"/gpulibs-"$version"-*manylinux2014_"$arch".*whl)
  # The binary of the archive and the npm package is the wheel's, so all three ship the same bytes.
  python3 - "$wheel" "$DIST_OUT/$triple/gpulibs" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith(".data/scripts/gpulibs")]
    if len(names) != 1:
        sys.exit(f"{wheel}: expected one *.data/scripts/gpulibs, found {names}")
    with open(dest, "wb") as f:
        f.write(z.read(names[0]))
PY
  chmod 0755 "$DIST_OUT/$triple/gpulibs"
  bash "$here/check-glibc.sh" --max "$DIST_GLIBC" "$DIST_OUT/$triple/gpulibs"
  echo "wheel: $wheel ($(stat -c %s "$wheel") bytes)"
  echo "binary: $DIST_OUT/$triple/gpulibs ($(stat -c %s "$DIST_OUT/$triple/gpulibs") bytes)"
  if [ "$archive" = 1 ]; then
    bash "$here/archive.sh" "$triple" "$DIST_OUT/$triple/gpulibs"
  fi
done
