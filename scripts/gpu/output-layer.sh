#!/usr/bin/env bash
# Runs on the lent GPU machine (issue 15): every command's human output and JSON on a real GPU,
# as a user and a script read them.
#
#   1. detect, inspect (the release's CUDA provider), plan, install (proven on the GPU with
#      exported models), status, env, verify, rollback, gc, remove: the text with
#      NO_COLOR=1 and off a terminal (no escape may appear), and `--json` (one object, with
#      `schema_version`, decoded by python);
#   2. ONNX Runtime's own log through gpulibs': nothing of it by default, its lines with `-v`
#      as `onnxruntime` events, colour only with `--color always`;
#   3. failures on the GPU: a CUDA device that does not exist, a GPU the provider has no
#      kernels for (inspect --gpu 12.0), `--quiet`.
#
# Carried: CARRY/gpulibs.xz, CARRY/rel90/{manifest.toml,*.tar.xz} (see reuse-seed.sh).
# The release's archives must fit the 64 MiB carry with the binary and the tree: recompressed
# as `xz --x86 --lzma2=preset=9e,dict=384MiB` (the ONNX Runtime 1.31.1 sm_90 release: 7.0 MiB +
# 48.4 MiB), with the manifest's sha256, size and format changed to match.
# Written at stop 20, when no GPU machine was lent: not yet run on one (docs/gpu-runs.md).
#
# usage: scripts/gpu/output-layer.sh CARRY OUT
set -uo pipefail
carry=${1:?usage}; out=${2:?usage}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
xz -dc "$carry/gpulibs.xz" > "$work/gpulibs" && chmod +x "$work/gpulibs"
bin="$work/gpulibs"
export VIRTUAL_ENV=$(python3 -c 'import sys; print(sys.prefix)')
export HOME="$work/home" TMPDIR="$work/tmp" XDG_DATA_HOME="$work/home/.local/share" \
  XDG_CONFIG_HOME="$work/home/.config" XDG_CACHE_HOME="$work/home/.cache" NO_COLOR=1
mkdir -p "$HOME" "$TMPDIR"
unset GPULIBS_HOME GPULIBS_STORE LD_LIBRARY_PATH
step() { printf '\n== %s\n' "$*"; }
# `run NAME ARGS...`: the text (stdout then stderr, as files) and the exit code.
run() {
  local name=$1; shift
  "$bin" "$@" > "$out/$name.out" 2> "$out/$name.err"; local rc=$?
  echo "-- gpulibs $* (exit $rc)"; cat "$out/$name.out" "$out/$name.err" | head -${LINES_SHOWN:-40}
  echo "$rc" > "$out/$name.rc"
}
# `json NAME ARGS...`: `--json` output saved for the check at the end.
json() { local name=$1; shift; "$bin" --json "$@" > "$out/$name.json" 2> "$out/$name.json.err"; echo "$?" > "$out/$name.json.rc"; }

echo "gpulibs: $("$bin" --version)"
python3 scripts/gpu/export-models.py "$work/models" 2>/dev/null | cut -f1,2,3
mkdir -p "$work/app-models"
cp "$work/models/stft.onnx" "$work/models/recurrent.onnx" "$work/models/resnet18.onnx" "$work/app-models/"
shapes=(--shape samples=16000 --shape T=100)
tar -C "$work" -xJf "$carry/rel90/onnxruntime-cuda-sm_90-1.31.1.tar.xz"
provider=$(find "$work" -name libonnxruntime_providers_cuda.so | head -1)
app=(--app outputs)

step "1. every command, text and JSON"
run detect detect; json detect detect
run inspect inspect --summary "$provider"; json inspect inspect "$provider"
run inspect-sm120 inspect --gpu 12.0 --summary "$provider"
run plan plan "${app[@]}" --manifest "$carry/rel90/manifest.toml" --allow-unsigned
json plan plan "${app[@]}" --manifest "$carry/rel90/manifest.toml" --allow-unsigned
LINES_SHOWN=60 run install install "${app[@]}" --manifest "$carry/rel90/manifest.toml" --allow-unsigned \
  --verify-model "$work/app-models" "${shapes[@]}"
run status status "${app[@]}"; json status status "${app[@]}"
run env env "${app[@]}"; json env env "${app[@]}"
LINES_SHOWN=60 run verify verify "${app[@]}" --model "$work/app-models" "${shapes[@]}"
json verify verify "${app[@]}" --model "$work/app-models" "${shapes[@]}"
json install-again install "${app[@]}" --manifest "$carry/rel90/manifest.toml" --allow-unsigned --no-verify
run rollback rollback "${app[@]}"; json rollback rollback "${app[@]}"
json gc gc "${app[@]}"
json version version

step "2. ONNX Runtime's log"
"$bin" verify "${app[@]}" > /dev/null 2> "$out/verify-default.err"
"$bin" verify -v "${app[@]}" > /dev/null 2> "$out/verify-v.err"
"$bin" verify -vv "${app[@]}" > /dev/null 2> "$out/verify-vv.err"
"$bin" verify -v --color always "${app[@]}" > /dev/null 2> "$out/verify-v-colour.err"
# ONNX Runtime's lines are `[<code location>] <message>` (`-vv` also names the target).
ort='\[[^]]*\.(cc|h|cpp):[0-9]+\] '
for f in verify-default verify-v verify-vv verify-v-colour; do
  printf '%-16s %5d lines, %5d of ONNX Runtime, %5d with an escape\n' "$f" \
    "$(wc -l < "$out/$f.err")" "$(grep -cE "$ort" "$out/$f.err")" "$(grep -c $'\e' "$out/$f.err")"
done
echo "first ONNX Runtime lines with -v and -vv:"; grep -m3 -E "$ort" "$out/verify-v.err" "$out/verify-vv.err"

step "3. failures on the GPU"
run no-device verify "${app[@]}" --device cuda:7
json no-device verify "${app[@]}" --device cuda:7
run quiet -q status "${app[@]}"
run remove remove "${app[@]}" --yes
json remove-again remove "${app[@]}" --yes

step "escapes in text outputs (NO_COLOR=1, not a terminal)"
grep -l $'\e' "$out"/*.out "$out"/*.err 2>/dev/null | grep -v verify-v-colour || echo "none"

step "JSON documents"
python3 - "$out" <<'PY'
import glob, json, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    name = os.path.basename(path)[:-5]
    rc = open(path + ".rc").read().strip()
    try:
        doc = json.load(open(path))
    except Exception as e:
        print(f"{name:14} exit {rc}: NOT JSON ({e})"); continue
    if "error" in doc:
        e = doc["error"]
        print(f"{name:14} exit {rc}: error object, exit_code {e['exit_code']}, {len(e['causes'])} cause(s), {len(e['hints'])} hint(s): {e['message'][:90]}")
    else:
        print(f"{name:14} exit {rc}: schema_version {doc.get('schema_version')}, {len(doc)} fields: {', '.join(sorted(doc))[:120]}")
PY
step "left in TMPDIR: $(find "$TMPDIR" -mindepth 1 | wc -l) entries"
