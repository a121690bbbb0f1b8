#!/usr/bin/env bash
# Installs what scripts/dist/{build,npm}.sh built the way users install it, from the local
# files only, and runs gpulibs through each installed command:
#   - the release archive: `sha256sum -c`, unpack;
#   - the wheel: pip install into a fresh venv (--no-index: nothing from an index);
#   - the npm packages: `npm install --offline` of the local tarballs into a temporary project with
#     an empty cache, run through node_modules/.bin/gpulibs (the JS launcher).
# Each runs `gpulibs --version` (must print the workspace version), `inspect` of an ELF file,
# `detect` and `plan` (the main
# job's first steps; without an NVIDIA driver detect exits 3 and plan chooses the CPU runtime; with
# one, detect must find its GPUs),
# and, given a fake NVML (--fake-nvml LIB), `detect`/`plan` through the binary's own dlopen of NVML
# with an H100 scenario. --install also runs the main job itself (`gpulibs install`: pip and a
# download of the CPU ONNX Runtime wheel), `env` and `verify` (ONNX Runtime dlopened by the portable
# binary, the probe model run on the CPU: exit 4) through the wheel's command; needs no GPU.
#
#   scripts/dist/smoke.sh [--target x86_64|aarch64] [--fake-nvml LIB] [--install] [--runner CMD]
#
# --runner runs the binaries under CMD (qemu-aarch64-static for aarch64 on an x86_64 host); with a
# runner only the archive's binary is run (a venv or npm cannot pick a foreign-arch package).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=env.sh
source "$here/env.sh"
target=x86_64 fake_nvml='' full_install=0 runner=''
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target=${2:?}; shift 2 ;;
    --fake-nvml) fake_nvml=${2:?--fake-nvml needs the path of libgpulibs_fake_nvml.so}; shift 2 ;;
    --install) full_install=1; shift ;;
    --runner) runner=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
triple=$(dist_triple "$target")
version=$(dist_version)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# gpulibs writes only under GPULIBS_HOME here, never in the user's data directory.
export GPULIBS_HOME=$tmp/home
export NO_COLOR=1
# Whether this machine has an NVIDIA driver (then detect must find its GPUs instead of none).
gpu_here=0
{ [ -e /proc/driver/nvidia ] || command -v nvidia-smi >/dev/null; } && gpu_here=1

fail() { echo "SMOKE FAIL: $*" >&2; exit 1; }
# expect_rc WANT... -- CMD...: runs CMD, fails unless its exit status is one of WANT.
expect_rc() {
  local want=() rc=0
  while [ "$1" != -- ]; do want+=("$1"); shift; done
  shift
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  for w in "${want[@]}"; do [ "$rc" = "$w" ] && return 0; done
  cat "$tmp/out" "$tmp/err" >&2
  fail "$* exited $rc, expected ${want[*]}"
}

# check NAME CMD...: the checks every installed command must pass.
check() {
  local name=$1
  shift
  local t0 got
  t0=$(date +%s%N)
  got=$("$@" --version) || fail "$name: $* --version failed"
  # The first line starts with `gpulibs <workspace version>` (more facts may follow it).
  case "$(printf '%s\n' "$got" | head -1)" in
    "gpulibs $version" | "gpulibs $version "*) ;;
    *) fail "$name: --version printed '$got', expected a first line 'gpulibs $version'" ;;
  esac
  if [ "$gpu_here" = 0 ]; then
    # No NVIDIA driver here: detect says so (exit 3 = no usable GPU), plan picks the CPU runtime.
    expect_rc 3 -- "$@" detect --json
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["gpus"] == [], d' "$tmp/out" \
      || fail "$name: detect --json on a machine without an NVIDIA driver listed GPUs"
    expect_rc 0 -- "$@" plan
    grep -q 'cpu (CPU): chosen' "$tmp/out" || { cat "$tmp/out"; fail "$name: plan without a GPU did not choose the CPU runtime"; }
  else
    # A real driver: the binary's dlopen of the real NVML must find the GPUs.
    expect_rc 0 -- "$@" detect --json
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["gpus"], d; print("     detect:", d["gpus"][0]["name"], "cc", d["gpus"][0].get("compute_capability"))' "$tmp/out" \
      || fail "$name: detect --json found no GPU on a machine with an NVIDIA driver"
    expect_rc 0 -- "$@" plan
    grep -q ': chosen' "$tmp/out" || { cat "$tmp/out"; fail "$name: plan chose nothing"; }
  fi
  # inspect reads an ELF file (the archive's gpulibs binary: no GPU code in it).
  expect_rc 0 -- "$@" inspect --no-deps --json "$bin_file"
  python3 -c '
