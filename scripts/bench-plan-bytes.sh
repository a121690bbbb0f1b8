#!/usr/bin/env bash
# Bytes `gpulibs plan` would download, side by side, for the embedded default (and a vendor's
# per-arch manifest when given), on:
#   (a) an empty machine (nothing to reuse: --no-reuse),
#   (b) a Python environment like the lent GPU machine's (issue 12): PyTorch's CUDA 13 NVIDIA
#       wheels at the versions of /work/wt/lent-venv-inventory.txt,
#   (c) a second app after the first, in the environment of (b): app `first` is really installed
#       (`gpulibs install --app first --no-verify`: there is no GPU here to verify on, and the
#       output says so) into the component store all apps of a user share, then `gpulibs plan
#       --app second` says what it would download. Target: 0 B. Each column runs as its own
#       user: temporary HOME, XDG_DATA_HOME (the store is $XDG_DATA_HOME/gpulibs) and
#       XDG_CONFIG_HOME, with GPULIBS_HOME and GPULIBS_STORE unset (GPULIBS_HOME alone would
#       make each root its own store). The vendor's first app is installed from the manifest
#       (its archives, relative URLs, from the manifest's directory); the embedded default's
#       with `--offline DIR`, DIR holding the wheels the plan of (b) downloads (the ONNX Runtime
#       wheel, 256 MB), fetched once with `pip download --no-deps` for gpulibs' wheel target
#       into ${XDG_CACHE_HOME:-~/.cache}/gpulibs-bench/offline-default. Not `gpulibs mirror
#       --embedded DIR`: it stores every component of every variant an install could fall back
#       to (for this machine: the 11 GPU variants that run on sm_90 with CUDA 13.0, and the CPU
#       one; 27 wheels, about 6.2 GB), and no option limits it to what the plan downloads.
# Planned for that machine: --gpu 9.0 --driver 580.159.04 --driver-cuda 13.0.
#
# Usage: scripts/bench-plan-bytes.sh [--stub] [--manifest PATH|URL [--public-key KEY |
#        --allow-unsigned]]
#   --stub   build the environment from ELF stubs (cc, the real SONAMEs and file names,
#            dist-info METADATA + RECORD with the real versions) instead of installing the real
#            wheels with `pip install --no-deps` (about 1.5 GB, downloaded once into
#            ${XDG_CACHE_HOME:-~/.cache}/gpulibs-bench/lent-venv). (c) still needs the ONNX
#            Runtime wheel above.
# Environment: GPULIBS_BIN (default: target/debug/gpulibs, built with cargo when missing).
# Everything but the two caches (the roots and the store of (c) included) is removed on exit.
set -euo pipefail

stub=0
manifest=""
trust=()
while [ $# -gt 0 ]; do
    case "$1" in
        --stub) stub=1 ;;
        --manifest) manifest="$2"; shift ;;
        --public-key) trust=(--public-key "$2"); shift ;;
        --allow-unsigned) trust=(--allow-unsigned) ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${GPULIBS_BIN:-$repo/target/debug/gpulibs}"
if [ ! -x "$bin" ]; then
    (cd "$repo" && cargo build -q -p gpulibs-cli --locked)
fi
work="$(mktemp -d)"
# chmod first: the store's files (and an interrupted install's directories) may be read-only.
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cache="${XDG_CACHE_HOME:-$HOME/.cache}/gpulibs-bench"

