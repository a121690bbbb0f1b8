#!/usr/bin/env bash
# Runs on the lent GPU machine: placement-aware `gpulibs verify --json` (issue 11) on models
# exported there with torch (scripts/gpu/export-models.py), plus one deliberately broken case per
# failure kind, each of which must be reported as a failure, never as a pass. Carried as for
# verify-h100.sh:
#
#   CARRY/gpulibs (or gpulibs.xz)                 release binary (x86_64)
#   CARRY/libonnxruntime.so.1.31.1.xz             ORT core from the onnxruntime-gpu wheel
#   CARRY/libonnxruntime_providers_shared.so
#   PROVIDER_DIR/libonnxruntime_providers_cuda.so.xz   the provider thinned to this GPU (sm_90)
#   WRONG_ARCH_DIR/libonnxruntime_providers_cuda.so.xz (optional) thinned to another architecture
#
# usage: scripts/gpu/verify-models.sh CARRY PROVIDER_DIR OUT [WRONG_ARCH_DIR]
#
# Writes OUT/verify-<case>.json (the whole report: placement, nodes and ORT's placement log
# lines, the raw evidence for test fixtures), OUT/verify-<case>.txt (the human output and exit
# code), OUT/models.txt (what was exported) and OUT/summary.txt; exits non-zero if any case
# came out outside what it allows.
set -uo pipefail
carry=${1:?usage}; provider=${2:?usage}; out=${3:?usage}; wrong=${4:-}
mkdir -p "$out"
bin="$carry/gpulibs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ ! -x "$bin" ] && [ -f "$bin.xz" ]; then
  python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$bin.xz" "$work/gpulibs"
  chmod +x "$work/gpulibs"; bin="$work/gpulibs"
fi
site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
cu="$site/nvidia/cu13/lib"; dnn="$site/nvidia/cudnn/lib"

