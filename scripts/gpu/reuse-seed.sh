#!/usr/bin/env bash
# Runs on the lent GPU machine (issues 12 and 13): what the default path downloads on a machine
# that holds PyTorch's CUDA 13 wheels, one store for two apps, and the seed app's own layout.
#
#   1. `gpulibs plan` of the embedded default (official onnxruntime-gpu wheels through pip) with
#      VIRTUAL_ENV set to the machine's PyTorch environment: what is downloaded, what is reused,
#      and why, per component (plan only: the machine has no network);
#   2. a seed-style flat `gpu-libs` for app `swictation` (as the seed's installer leaves it), then
#      `gpulibs install --app swictation` from a per-arch release (ORT 1.31.1, provider thinned to
#      sm_90, the machine's cuBLAS/cuDNN/cudart reused): adopted, proven on the GPU with the
#      app's models, activated; the receipt and the flat view the seed's script reads;
#   3. the seed consumer: LD_LIBRARY_PATH=<gpu-libs> and <gpu-libs>/libonnxruntime.so, as its
#      systemd unit sets them, loading ONNX Runtime (load-ort) and running the models on the GPU
#      (`gpulibs verify --ort`), with nothing else on the library path;
#   4. a second app from the same release: bytes fetched (expected 0: the shared store);
#   5. gc and remove of one app keep what the other uses; the first app still verifies.
#
# Carried: CARRY/gpulibs.xz, CARRY/load-ort, CARRY/rel90/{manifest.toml,*.tar.xz}.
# usage: scripts/gpu/reuse-seed.sh CARRY OUT
set -uo pipefail
carry=${1:?usage}; out=${2:?usage}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
xz -dc "$carry/gpulibs.xz" > "$work/gpulibs" && chmod +x "$work/gpulibs"
cp "$carry/load-ort" "$work/load-ort" && chmod +x "$work/load-ort"
bin="$work/gpulibs"
venv=$(python3 -c 'import sys; print(sys.prefix)')
export VIRTUAL_ENV="$venv"
export HOME="$work/home" TMPDIR="$work/tmp" XDG_DATA_HOME="$work/home/.local/share" \
  XDG_CONFIG_HOME="$work/home/.config" XDG_CACHE_HOME="$work/home/.cache"
mkdir -p "$HOME" "$TMPDIR"
unset GPULIBS_HOME GPULIBS_STORE LD_LIBRARY_PATH
step() { printf '\n== %s\n' "$*"; }
echo "gpulibs: $("$bin" --version)"; echo "venv: $venv"

step "1. plan, embedded default, VIRTUAL_ENV=$venv"
"$bin" plan --color never 2>&1 | tee "$out/plan-default.txt"; echo "exit ${PIPESTATUS[0]}"
"$bin" plan --json > "$out/plan-default.json" 2>/dev/null; echo "json exit $?"
python3 - "$out/plan-default.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["plan"]
comps = p["chosen"]["components"]
for c in comps:
    w = c.get("why", {})
    detail = ""
    if w.get("kind") == "reused":
        libs = w.get("libraries", [{}])
        detail = f"{libs[0].get('version')} in {w.get('dir')} by " + ", ".join(r.get("name", "?") for r in w.get("accepted_by", []))
    else:
        detail = json.dumps({k: v for k, v in w.items() if k != "kind"})[:200]
    print(f"{c['id']:40} {w.get('kind', '?'):16} {c['download_bytes']:>11} B  {detail}")
down = [c["id"] for c in comps if c["download_bytes"] > 0]
print(f"download total {p['totals']['download_bytes']} B; downloaded: {', '.join(down) or 'nothing'}")
PY

step "models"
python3 scripts/gpu/export-models.py "$work/models" 2>/dev/null | cut -f1,2,3
mkdir -p "$work/app-models"
cp "$work/models/stft.onnx" "$work/models/recurrent.onnx" "$work/models/resnet18.onnx" "$work/app-models/"
shapes=(--shape samples=16000 --shape T=100)

