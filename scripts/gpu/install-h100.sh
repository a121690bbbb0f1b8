#!/usr/bin/env bash
# Runs on the lent H100: the whole user-side flow from a vendor release made by
# `gpulibs package --per-arch sm_90` (ONNX Runtime 1.31.1 from the official wheel, its CUDA
# provider thinned to sm_90), reusing the CUDA 13 and cuDNN 9 libraries of the machine's PyTorch
# virtual environment: detect, plan, install (offline: the archives sit next to the manifest;
# install verifies on the GPU before activating), status, env, then verify a larger model.
#
# usage: scripts/gpu/install-h100.sh CARRY RELEASE_DIR OUT
set -uo pipefail
carry=${1:?usage}; rel=${2:?usage}; out=${3:?usage}
mkdir -p "$out"
bin="$carry/gpulibs"
if [ ! -x "$bin" ] && [ -f "$bin.xz" ]; then
  python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$bin.xz" /tmp/gpulibs
  chmod +x /tmp/gpulibs; bin=/tmp/gpulibs
fi
# What `source .venv/bin/activate` does for gpulibs' purposes: name the environment.
export VIRTUAL_ENV=$(python3 -c 'import sys; print(sys.prefix)')
export GPULIBS_HOME=$(mktemp -d)
# A private HOME and TMPDIR, to show at the end that nothing was left in them (verify's profiler
# output, ONNX Runtime's telemetry files).
export HOME=$(mktemp -d) TMPDIR=$(mktemp -d)
step() {
  printf '\n== %s\n' "$*"
  left=$(find "$TMPDIR" "$HOME" -mindepth 1 -maxdepth 1 | tr '\n' ' ')
  if [ -n "$left" ]; then echo "(now there: $left)"; fi
}
step "gpulibs detect"; "$bin" detect --color never
step "gpulibs plan"; "$bin" plan --color never --manifest "$rel/manifest.toml" --allow-unsigned; echo "exit $?"
"$bin" plan --json --manifest "$rel/manifest.toml" --allow-unsigned > "$out/plan.json"
step "gpulibs install"
"$bin" install --color never --manifest "$rel/manifest.toml" --allow-unsigned 2>&1 | tee "$out/install.txt"; echo "exit ${PIPESTATUS[0]}"
step "gpulibs status"; "$bin" status --color never; echo "exit $?"
step "gpulibs env"; "$bin" env --format json | tee "$out/env.json"
step "gpulibs verify (probe, active install)"
"$bin" verify --json --device cuda:0 --runs 20 > "$out/verify-probe.json"; echo "exit $?"
if python3 -c 'import onnx, numpy' 2>/dev/null; then
  python3 scripts/gpu/make-large-model.py /tmp/large.onnx
  step "gpulibs verify (63 MB model, active install)"
  "$bin" verify --json --device cuda:0 --runs 20 --model /tmp/large.onnx > "$out/verify-large.json"; echo "exit $?"
fi
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
for name in ("verify-probe.json", "verify-large.json"):
    p = os.path.join(out, name)
    if not os.path.exists(p): continue
    r = json.load(open(p))
    print(f"-- {name}: {r['outcome']}")
    for m in r.get("models", []):
        print(f"   session {m['session_create_ms']:.1f} ms, first {m['first_run_ms']:.1f} ms, median {m['median_run_ms']:.3f} ms over {m['runs']}, "
              f"peak VRAM {m['peak_vram_bytes']}, max rel err {m['max_rel_error']:.2e} (threshold {m['threshold']}), nodes {m['nodes_by_provider']}")
PY
step "left in TMPDIR and HOME: $(find "$TMPDIR" "$HOME" -mindepth 1 | wc -l) entries"
find "$TMPDIR" "$HOME" -mindepth 1