import json, sys
files = json.load(open(sys.argv[1]))["files"]
assert [(f["format"], f["containers"]) for f in files] == [("elf", 0)], files
' "$tmp/out" || { cat "$tmp/out"; fail "$name: inspect of the gpulibs binary"; }
  if [ -n "$fake_nvml" ]; then
    # The portable binary dlopens NVML like the native one: the fake answers with an H100.
    local scen=$DIST_REPO/crates/gpulibs-fake-nvml/scenarios/h100.json
    expect_rc 0 -- env GPULIBS_NVML_LIBRARY="$fake_nvml" GPULIBS_FAKE_NVML="$scen" "$@" detect
    grep -q 'NVIDIA H100 80GB HBM3 .*sm_90' "$tmp/out" || { cat "$tmp/out"; fail "$name: detect with the fake NVML did not show the H100"; }
    expect_rc 0 -- env GPULIBS_NVML_LIBRARY="$fake_nvml" GPULIBS_FAKE_NVML="$scen" "$@" plan
    grep -q 'chosen, native SASS for sm_90' "$tmp/out" || { cat "$tmp/out"; fail "$name: plan for the fake H100 chose no native build"; }
  fi
  echo "ok   $name: --version, detect, plan, inspect$([ -n "$fake_nvml" ] && echo ', detect/plan with the fake NVML') ($((($(date +%s%N) - t0) / 1000000)) ms)"
}

# 1. The release archive.
archive=$DIST_OUT/gpulibs-$version-$triple.tar.gz
[ -f "$archive" ] || fail "no archive $archive: run scripts/dist/build.sh --target $target"
(cd "$DIST_OUT" && sha256sum -c --quiet "$(basename "$archive").sha256") || fail "sha256 of $archive does not match"
tar -xzf "$archive" -C "$tmp"
bin_file=$tmp/gpulibs-$version-$triple/gpulibs
if [ -n "$runner" ]; then
  # qemu-user finds the target's loader and libc under QEMU_LD_PREFIX (Debian: libc6-arm64-cross).
  if [ -z "${QEMU_LD_PREFIX:-}" ] && [ -d "/usr/${triple%%-*}-linux-gnu" ]; then export QEMU_LD_PREFIX=/usr/${triple%%-*}-linux-gnu; fi
  fake_nvml=''
  check "archive ($triple, under $runner)" $runner "$tmp/gpulibs-$version-$triple/gpulibs"
  exit 0
fi
check "archive ($triple)" "$tmp/gpulibs-$version-$triple/gpulibs"

# 2. The wheel, into a fresh venv.
arch=${triple%%-*}
wheel=$(ls "$DIST_OUT"/wheels/gpulibs-"$version"-*manylinux2014_"$arch".*whl 2>/dev/null | head -1)
[ -n "$wheel" ] || fail "no wheel for $arch in $DIST_OUT/wheels: run scripts/dist/build.sh --target $target"
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check --no-index "$wheel"
[ -x "$tmp/venv/bin/gpulibs" ] || fail "pip install $wheel did not give $tmp/venv/bin/gpulibs"
check "wheel ($(basename "$wheel"))" "$tmp/venv/bin/gpulibs"

