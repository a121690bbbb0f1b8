#!/usr/bin/env bash
# Runs on the lent H100: `gpulibs inspect` and `gpulibs verify` of ONNX Runtime 1.31.1 with a CUDA
# provider thinned to one architecture (`gpulibs package` thinning), reusing the CUDA 13 and
# cuDNN 9 libraries of the machine's PyTorch environment. Everything it needs is carried:
#
#   CARRY/gpulibs (or gpulibs.xz)                 release binary (x86_64)
#   CARRY/libonnxruntime.so.1.31.1.xz             ORT core from the onnxruntime-gpu wheel
#   CARRY/libonnxruntime_providers_shared.so
#   CARRY/PROVIDER_DIR/libonnxruntime_providers_cuda.so.xz   the thinned provider
#
# usage: scripts/gpu/verify-h100.sh CARRY PROVIDER_DIR OUT [expect-pass|expect-fail]
set -uo pipefail
carry=${1:?usage}; provider=${2:?usage}; out=${3:?usage}; expect=${4:-expect-pass}
mkdir -p "$out"
bin="$carry/gpulibs"
if [ ! -x "$bin" ] && [ -f "$bin.xz" ]; then
  python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$bin.xz" /tmp/gpulibs
  chmod +x /tmp/gpulibs; bin=/tmp/gpulibs
fi
site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
cu="$site/nvidia/cu13/lib"; dnn="$site/nvidia/cudnn/lib"
ort=$(mktemp -d)
python3 - "$carry" "$provider" "$ort" <<'PY'
import lzma, shutil, sys
carry, provider, ort = sys.argv[1:]
for src, dst in [(f"{carry}/libonnxruntime.so.1.31.1.xz", "libonnxruntime.so.1.31.1"),
                 (f"{provider}/libonnxruntime_providers_cuda.so.xz", "libonnxruntime_providers_cuda.so")]:
    with lzma.open(src) as f, open(f"{ort}/{dst}", "wb") as g:
        shutil.copyfileobj(f, g, 1 << 20)
shutil.copy(f"{carry}/libonnxruntime_providers_shared.so", ort)
PY
chmod +x "$ort"/*.so*
echo "== nvidia-smi"; nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.used --format=csv,noheader
echo "== gpulibs inspect (provider, CUDA libraries on LD_LIBRARY_PATH)"
LD_LIBRARY_PATH="$cu:$dnn" "$bin" inspect --color never "$ort/libonnxruntime_providers_cuda.so" | tee "$out/inspect.txt" | head -30
echo "inspect exit: ${PIPESTATUS[0]}"

run_verify() { # name, extra args...
  local name=$1; shift
  "$bin" verify --json --ort "$ort/libonnxruntime.so.1.31.1" --preload "$cu" --preload "$dnn" --device cuda:0 "$@" > "$out/verify-$name.json"
  local rc=$?
  python3 - "$out/verify-$name.json" "$rc" "$name" <<'PY'
import json, sys
path, rc, name = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.load(open(path))
o = r["outcome"]
print(f"-- verify {name}: exit {rc}, outcome {o.get('outcome', o)}")
if "reason" in o: print(f"   reason: {o['reason'][:400]}")
if "hint" in o and o["hint"]: print(f"   hint: {o['hint'][:300]}")
v = r.get("kernel_verdict") or {}
print(f"   kernel verdict: {v.get('verdict')} - {str(v.get('message'))[:200]}")
print(f"   ort {r.get('ort_version')}, device {r.get('device')}")
for m in r.get("models", []):
    print(f"   model {m['path']}: session {m['session_create_ms']} ms, first {m['first_run_ms']} ms, median {m['median_run_ms']} ms over {m['runs']}, "
          f"peak VRAM {m['peak_vram_bytes']}, max rel err {m['max_rel_error']} (threshold {m['threshold']}), nodes {m['nodes_by_provider']}")
PY
  return $rc
}
run_verify probe --runs 20; probe=$?
large=skipped
if python3 -c 'import onnx, numpy' 2>/dev/null && [ -f scripts/gpu/make-large-model.py ]; then
  python3 scripts/gpu/make-large-model.py "$ort/large.onnx" && { run_verify large --model "$ort/large.onnx" --runs 20; large=$?; }
fi
echo "== verify exits: probe=$probe large=$large (expected: $expect)"
case "$expect" in
  expect-pass) [ "$probe" = 0 ] && { [ "$large" = 0 ] || [ "$large" = skipped ]; } ;;
  expect-fail) [ "$probe" != 0 ] && [ "$probe" != 4 ] ;;
esac
