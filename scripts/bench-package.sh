#!/usr/bin/env bash
# Bytes to download per GPU class for ONNX Runtime 1.31.1 + CUDA 13 + cuDNN 9 (docs/package.md):
#   seed     one gzip tarball of every library (the seed's way), same for every class
#   pip      `pip install onnxruntime-gpu[cuda,cudnn]==1.31.1`: every wheel pip downloads
#   gpulibs  per-arch components (zstd, ONNX Runtime thinned to the class, only the NVIDIA
#            libraries the CUDA provider loads)
#   reuse    gpulibs with the CUDA libraries (and cuDNN) already on the system
#   update   gpulibs from 1.31.0 to 1.31.1: only the components whose sha256 changed
#
# usage: scripts/bench-package.sh [CACHE_DIR]   (default ~/.cache/gpulibs-bench)
# Needs pip (wheels come from the package index, ~2 GB once), gzip, python3 and cargo.
# Each of the two package runs takes ~30 minutes on 2 cores at level 19 (LEVEL=3 for a quick look).
# Env: LEVEL (zstd level, default 19), WORKERS (threads, default 2), ARCHS.
set -euo pipefail
cache=${1:-$HOME/.cache/gpulibs-bench}
level=${LEVEL:-19}
workers=${WORKERS:-2}
archs=${ARCHS:-sm_75,sm_80,sm_86,sm_89,sm_90,sm_120}
root=$(cd "$(dirname "$0")/.." && pwd)
wheels=$cache/wheels
mkdir -p "$wheels"

plat=(--only-binary=:all: --python-version 3.11)
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux_2_12_x86_64 manylinux2010_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
  plat+=(--platform "$p")
done
if ! ls "$wheels"/onnxruntime_gpu-1.31.1-*.whl >/dev/null 2>&1 || ! ls "$wheels"/nvidia_cuda_runtime-*.whl >/dev/null 2>&1; then
  pip download "${plat[@]}" -d "$wheels" 'onnxruntime-gpu[cuda,cudnn]==1.31.1' >"$cache/pip-new.log"
fi
if ! ls "$wheels"/onnxruntime_gpu-1.31.0-*.whl >/dev/null 2>&1; then
  pip download "${plat[@]}" --no-deps -d "$wheels" 'onnxruntime-gpu==1.31.0' >"$cache/pip-old.log"
fi

(cd "$root" && cargo build --release --locked -p gpulibs-package --example package)
pkg=$root/target/release/examples/package
new_ort=$(ls "$wheels"/onnxruntime_gpu-1.31.1-*.whl)
old_ort=$(ls "$wheels"/onnxruntime_gpu-1.31.0-*.whl)
nv=("$wheels"/nvidia_*.whl)
# ONNX Runtime's TensorRT provider needs TensorRT, which neither pip extra installs.
excl=(--exclude libonnxruntime_providers_tensorrt.so)

for v in new old; do
  if [ ! -f "$cache/$v/package-report.json" ]; then
    rm -rf "$cache/$v"
    ort=$new_ort; ver=1.31.1
    if [ "$v" = old ]; then ort=$old_ort; ver=1.31.0; fi
    /usr/bin/time -f "package $v: %e s, %M KB max RSS" "$pkg" --out "$cache/$v" --per-arch "$archs" \
      --level "$level" --workers "$workers" --app bench --version "$ver" "${excl[@]}" "$ort" "${nv[@]}"
  fi
done

# The seed's way: every library of the ONNX Runtime wheel and of the NVIDIA wheels, one .tar.gz.
if [ ! -f "$cache/seed.tar.gz" ]; then
  rm -rf "$cache/seed" && mkdir -p "$cache/seed/lib"
  for w in "$new_ort" "${nv[@]}"; do
    python3 - "$w" "$cache/seed/lib" <<'PY'
import sys, zipfile, os, re
w, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(w) as z:
    for n in z.namelist():
        b = os.path.basename(n)
        if re.match(r"lib.*\.so(\.[0-9]+)*$", b):
            with z.open(n) as s, open(os.path.join(out, b), "wb") as d:
                d.write(s.read())
PY
  done
  tar -C "$cache/seed" -cf - lib | gzip -6 >"$cache/seed.tar.gz"
fi

python3 - "$cache" "$archs" "$wheels" <<'PY'
import json, os, sys, glob
cache, archs, wheels = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
new = json.load(open(os.path.join(cache, "new", "package-report.json")))
old = json.load(open(os.path.join(cache, "old", "package-report.json")))
seed = os.path.getsize(os.path.join(cache, "seed.tar.gz"))
pip = sum(os.path.getsize(w) for w in glob.glob(os.path.join(wheels, "*.whl"))
          if "1.31.0" not in os.path.basename(w))
comp = {c["id"]: c for c in new["components"]}
old_sha = {c["id"]: c["sha256"] for c in old["components"]}
nvidia = [i for i in comp if i.startswith("nvidia-")]
cuda_only = [i for i in nvidia if "cudnn" not in i]
MB = 1e6
print(f"zstd: see package-report.json; seed gzip -6 of {len(os.listdir(os.path.join(cache,'seed','lib')))} libraries")
print("components (compressed MB / unpacked MB / s):")
for c in new["components"]:
    print(f"  {c['id']:<28} {c['size']/MB:8.1f} {c['unpacked_size']/MB:9.1f} {c['seconds']:7.1f}")
print()
hdr = f"{'class':<8}{'seed':>9}{'pip':>9}{'gpulibs':>9}{'ratio':>7}{'reuse CUDA':>12}{'reuse all':>11}{'update':>9}"
print(hdr)
worst = 0
for a in archs:
    ort = ["onnxruntime", f"onnxruntime-cuda-{a}"]
    full = sum(comp[i]["size"] for i in ort + nvidia)
    reuse_cuda = sum(comp[i]["size"] for i in ort + [i for i in nvidia if i not in cuda_only])
    reuse_all = sum(comp[i]["size"] for i in ort)
    update = sum(comp[i]["size"] for i in ort + nvidia if old_sha.get(i) != comp[i]["sha256"])
    unchanged_nv = all(old_sha.get(i) == comp[i]["sha256"] for i in nvidia)
    worst = max(worst, full / seed)
    print(f"{a:<8}{seed/MB:9.1f}{pip/MB:9.1f}{full/MB:9.1f}{full/seed:7.2f}{reuse_cuda/MB:12.1f}{reuse_all/MB:11.1f}{update/MB:9.1f}"
          + ("" if unchanged_nv else "  (NVIDIA components changed!)"))
print()
print(f"goal 1, gpulibs <= 0.8 x seed for every class: worst ratio {worst:.2f} -> {'met' if worst <= 0.8 else 'NOT met'}")
best_reuse = max(sum(comp[i]['size'] for i in ['onnxruntime', f'onnxruntime-cuda-{a}']) for a in archs)
print(f"goal 2, < 70 MB with the NVIDIA libraries present: largest {best_reuse/MB:.1f} MB -> {'met' if best_reuse < 70e6 else 'NOT met'}")
changed = sorted(i for i in comp if old_sha.get(i) != comp[i]["sha256"])
print(f"goal 3, an update downloads only changed components: changed = {changed}")
PY