# 3. The npm packages, into a temporary project, offline, with an empty cache. The project depends
# on `gpulibs` only; npm must bring the platform package in through gpulibs' optional dependencies
# (`overrides` points those at the local tarballs, as a registry would serve them) and skip the
# packages whose `cpu` does not fit.
case "$arch" in x86_64) npm_pkg=gpulibs-linux-x64 ;; aarch64) npm_pkg=gpulibs-linux-arm64 ;; esac
[ -f "$DIST_OUT/npm/$npm_pkg-$version.tgz" ] || fail "no $DIST_OUT/npm/$npm_pkg-$version.tgz: run scripts/dist/npm.sh --target $target"
mkdir -p "$tmp/app"
(cd "$tmp/app" && node -e '
  const fs = require("fs"), [dir, version] = process.argv.slice(1);
  const overrides = {};
  for (const f of fs.readdirSync(dir)) {
    const m = f.match(/^(gpulibs-linux-[a-z0-9]+)-(.*)\.tgz$/);
    if (m && m[2] === version) overrides[m[1]] = `file:${dir}/${f}`;
  }
  const pkg = { name: "smoke-app", version: "1.0.0", private: true,
    dependencies: { gpulibs: `file:${dir}/gpulibs-${version}.tgz` }, overrides };
  fs.writeFileSync("package.json", JSON.stringify(pkg, null, 2));
' "$DIST_OUT/npm" "$version")
(
  cd "$tmp/app"
  npm install --offline --no-audit --no-fund --loglevel=error --cache "$tmp/npm-cache" >/dev/null
) || fail "npm install --offline of the local packages failed"
[ -d "$tmp/app/node_modules/$npm_pkg" ] || fail "npm did not install $npm_pkg through gpulibs' optional dependencies"
for other in "$DIST_OUT"/npm/gpulibs-linux-*-"$version".tgz; do
  other=$(basename "$other" "-$version.tgz")
  [ "$other" = "$npm_pkg" ] || [ ! -d "$tmp/app/node_modules/$other" ] || fail "npm installed $other on $arch (its cpu field should exclude it)"
done
check "npm (gpulibs + $npm_pkg)" "$tmp/app/node_modules/.bin/gpulibs"
# The launcher's own failure: without the platform package it names the platform and the fix.
rm -rf "$tmp/app/node_modules/$npm_pkg"
rc=0
"$tmp/app/node_modules/.bin/gpulibs" --version >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -q "($(node -p 'process.platform + "-" + process.arch')), $npm_pkg, is not installed" "$tmp/err" \
  || { cat "$tmp/err" >&2; fail "npm launcher without $npm_pkg: exit $rc, expected 1 and a message naming the platform"; }
echo "ok   npm launcher without $npm_pkg: $(cat "$tmp/err")"
# No build for the platform (darwin-arm64 stands in for any) and a bad override: errors naming them.
(cd "$tmp/app" && node -e '
  const assert = require("assert");
  Object.defineProperty(process, "platform", { value: "darwin" });
  Object.defineProperty(process, "arch", { value: "arm64" });
  const { binaryPath } = require("gpulibs");
  assert.throws(binaryPath, /no prebuilt binary for this platform \(darwin-arm64\); there are binaries for linux-x64 and linux-arm64/);
  process.env.GPULIBS_BINARY_PATH = "/nonexistent/gpulibs";
  assert.throws(binaryPath, /GPULIBS_BINARY_PATH is set to \/nonexistent\/gpulibs, which does not exist/);
') || fail "npm launcher: errors for another platform or a missing GPULIBS_BINARY_PATH"
GPULIBS_BINARY_PATH=$bin_file "$tmp/app/node_modules/.bin/gpulibs" --version | head -1 | grep -q "^gpulibs $version\( \|$\)" \
  || fail "npm launcher: GPULIBS_BINARY_PATH did not run that binary"
echo "ok   npm launcher: darwin-arm64 and a missing GPULIBS_BINARY_PATH are refused by name; GPULIBS_BINARY_PATH runs the binary given"

# 4. The main job itself, through the wheel's command (network: pip and the CPU runtime's wheel).
if [ "$full_install" = 1 ]; then
  t0=$(date +%s)
  expect_rc 0 -- "$tmp/venv/bin/gpulibs" install
  tail -5 "$tmp/out"
  expect_rc 0 -- "$tmp/venv/bin/gpulibs" env
  grep -q 'ORT_DYLIB_PATH' "$tmp/out" || fail "gpulibs env after install names no ORT_DYLIB_PATH"
  # verify dlopens the installed ONNX Runtime from the portable binary and runs the probe model;
  # without a GPU that is the CPU only: exit 4 (with one, 0 = verified on the GPU).
  if [ "$gpu_here" = 0 ]; then want_verify=4; else want_verify=0; fi
  expect_rc "$want_verify" -- "$tmp/venv/bin/gpulibs" verify
  tail -3 "$tmp/out"
  echo "ok   wheel: gpulibs install (CPU runtime), env, verify on the CPU ($(($(date +%s) - t0)) s)"
fi
