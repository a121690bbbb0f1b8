#!/usr/bin/env bash
# Builds the `gpulibs` wheel (maturin `bindings = "bin"`, packaging/python/pyproject.toml), tagged
# manylinux2014 and linked with zig against glibc 2.17, then checks the binary inside it.
#
#   scripts/dist/wheel.sh [--target x86_64|aarch64|all]
#
# Out: target/dist/out/wheels/gpulibs-<version>-py3-none-manylinux_2_17_<arch>.manylinux2014_<arch>.whl
# It shares scripts/dist/build.sh's target dir and settings, so after build.sh cargo has little or
# nothing left to compile.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=env.sh
source "$here/env.sh"
target=x86_64
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target=${2:?--target needs x86_64, aarch64 or all}; shift 2 ;;
    --target=*) target=${1#--target=}; shift ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
dist_tools
out=$DIST_OUT/wheels
mkdir -p "$out"
cd "$DIST_REPO/packaging/python"
for triple in $(dist_targets "$target"); do
  dist_need_std "$triple"
  start=$(date +%s)
  maturin build --release --locked --zig --compatibility manylinux2014 --target "$triple" --out "$out"
  echo "wheel built in $(($(date +%s) - start)) s"
  arch=${triple%%-*}
  wheel=$(ls -t "$out"/gpulibs-"$(dist_version)"-*manylinux2014_"$arch".whl | head -1)
  # The binary in the wheel must meet the same glibc bound as the release archive's.
  check=$(mktemp -d)
  python3 -m zipfile -e "$wheel" "$check"
  bash "$here/check-glibc.sh" --max "$DIST_GLIBC" "$check"/gpulibs-*.data/scripts/gpulibs
  rm -rf "$check"
  echo "wheel: $wheel ($(stat -c %s "$wheel") bytes)"
done