# The lent machine's NVIDIA wheels: distribution, version, directory under nvidia/, files
# (each file name is its SONAME), Requires-Dist.
LENT=(
    "nvidia_cublas 13.1.0.3 cu13 libcublas.so.13,libcublasLt.so.13,libnvblas.so.13 -"
    "nvidia_cuda_cupti 13.0.85 cu13 libcupti.so.13 -"
    "nvidia_cuda_nvrtc 13.0.88 cu13 libnvrtc.so.13,libnvrtc-builtins.so.13.0,libnvrtc.alt.so.13,libnvrtc-builtins.alt.so.13.0 -"
    "nvidia_cuda_runtime 13.0.96 cu13 libcudart.so.13 -"
    "nvidia_cudnn_cu13 9.19.0.56 cudnn libcudnn.so.9,libcudnn_adv.so.9,libcudnn_cnn.so.9,libcudnn_engines_precompiled.so.9,libcudnn_engines_runtime_compiled.so.9,libcudnn_graph.so.9,libcudnn_heuristic.so.9,libcudnn_ops.so.9 nvidia-cublas"
    "nvidia_cufft 12.0.0.61 cu13 libcufft.so.12,libcufftw.so.12 nvidia-nvjitlink"
    "nvidia_cufile 1.15.1.6 cu13 libcufile.so.0,libcufile_rdma.so.1 -"
    "nvidia_curand 10.4.0.35 cu13 libcurand.so.10 -"
    "nvidia_cusolver 12.0.4.66 cu13 libcusolver.so.12,libcusolverMg.so.12 nvidia-cublas,nvidia-nvjitlink,nvidia-cusparse"
    "nvidia_cusparse 12.6.3.3 cu13 libcusparse.so.12 nvidia-nvjitlink"
    "nvidia_cusparselt_cu13 0.8.0 cusparselt libcusparseLt.so.0 -"
    "nvidia_nccl_cu13 2.28.9 nccl libnccl.so.2 -"
    "nvidia_nvjitlink 13.0.88 cu13 libnvJitLink.so.13 -"
    "nvidia_nvshmem_cu13 3.4.5 nvshmem libnvshmem_host.so.3 -"
    "nvidia_nvtx 13.0.85 cu13 libnvtx3interop.so.1 -"
)