step "2. a seed-style flat gpu-libs for swictation, then install --app swictation"
seed="$XDG_DATA_HOME/swictation/gpu-libs"
mkdir -p "$seed" "$work/seedsrc"
tar -C "$work/seedsrc" -xJf "$carry/rel90/onnxruntime-1.31.1.tar.xz"
find "$work/seedsrc" -name 'libonnxruntime*.so*' -exec cp -P {} "$seed/" \;
ls -l "$seed"
"$bin" install --color never --app swictation --manifest "$carry/rel90/manifest.toml" --allow-unsigned \
  --verify-model "$work/app-models" "${shapes[@]}" 2>&1 | tee "$out/install-swictation.txt"; echo "exit ${PIPESTATUS[0]}"
echo "-- gpu-libs after install:"; ls -l "$seed" | head -40
echo "-- receipt:"; cat "$XDG_CONFIG_HOME/swictation/gpu-package-info.json"; echo
"$bin" status --color never --app swictation; echo "status exit $?"
"$bin" env --app swictation --format sh; echo "env exit $?"

step "3. the seed consumer: LD_LIBRARY_PATH=gpu-libs, ORT_DYLIB_PATH=gpu-libs/libonnxruntime.so"
LD_LIBRARY_PATH="$seed" "$work/load-ort" "$seed/libonnxruntime.so" libonnxruntime_providers_shared.so \
  libcublas.so.13 libcublasLt.so.13 libcudnn.so.9 libcudart.so.13; echo "load-ort exit $?"
LD_LIBRARY_PATH="$seed" ORT_DYLIB_PATH="$seed/libonnxruntime.so" "$bin" verify --color never \
  --ort "$seed/libonnxruntime.so" --model "$work/app-models" "${shapes[@]}" 2>&1 | tee "$out/seed-verify.txt"
echo "exit ${PIPESTATUS[0]}"
LD_LIBRARY_PATH="$seed" "$bin" verify --json --ort "$seed/libonnxruntime.so" --model "$work/app-models" \
  "${shapes[@]}" > "$out/seed-verify.json" 2>/dev/null; echo "json exit $?"
if command -v node >/dev/null; then
  node crates/gpulibs-cli/tests/consumer/seed-consumer.mjs swictation "$work/load-ort" "$work/nolib" \
    libcudnn.so.9; echo "seed-consumer.mjs exit $?"
else
  echo "node: not on this machine (seed-consumer.mjs runs in CI)"
fi

step "4. a second app from the same release"
"$bin" install --json --app second --manifest "$carry/rel90/manifest.toml" --allow-unsigned \
  > "$out/install-second.json" 2>"$out/install-second.err"; echo "exit $?"
python3 - "$out/install-second.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
def walk(o, path=""):
    if isinstance(o, dict):
        for k, v in o.items():
            if any(s in k for s in ("bytes", "fetched", "downloaded", "verification", "outcome")) and not isinstance(v, (dict, list)):
                print(f"{path}{k} = {v}")
            walk(v, f"{path}{k}.")
    elif isinstance(o, list):
        for i, v in enumerate(o[:6]):
            walk(v, f"{path}{i}.")
walk(r)
PY
"$bin" status --color never --app second; echo "status exit $?"
du -sh "$XDG_DATA_HOME/gpulibs/store" "$XDG_DATA_HOME/swictation/gpu-libs" "$XDG_DATA_HOME/second/gpu-libs" 2>/dev/null

step "5. gc and remove of one app keep what the other uses"
"$bin" gc --color never --app swictation; echo "gc exit $?"
"$bin" remove --color never --yes --app second; echo "remove exit $?"
ls "$XDG_DATA_HOME/gpulibs/store"
"$bin" status --color never --app swictation --verify --verify-model "$work/app-models" "${shapes[@]}"
echo "status --verify exit $?"
"$bin" rollback --color never --app swictation; echo "rollback (to the adopted seed dir) exit $?"
ls -l "$seed" | head; LD_LIBRARY_PATH="$seed" "$work/load-ort" "$seed/libonnxruntime.so"; echo "load-ort exit $?"
step "left in TMPDIR: $(find "$TMPDIR" -mindepth 1 | wc -l) entries"