# ort DIR PROVIDER_XZ_DIR: unpack ORT core + shared + the provider from PROVIDER_XZ_DIR into DIR.
unpack_ort() {
  mkdir -p "$1"
  python3 - "$carry" "$2" "$1" <<'PY'
import lzma, shutil, sys
carry, provider, ort = sys.argv[1:]
for src, dst in [(f"{carry}/libonnxruntime.so.1.31.1.xz", "libonnxruntime.so.1.31.1"),
                 (f"{provider}/libonnxruntime_providers_cuda.so.xz", "libonnxruntime_providers_cuda.so")]:
    with lzma.open(src) as f, open(f"{ort}/{dst}", "wb") as g:
        shutil.copyfileobj(f, g, 1 << 20)
shutil.copy(f"{carry}/libonnxruntime_providers_shared.so", ort)
PY
  chmod +x "$1"/*.so*
}
unpack_ort "$work/ort" "$provider"

echo "== nvidia-smi"; nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.used --format=csv,noheader
echo "== export models"
python3 scripts/gpu/export-models.py "$work/models" 2>&1 | tee "$out/models.txt"

: > "$out/summary.txt"
failures=0
# case NAME ALLOWED_STATUSES ORT_LIB [verify args...]: ALLOWED is a comma list of outcome statuses.
case_() {
  local name=$1 allowed=$2 lib=$3; shift 3
  "$bin" verify --json --ort "$lib" --preload "$cu" --preload "$dnn" --device cuda:0 --runs 10 "$@" \
    > "$out/verify-$name.json" 2> "$out/verify-$name.stderr"
  local rc=$?
  "$bin" verify --color never --ort "$lib" --preload "$cu" --preload "$dnn" --device cuda:0 --runs 3 "$@" \
    > "$out/verify-$name.txt" 2>&1
  echo "exit $?" >> "$out/verify-$name.txt"
  python3 - "$out/verify-$name.json" "$rc" "$name" "$allowed" >> "$out/summary.txt" <<'PY'
import json, sys
path, rc, name, allowed = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
try:
    r = json.load(open(path))
except Exception as e:
    print(f"{name}: exit {rc}, no JSON ({e}) UNEXPECTED"); sys.exit(0)
o = r["outcome"]; status = o["status"]
ok = status in allowed
print(f"{name}: exit {rc}, {status}{' (' + o.get('stage', '') + ')' if 'stage' in o else ''}"
      f"{'' if ok else '  UNEXPECTED (allowed: ' + ','.join(allowed) + ')'}")
for k in ("reason", "warning"):
    if o.get(k): print(f"  {k}: {o[k][:600]}")
for m in r.get("models", []):
    p = m.get("placement") or {}
    print(f"  {m['path'].rsplit('/', 1)[-1]}: nodes {m.get('nodes_by_provider')}, verdict {p.get('verdict')}, "
          f"heavy on CUDA {p.get('heavy_cuda_nodes')}, max rel err {m.get('max_rel_error')}, "
          f"median {m.get('median_run_ms')} ms, ort_log lines {len(m.get('ort_log', []))}")
    for n in p.get("cpu_nodes", []):
        print(f"    on CPU: {n['op_type']} {n['name']} ({n['reason']}{', heavy' if n['heavy'] else ''})")
PY
  tail -n +1 "$out/summary.txt" | grep -q "^$name: .*UNEXPECTED" && failures=$((failures + 1))
  return 0
}

ort="$work/ort/libonnxruntime.so.1.31.1"
m="$work/models"
case_ probe           verified_gpu                      "$ort"
case_ resnet18        verified_gpu,verified_gpu_partial "$ort" --model "$m/resnet18.onnx"
case_ transformer     verified_gpu,verified_gpu_partial "$ort" --model "$m/transformer.onnx" --shape batch=2 --shape T=50
case_ recurrent       verified_gpu,verified_gpu_partial "$ort" --model "$m/recurrent.onnx" --shape T=100
case_ control_flow    verified_gpu,verified_gpu_partial "$ort" --model "$m/control_flow.onnx" --shape batch=2 --shape T=10
case_ dynamic_reshape verified_gpu,verified_gpu_partial "$ort" --model "$m/dynamic_reshape.onnx" --shape batch=2
# STFT has no CUDA kernel in ORT 1.31: a partial pass naming it, never a full one.
case_ stft            verified_gpu_partial              "$ort" --model "$m/stft.onnx" --shape samples=16000
# --strict keeps the old rule: any CPU node fails.
case_ stft-strict     failed                            "$ort" --model "$m/stft.onnx" --shape samples=16000 --strict
# The set together (a directory of models).
case_ all-models      verified_gpu_partial              "$ort" --model "$m"  --shape batch=2 --shape T=10 --shape samples=16000

# Broken 1: the CUDA provider cannot load (a DT_NEEDED library it names does not exist: the same
# provider with `libcublasLt.so.13` renamed to `libcublasLx.so.13` in its dynamic string table).
mkdir -p "$work/broken-lib"
cp "$work/ort/libonnxruntime.so.1.31.1" "$work/ort/libonnxruntime_providers_shared.so" "$work/broken-lib/"
python3 - "$work/ort/libonnxruntime_providers_cuda.so" "$work/broken-lib/libonnxruntime_providers_cuda.so" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
assert b"libcublasLt.so.13\0" in data
open(sys.argv[2], "wb").write(data.replace(b"libcublasLt.so.13\0", b"libcublasLx.so.13\0"))
PY
chmod +x "$work/broken-lib"/*.so*
case_ broken-missing-lib failed "$work/broken-lib/libonnxruntime.so.1.31.1"
case_ broken-missing-lib-stft failed "$work/broken-lib/libonnxruntime.so.1.31.1" --model "$m/stft.onnx" --shape samples=16000

# Broken 2: a provider thinned to another architecture (no kernel for this GPU).
if [ -n "$wrong" ]; then
  unpack_ort "$work/wrong" "$wrong"
  case_ broken-wrong-arch failed "$work/wrong/libonnxruntime.so.1.31.1"
  case_ broken-wrong-arch-resnet failed "$work/wrong/libonnxruntime.so.1.31.1" --model "$m/resnet18.onnx"
fi

echo "== summary"; cat "$out/summary.txt"
echo "== cases outside what they allow: $failures"
[ "$failures" = 0 ]
