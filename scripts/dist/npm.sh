#!/usr/bin/env bash
# Fills the npm packages in packaging/npm with the version and the built binaries, and packs them
# (esbuild's pattern: `gpulibs` with a JS launcher, one optional dependency per platform).
#
#   scripts/dist/npm.sh [--target x86_64|aarch64|all]
#
# Needs target/dist/out/<triple>/gpulibs (scripts/dist/build.sh). Packs the main package and the
# platform package of each target given; out: target/dist/out/npm/*.tgz. Nothing is published.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=env.sh
source "$here/env.sh"
target=x86_64
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target=${2:?--target needs x86_64, aarch64 or all}; shift 2 ;;
    --target=*) target=${1#--target=}; shift ;;
    -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
command -v npm >/dev/null || { echo "npm.sh needs node and npm (Debian: apt-get install nodejs npm)" >&2; exit 2; }
version=$(dist_version)
stage=$DIST_DIR/npm-stage
out=$DIST_OUT/npm
rm -rf "$stage"
mkdir -p "$stage" "$out"

# Copies packaging/npm/NAME to the stage and sets its version (and the main package's optional
# dependencies) to this release's.
stage_pkg() {
  cp -R "$DIST_REPO/packaging/npm/$1" "$stage/$1"
  node -e '
    const fs = require("fs"), [file, version] = process.argv.slice(1);
    const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
    pkg.version = version;
    for (const dep of Object.keys(pkg.optionalDependencies || {})) pkg.optionalDependencies[dep] = version;
    fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n");
  ' "$stage/$1/package.json" "$version"
}

pack() {
  # npm pack gives every entry a fixed mtime, so the same files give the same tarball.
  (cd "$stage/$1" && npm pack --silent --pack-destination "$out" >/dev/null)
  echo "npm: $out/$1-$version.tgz ($(stat -c %s "$out/$1-$version.tgz") bytes)"
}

stage_pkg gpulibs
pack gpulibs
for triple in $(dist_targets "$target"); do
  case "$triple" in
    x86_64-*) pkg=gpulibs-linux-x64 ;;
    aarch64-*) pkg=gpulibs-linux-arm64 ;;
  esac
  binary=$DIST_OUT/$triple/gpulibs
  [ -f "$binary" ] || { echo "npm.sh: no binary at $binary: run scripts/dist/build.sh --target $triple first" >&2; exit 1; }
  stage_pkg "$pkg"
  mkdir -p "$stage/$pkg/bin"
  install -m 0755 "$binary" "$stage/$pkg/bin/gpulibs"
  pack "$pkg"
done
