#!/usr/bin/env bash
# Builds portable `gpulibs` release binaries (glibc >= 2.17, the manylinux2014 baseline) with
# cargo-zigbuild, checks their glibc symbol versions, and packs the release archives.
#
#   scripts/dist/build.sh [--target x86_64|aarch64|all] [--no-archive]
#
# Out: target/dist/out/<triple>/gpulibs, target/dist/out/gpulibs-<version>-<triple>.tar.gz(.sha256).
# Tools are pinned in scripts/dist/env.sh; the build is --locked, with SOURCE_DATE_EPOCH = the commit
# time and this checkout's paths remapped, so two builds of one commit give the same bytes.
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
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
triples=$(dist_targets "$target")

dist_tools
cd "$DIST_REPO"
for triple in $triples; do
  dist_need_std "$triple"
  echo "==> cargo zigbuild $triple.$DIST_GLIBC (target dir $CARGO_TARGET_DIR)"
  start=$(date +%s)
  cargo zigbuild --release --locked -p gpulibs-cli --bin gpulibs --target "$triple.$DIST_GLIBC"
  echo "built in $(($(date +%s) - start)) s"
  mkdir -p "$DIST_OUT/$triple"
  cp "$CARGO_TARGET_DIR/$triple/release/gpulibs" "$DIST_OUT/$triple/gpulibs"
  bash "$here/check-glibc.sh" --max "$DIST_GLIBC" "$DIST_OUT/$triple/gpulibs"
  if [ "$archive" = 1 ]; then
    bash "$here/archive.sh" "$triple" "$DIST_OUT/$triple/gpulibs"
  fi
done