stub_venv() { # $1: venv directory
    local site="$1/lib/python3.12/site-packages" line dist version dir files requires f
    for line in "${LENT[@]}"; do
        read -r dist version dir files requires <<<"$line"
        local info="$site/$dist-$version.dist-info"
        mkdir -p "$site/nvidia/$dir/lib" "$info"
        : >"$info/RECORD"
        for f in ${files//,/ }; do
            echo "int stub(void) { return 1; }" >"$work/stub.c"
            cc -shared -fPIC -o "$site/nvidia/$dir/lib/$f" "$work/stub.c" "-Wl,-soname,$f"
            echo "nvidia/$dir/lib/$f,," >>"$info/RECORD"
        done
        {
            echo "Metadata-Version: 2.1"
            echo "Name: ${dist//_/-}"
            echo "Version: $version"
            if [ "$requires" != "-" ]; then
                for r in ${requires//,/ }; do echo "Requires-Dist: $r"; done
            fi
        } >"$info/METADATA"
        echo "$dist-$version.dist-info/RECORD,," >>"$info/RECORD"
    done
}

real_venv() { # $1: venv directory (kept between runs)
    local venv="$1" reqs=() line dist version
    if [ -f "$venv/.complete" ]; then return; fi
    python3 -m venv "$venv"
    for line in "${LENT[@]}"; do
        read -r dist version _ <<<"$line"
        reqs+=("${dist//_/-}==$version")
    done
    "$venv/bin/pip" install --quiet --no-deps "${reqs[@]}"
    touch "$venv/.complete"
}

if [ "$stub" = 1 ]; then
    venv="$work/lent-venv"
    stub_venv "$venv"
    venv_label="lent venv (ELF stubs)"
else
    venv="$cache/lent-venv"
    real_venv "$venv"
    venv_label="lent venv (real wheels)"
fi

host=(--gpu 9.0 --driver 580.159.04 --driver-cuda 13.0)

# Nothing of the caller's setup may leak in: library paths, environments, roots, stores.
clean=(env -u LD_LIBRARY_PATH -u CUDA_HOME -u CUDA_PATH -u CONDA_PREFIX -u PYENV_ROOT
    -u VIRTUAL_ENV -u GPULIBS_PUBLIC_KEY -u GPULIBS_HOME -u GPULIBS_STORE -u XDG_DATA_HOME
    GPULIBS_NVML_LIBRARY="$work/no-nvml.so" NO_COLOR=1)

plan() { # $1: output JSON file; rest: extra arguments
    local out="$1"; shift
    "${clean[@]}" HOME="$work/home" GPULIBS_HOME="$work/root" XDG_CONFIG_HOME="$work/config" \
        ${VENV:+VIRTUAL_ENV="$VENV"} "$bin" --json plan "${host[@]}" "$@" >"$out" || true
}

user() { # $1: the home of one user, whose apps share a store; rest: gpulibs arguments
    local dir="$1"; shift
    mkdir -p "$dir/home"
    "${clean[@]}" HOME="$dir/home" XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" \
        VIRTUAL_ENV="$venv" "$bin" --json "$@"
}

second_app() { # $1: column; $2: an install-only argument, or ""; rest: manifest arguments
    local col="$1" only="$2" start=$SECONDS
    shift 2
    user "$work/c-$col" install --app first "${host[@]}" --no-verify ${only:+"$only"} "$@" \
        >"$work/c-$col-first.json" 2>"$work/c-$col-first.err" || true
    echo $((SECONDS - start)) >"$work/c-$col-first.seconds"
    user "$work/c-$col" plan --app second "${host[@]}" "$@" >"$work/c-$col.json" || true
}

offline_wheels() { # $1: the plan JSON of (b); prints a directory holding the wheels it downloads
    local dir="$cache/offline-default" target req name version
    mkdir -p "$dir"
    # gpulibs' wheel target (`WheelTarget::default`), as the embedded table records it.
    mapfile -t target < <(python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))
print("--python-version=" + t["python_version"])
print("--implementation=" + t["implementation"])
for p in t["platforms"]:
    print("--platform=" + p)' "$repo/crates/gpulibs-sources/data/ort-coverage.json")
    [ "${#target[@]}" -gt 0 ] || return 1
    for req in $(python3 -c '
import json, sys
try:
    components = json.load(open(sys.argv[1]))["plan"]["chosen"]["components"]
except Exception:
    components = []
for c in components:
    url = c["source"].get("url", "")
    if c["download_bytes"] > 0 and url.startswith("pip:"):
        print(url[len("pip:"):])' "$1"); do
        name="${req%%==*}" version="${req#*==}"
        if compgen -G "$dir/${name//-/_}-$version-*.whl" >/dev/null; then continue; fi
        echo "(c) pip download --no-deps $req into $dir" >&2
        python3 -m pip download --quiet --no-deps --only-binary=:all: "${target[@]}" \
            --dest "$dir" "$req" >&2 || return 1
    done
    echo "$dir"
}

mkdir -p "$work/home"
plan "$work/a-default.json" --no-reuse
VENV="$venv" plan "$work/b-default.json"
if offline="$(offline_wheels "$work/b-default.json")"; then
    second_app default "--offline=$offline"
else
    echo "pip could not download the wheels the plan of (b) downloads" >"$work/c-default-first.err"
fi
columns=(default)
if [ -n "$manifest" ]; then
    plan "$work/a-vendor.json" --no-reuse --manifest "$manifest" "${trust[@]}"
    VENV="$venv" plan "$work/b-vendor.json" --manifest "$manifest" "${trust[@]}"
    second_app vendor "" --manifest "$manifest" "${trust[@]}"
    columns+=(vendor)
fi

python3 - "$work" "$venv_label" "$manifest" "${columns[@]}" <<'EOF'
import json, os, sys
work, venv_label, manifest, columns = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def human(n):
    for size, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v >= 100 else f"{v:.1f} {unit}" if v >= 10 else f"{v:.2f} {unit}"
    return f"{n} B"

def load(case, col):
    try:
        return json.load(open(f"{work}/{case}-{col}.json"))
    except Exception as e:
        return {"error": str(e)}

def cell(p):
    plan = p.get("plan")
    if not plan or not plan.get("chosen"):
        # Why, when the plan says: e.g. a per-arch release shipping no CUDA library, --no-reuse.
        unmet = sorted({r["soname"] for v in (plan or {}).get("rejected", [])
                        for r in v.get("reasons", []) if r.get("reason") == "unmet_need"})
        return ("no plan" + (f" (unmet: {len(unmet)} CUDA libraries)" if unmet else "")), None
    comps = plan["chosen"]["components"]
    down = [c for c in comps if c["download_bytes"] > 0]
    n = plan["totals"]["download_bytes"]
    return f"{human(n)} ({n} B), {len(down)}/{len(comps)} downloaded", (n, down, plan)

heads = {"default": "embedded default", "vendor": f"vendor {manifest}"}
rows = [("(a) empty machine", "a"), (f"(b) {venv_label}", "b")]
table = [["", *[heads[c] for c in columns]]]
results = {}
for label, case in rows:
    row = [label]
    for col in columns:
        text, data = cell(load(case, col))
        results[(case, col)] = data
        row.append(text)
    table.append(row)

def failure(p, err_file):
    """The error of a gpulibs --json failure, else the last line of its stderr."""
    e = p.get("error")
    if isinstance(e, dict):
        return ": ".join([e.get("message", "?"), *e.get("causes", [])])
    try:
        lines = [l for l in open(err_file).read().splitlines() if l.strip()]
    except OSError:
        lines = []
    return lines[-1] if lines else str(e)

# (c): the first app's install, then the second app's plan.
firsts = {}
row = ["(c) second app after the first"]
for col in columns:
    first = load("c", f"{col}-first")
    if first.get("install_id"):
        firsts[col] = first
        text, data = cell(load("c", col))
    else:
        text, data = "first install failed", None
        firsts[col] = failure(first, f"{work}/c-{col}-first.err")
    results[("c", col)] = data
    row.append(text)
table.append(row)
widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
for r in table:
    print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())

print()
b = results.get(("b", "default"))
if b:
    n, down, plan = b
    for c in plan["chosen"]["components"]:
        why = c.get("why", {})
        extra = ""
        if why.get("kind") == "reused":
            extra = f" {why['libraries'][0].get('version')} in {why['dir']} (" + ", ".join(r["name"] for r in why["accepted_by"]) + ")"
        elif why.get("kind") in ("refused",):
            extra = f" {why.get('path')}: {why.get('detail')}"
        elif why.get("kind") in ("not_found",):
            extra = f" {why.get('soname')}"
        print(f"  (b) {c['id']}: {why.get('kind')}{extra}, {human(c['download_bytes'])}")
    ids = [c["id"] for c in down]
    ok = len(ids) == 1 and ids[0].startswith("onnxruntime-gpu-")
    print(f"{'PASS' if ok else 'FAIL'} (b) embedded default plans only the ONNX Runtime wheel: {', '.join(ids) or 'nothing'} ({human(n)})")
else:
    print("FAIL (b) embedded default: no plan")
if "vendor" in columns:
    v = results.get(("b", "vendor"))
    if v:
        ok = v[0] <= 70_000_000
        print(f"{'PASS' if ok else 'FAIL'} (b) vendor per-arch release ≤ 70 MB: {human(v[0])}")
    else:
        print("FAIL (b) vendor: no plan")
for col in columns:
    first = firsts[col]
    if isinstance(first, str):
        print(f"  (c) {col}: app first: {first}")
        print(f"FAIL (c) {col}: a second app downloads 0 B: the first app did not install")
        continue
    seconds = open(f"{work}/c-{col}-first.seconds").read().strip()
    verify = first.get("verify") or {}
    fetched = [f"{c['id']} {c['action']} {human(c['bytes'])}" for c in first["components"] if c["action"] != "system"]
    machine = len(first.get("system_paths") or [])
    print(f"  (c) {col}: app first: `install --no-verify` (verification {verify.get('state')}: no GPU here) activated {first['install_id']} in {seconds} s; {', '.join(fetched) or 'nothing fetched'}; {machine} libraries of this machine linked")
    try:
        store = sorted(os.listdir(f"{work}/c-{col}/data/gpulibs/store"))
    except OSError:
        store = []
    print(f"  (c) {col}: the shared store ($XDG_DATA_HOME/gpulibs/store) holds {len([s for s in store if not s.startswith('.')])} component(s)")
    c = results.get(("c", col))
    if not c:
        print(f"FAIL (c) {col}: app second: no plan")
        continue
    n, down, plan = c
    for comp in plan["chosen"]["components"]:
        if comp["source"].get("source") != "system":
            print(f"  (c) {col}: app second: {comp['id']}: {'in the store' if comp['in_store'] else 'not in the store'}, {human(comp['download_bytes'])}")
    ok = n == 0
    print(f"{'PASS' if ok else 'FAIL'} (c) {col}: a second app downloads 0 B after the first (installed with --no-verify): {human(n)}")
EOF
