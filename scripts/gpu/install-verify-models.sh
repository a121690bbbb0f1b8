#!/usr/bin/env bash
# Runs on the lent GPU machine: install-time verification (issue 11) with the app's own models.
# From the carried ONNX Runtime 1.31.1 (provider thinned to this GPU), it packages a release
# there (`gpulibs package`, reusing the machine's CUDA 13 and cuDNN 9 by SONAME), then:
#
#   1. install --verify-model (STFT front end + a recurrent model): proven before activation,
#      the result in install.json and the JSON report;
#   2. status, env; status --verify (the proof recorded again on the active install);
#   3. a release whose CUDA provider cannot load (a DT_NEEDED renamed) ranked first, the good one
#      second: install tries the first, it fails verification, the second is activated.
#
# Carried (as for verify-models.sh): CARRY/gpulibs.xz, CARRY/libonnxruntime.so.1.31.1.xz,
# CARRY/libonnxruntime_providers_shared.so, PROVIDER_DIR/libonnxruntime_providers_cuda.so.xz.
#
# usage: scripts/gpu/install-verify-models.sh CARRY PROVIDER_DIR OUT
set -uo pipefail
carry=${1:?usage}; provider=${2:?usage}; out=${3:?usage}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$carry" "$provider" "$work" <<'PY'
import lzma, os, shutil, sys
carry, provider, work = sys.argv[1:]
os.makedirs(f"{work}/ort/lib")
for src, dst in [(f"{carry}/gpulibs.xz", f"{work}/gpulibs"),
                 (f"{carry}/libonnxruntime.so.1.31.1.xz", f"{work}/ort/lib/libonnxruntime.so.1.31.1"),
                 (f"{provider}/libonnxruntime_providers_cuda.so.xz", f"{work}/ort/lib/libonnxruntime_providers_cuda.so")]:
    with lzma.open(src) as f, open(dst, "wb") as g:
        shutil.copyfileobj(f, g, 1 << 20)
shutil.copy(f"{carry}/libonnxruntime_providers_shared.so", f"{work}/ort/lib/")
os.symlink("libonnxruntime.so.1.31.1", f"{work}/ort/lib/libonnxruntime.so.1")
PY
chmod +x "$work/gpulibs" "$work"/ort/lib/*.so*
bin="$work/gpulibs"
export VIRTUAL_ENV=$(python3 -c 'import sys; print(sys.prefix)')
export HOME="$work/home" TMPDIR="$work/tmp"; mkdir -p "$HOME" "$TMPDIR"
systems=(--system libcublasLt.so.13 --system libcublas.so.13 --system libcurand.so.10 --system libcudart.so.13
         --system libcudnn.so.9 --system libcufft.so.12 --system libnvrtc.so.13)
step() { printf '\n== %s\n' "$*"; }

step "models"; python3 scripts/gpu/export-models.py "$work/models" 2>/dev/null | cut -f1,3
mkdir -p "$work/app-models" && cp "$work/models/stft.onnx" "$work/models/recurrent.onnx" "$work/app-models/"

step "package (good release)"
"$bin" package --color never --from "$work/ort/lib" --out "$work/rel" --release 1.31.1-sm90 --cuda 13.0 "${systems[@]}" \
  > "$out/package.txt" 2>&1; echo "exit $?"; grep -E '^(component|onnxruntime)' "$out/package.txt"

step "1. install --verify-model (app models: STFT front end, GRU+LSTM)"
export GPULIBS_HOME="$work/root1"
"$bin" install --color never --manifest "$work/rel/manifest.toml" --allow-unsigned \
  --verify-model "$work/app-models" --shape samples=16000 --shape T=100 2>&1 | tee "$out/install1.txt"; echo "exit ${PIPESTATUS[0]}"
"$bin" install --json --manifest "$work/rel/manifest.toml" --allow-unsigned \
  --verify-model "$work/app-models" --shape samples=16000 --shape T=100 > "$out/install1.json" 2>/dev/null; echo "json rerun exit $?"
python3 - "$GPULIBS_HOME" <<'PY'
import glob, json, sys
for p in glob.glob(f"{sys.argv[1]}/installs/*/install.json"):
    v = json.load(open(p)).get("verification")
    print("install.json verification:", json.dumps(v)[:900])
PY
step "2. status / env / status --verify"
"$bin" status --color never; echo "exit $?"
"$bin" env --format sh; echo "exit $?"
"$bin" status --color never --verify --verify-model "$work/app-models" --shape samples=16000 --shape T=100; echo "exit $?"

step "3. next candidate: a release whose provider cannot load, ranked first"
mkdir -p "$work/bad/lib"
cp -P "$work"/ort/lib/* "$work/bad/lib/"
python3 - "$work/ort/lib/libonnxruntime_providers_cuda.so" "$work/bad/lib/libonnxruntime_providers_cuda.so" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(d.replace(b"libcublasLt.so.13\0", b"libcublasLx.so.13\0"))
PY
"$bin" package --color never --from "$work/bad/lib" --out "$work/relbad" --release 1.31.2-broken --cuda 13.0 --name broken \
  "${systems[@]}" --system libcublasLx.so.13 > "$out/package-bad.txt" 2>&1; echo "package bad exit $?"
# One manifest, both builds: the broken one's components say ONNX Runtime 1.31.2, so the planner
# ranks it first ("a newer ONNX Runtime release"); its variant is renamed so the names stay unique.
mkdir -p "$work/both"; cp "$work"/rel/*.tar.zst "$work"/relbad/*.tar.zst "$work/both/"
python3 - "$work" <<'PY'
import re, sys
w = sys.argv[1]
good = open(f"{w}/rel/manifest.toml").read()
bad = open(f"{w}/relbad/manifest.toml").read()
body = bad[bad.index("[[components]]"):]
head, variants = body.split("[[variants]]", 1)
variants = "[[variants]]" + re.sub(r'(?m)^name = "([^"]*)"', r'name = "broken-\1"', variants)
# The vendor's manifest does not know its build is broken: it lists the real library as needed,
# so the planner accepts it and only running it can tell.
head = head.replace('"libcublasLx.so.13"', '"libcublasLt.so.13"')
# Components take ONNX Runtime's own version (1.31.1) since packaging reads it from the library;
# say 1.31.2 for the broken build so the planner ranks it first.
head = re.sub(r'(?m)^version = "[^"]*"', 'version = "1.31.2"', head)
open(f"{w}/both/manifest.toml", "w").write(good.rstrip() + "\n\n" + head + variants)
PY
export GPULIBS_HOME="$work/root3"
"$bin" plan --color never --manifest "$work/both/manifest.toml" --allow-unsigned 2>&1 | head -20
"$bin" install --color never --manifest "$work/both/manifest.toml" --allow-unsigned 2>&1 | tee "$out/install3.txt"; echo "exit ${PIPESTATUS[0]}"
"$bin" status --color never; echo "exit $?"
GPULIBS_HOME="$work/root4" "$bin" install --json --manifest "$work/both/manifest.toml" --allow-unsigned 2>/dev/null > "$out/install3.json"; echo "json (fresh root) exit $?"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); [print("attempt:", a) for a in r.get("attempts", [])]' "$out/install3.json"
step "left in TMPDIR: $(find "$TMPDIR" -mindepth 1 | wc -l) entries"; find "$TMPDIR" -mindepth 1 | head
