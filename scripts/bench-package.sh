#!/usr/bin/env bash
# Bytes to download per GPU class for ONNX Runtime + CUDA 13 + cuDNN 9 (docs/package.md, benchmark):
#   seed     one gzip tarball of every library (the seed's way), same for every class
#   pip      `pip install onnxruntime-gpu[cuda,cudnn]==NEW`: every wheel pip downloads
#   gpulibs  per-arch components (zstd, ONNX Runtime thinned to the class, only the NVIDIA
#            libraries the CUDA provider loads)
#   present  gpulibs when some libraries are already on the system (cuDNN / the CUDA toolkit ones)
#   update   gpulibs from OLD to NEW, measured: both releases are packaged with the same settings
#            and, per class, the components of NEW's variant whose sha256 differs from OLD's
#            component of the same id are what an update downloads
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/bench-package.sh [options] [CACHE_DIR]

Packages two ONNX Runtime releases (onnxruntime-gpu wheels with their [cuda,cudnn] extras) per GPU
class and prints the bytes each class downloads: from scratch, with libraries already present, and
for the update OLD -> NEW (compared sha256 by sha256, not assumed).

options:
  --cache DIR        work directory (default ~/.cache/gpulibs-bench; also the positional argument):
                     pip reports, the seed tarball, and one package directory per release and zstd
                     setting (DIR/zstd<LEVEL>-w<WINDOW>/<VERSION>/)
  --wheels DIR       where wheels are looked for first and downloaded to (default CACHE/wheels)
  --old VER          the release updated from (default 1.31.0)
  --new VER          the release updated to (default 1.31.1)
  --level N          zstd level (default 19, env LEVEL); 19 takes ~30 min per release on 2 cores,
                     3 a few minutes
  --window-log N     zstd window log (default 27, env WINDOW_LOG)
  --workers N        compression threads (default 2, env WORKERS)
  --archs LIST       --per-arch list (default sm_75,sm_80,sm_86,sm_89,sm_90,sm_120, env ARCHS)
  --ref DIR          a package directory of NEW made with other zstd settings (e.g. level 19):
                     its archive sizes are also shown, for the same components and the same
                     changed set (the set does not depend on the level: archives are reproducible)
  --ref-label TEXT   how to name --ref's figures (default: its zstd.txt, else "ref")
  -h, --help         this text

Needs python3 (3.11+), pip (wheels, ~2 GB, come from the package index unless already in --wheels),
gzip, cargo. The two releases must resolve the same NVIDIA wheels (checked with pip's --report).
EOF
}

cache=$HOME/.cache/gpulibs-bench
wheels=
old=1.31.0
new=1.31.1
level=${LEVEL:-19}
wlog=${WINDOW_LOG:-27}
workers=${WORKERS:-2}
archs=${ARCHS:-sm_75,sm_80,sm_86,sm_89,sm_90,sm_120}
ref=
ref_label=
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --cache) cache=$2; shift 2 ;;
    --wheels) wheels=$2; shift 2 ;;
    --old) old=$2; shift 2 ;;
    --new) new=$2; shift 2 ;;
    --level) level=$2; shift 2 ;;
    --window-log) wlog=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --archs) archs=$2; shift 2 ;;
    --ref) ref=$2; shift 2 ;;
    --ref-label) ref_label=$2; shift 2 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) cache=$1; shift ;;
  esac
done
wheels=${wheels:-$cache/wheels}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$cache" "$wheels"
cache=$(cd "$cache" && pwd)
wheels=$(cd "$wheels" && pwd)

plat=(--only-binary=:all: --python-version 3.11)
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux_2_12_x86_64 manylinux2010_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
  plat+=(--platform "$p")
done

# 1. What pip resolves for each release (names, versions, wheel file names).
for v in "$old" "$new"; do
  if [ ! -s "$cache/pip-report-$v.json" ]; then
    tgt=$(mktemp -d)
    pip install --dry-run --ignore-installed --quiet --target "$tgt" "${plat[@]}" \
      --report "$cache/pip-report-$v.json" "onnxruntime-gpu[cuda,cudnn]==$v"
    rm -rf "$tgt"
  fi
done
# Prints "NAME VERSION FILE" per wheel of a report.
resolved() {
  python3 - "$1" <<'PY'
import json, os, sys, urllib.parse
for i in json.load(open(sys.argv[1]))["install"]:
    f = urllib.parse.unquote(os.path.basename(urllib.parse.urlparse(i["download_info"]["url"]).path))
    print(i["metadata"]["name"], i["metadata"]["version"], f)
PY
}
resolved "$cache/pip-report-$old.json" >"$cache/resolved-$old.txt"
resolved "$cache/pip-report-$new.json" >"$cache/resolved-$new.txt"
if ! diff <(grep '^nvidia' "$cache/resolved-$old.txt") <(grep '^nvidia' "$cache/resolved-$new.txt"); then
  echo "$old and $new resolve different NVIDIA wheels (above): not a pure ONNX Runtime update" >&2
  exit 1
fi
echo "pip resolves for both $old and $new:"
grep '^nvidia' "$cache/resolved-$new.txt" | sed 's/^/  /'

# 2. The wheels: from --wheels if there, else downloaded one by one at the resolved version.
wheel_of() { # VERSION-REPORT NAME-PREFIX -> paths
  awk -v p="$2" 'index($1, p) == 1 { print $3 }' "$cache/resolved-$1.txt" | sed "s|^|$wheels/|"
}
while read -r name ver file; do
  [ -f "$wheels/$file" ] || pip download --no-deps "${plat[@]}" -d "$wheels" "$name==$ver" >>"$cache/pip-download.log"
  [ -f "$wheels/$file" ] || { echo "pip did not produce $wheels/$file" >&2; exit 1; }
done < <(cat "$cache/resolved-$new.txt"; grep '^onnxruntime-gpu ' "$cache/resolved-$old.txt")
mapfile -t nv < <(wheel_of "$new" nvidia)
new_ort=$(wheel_of "$new" onnxruntime-gpu)
old_ort=$(wheel_of "$old" onnxruntime-gpu)

# 3. Package both releases with the same settings.
(cd "$root" && cargo build --release --locked -p gpulibs-package --example package)
pkg=$root/target/release/examples/package
# ONNX Runtime's TensorRT provider needs TensorRT, which neither pip extra installs.
excl=(--exclude libonnxruntime_providers_tensorrt.so)
outs=$cache/zstd$level-w$wlog
stamp="zstd level $level, window log $wlog, long matching, $workers threads, --per-arch $archs"
for v in "$new" "$old"; do
  ort=$new_ort; [ "$v" = "$old" ] && ort=$old_ort
  out=$outs/$v
  if [ ! -f "$out/package-report.json" ] || [ "$(cat "$out/zstd.txt" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$out" && mkdir -p "$outs"
    /usr/bin/time -f "package $v: %e s, %M KB max RSS" "$pkg" --out "$out" --per-arch "$archs" \
      --level "$level" --window-log "$wlog" --workers "$workers" --app bench --version "$v" \
      "${excl[@]}" "$ort" "${nv[@]}" 2>&1 | grep -v '^warning: ' | tee "$outs/package-$v.log"
    echo "$stamp" >"$out/zstd.txt"
  fi
done

# 4. The seed's way: every library of the ONNX Runtime wheel and of the NVIDIA wheels, one .tar.gz.
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
  tar -C "$cache/seed" -cf - lib | gzip -6 >"$cache/seed.tar.gz.part"
  mv "$cache/seed.tar.gz.part" "$cache/seed.tar.gz"
fi

# 5. The tables.
python3 - "$outs/$new" "$outs/$old" "$cache" "$wheels" "$new" "$old" "$ref" "$ref_label" <<'PY'
import os, sys, tomllib
newd, oldd, cache, wheel_dir, new_v, old_v, ref, ref_label = sys.argv[1:]
MB = 1e6
def manifest(d):
    m = tomllib.load(open(os.path.join(d, "manifest.toml"), "rb"))
    comps = {c["id"]: c["archive"] for c in m["components"]}
    return comps, {v["name"]: v["components"] for v in m["variants"]}
def label(d, given):
    if given: return given
    try: return open(os.path.join(d, "zstd.txt")).read().split(",")[0].strip()
    except OSError: return "ref"
new, variants = manifest(newd)
old, _ = manifest(oldd)
seed = os.path.getsize(os.path.join(cache, "seed.tar.gz"))
wheels = [l.split()[2] for l in open(os.path.join(cache, f"resolved-{new_v}.txt"))]
pip_b = sum(os.path.getsize(os.path.join(wheel_dir, w)) for w in wheels)

changed = sorted(i for i in new if old.get(i, {}).get("sha256") != new[i]["sha256"])
same = sorted(i for i in new if i not in changed)
print(f"\n{label(newd, '')}: {old_v} -> {new_v}")
print("components, archive MB (new / old) and whether the sha256 is identical:")
for i in new:
    o = old.get(i)
    print(f"  {i:<26} {new[i]['size']/MB:9.1f} {o['size']/MB if o else float('nan'):9.1f}  "
          + ("same" if i in same else "CHANGED"))
only_ort = all(i.startswith("onnxruntime") for i in changed)
print(f"changed: {' '.join(changed)}")
print(f"only onnxruntime* components changed: {'yes' if only_ort else 'NO'}")

cudnn = lambda i: i.startswith("nvidia-cudnn")
sets = {
    "scratch": lambda i: True,
    # present on the system: the CUDA runtime and cuBLAS only
    "rt+cublas": lambda i: i not in ("nvidia-cuda-runtime", "nvidia-cublas"),
    # every CUDA toolkit library (runtime, cuBLAS, cuFFT, cuRAND, NVRTC, nvJitLink), not cuDNN
    "cuda": lambda i: not i.startswith("nvidia-") or cudnn(i),
    # the CUDA toolkit libraries and cuDNN
    "cuda+cudnn": lambda i: not i.startswith("nvidia-"),
    "update": lambda i: i in changed,
}
def table(comps, title):
    print(f"\n{title}, MB (10^6 bytes) to download")
    print(f"{'class':<8}{'seed':>9}{'pip':>9}{'scratch':>9}{'ratio':>7}{'rt+cublas':>11}{'cuda':>8}{'cuda+cudnn':>12}{'update':>9}")
    res = {}
    for a, need in variants.items():
        r = {k: sum(comps[i]["size"] for i in need if f(i)) for k, f in sets.items()}
        res[a] = r
        print(f"{a:<8}{seed/MB:9.1f}{pip_b/MB:9.1f}{r['scratch']/MB:9.1f}{r['scratch']/seed:7.2f}"
              f"{r['rt+cublas']/MB:11.1f}{r['cuda']/MB:8.1f}{r['cuda+cudnn']/MB:12.1f}{r['update']/MB:9.1f}")
    worst = max(r["scratch"] / seed for r in res.values())
    print(f"goal 1, scratch <= 0.8 x seed: worst {worst:.2f} -> {'met' if worst <= 0.8 else 'NOT met'}")
    for k, what in (("rt+cublas", "CUDA runtime + cuBLAS present"), ("cuda", "CUDA toolkit libraries present"),
                    ("cuda+cudnn", "CUDA toolkit libraries + cuDNN present")):
        m = max(r[k] for r in res.values())
        print(f"goal 2, < 70 MB with {what}: largest {m/MB:.1f} MB -> {'met' if m < 70e6 else 'NOT met'}")
    m = max(r["update"] for r in res.values())
    print(f"goal 3, update {old_v} -> {new_v} downloads only changed components: "
          f"{'met' if only_ort else 'NOT met'}, largest {m/MB:.1f} MB")

table(new, f"{label(newd, '')}, measured ({old_v} and {new_v} packaged, sha256 compared)")
if ref:
    refc, _ = manifest(ref)
    missing = [i for i in new if i not in refc]
    if missing:
        sys.exit(f"--ref {ref} lacks {missing}")
    # The changed set carries over only if --ref's archives hold the same tar bytes.
    import hashlib, shutil, subprocess
    if shutil.which("zstd"):
        def tar_sha(path):
            h = hashlib.sha256()
            with subprocess.Popen(["zstd", "-dc", "--long=31", path], stdout=subprocess.PIPE) as p:
                for b in iter(lambda: p.stdout.read(1 << 20), b""):
                    h.update(b)
            if p.returncode:
                sys.exit(f"zstd -d {path} failed")
            return h.hexdigest()
        arch = lambda d, i: os.path.join(d, os.path.basename(d_comps[d][i]["url"]))
        d_comps = {newd: new, ref: refc}
        diff = [i for i in new if tar_sha(arch(newd, i)) != tar_sha(arch(ref, i))]
        print(f"\n{ref}: uncompressed tar identical to {newd} for "
              + ("every component" if not diff else f"all but {diff} (its update column is not valid)"))
    else:
        print("\n(zstd not found: not checked that --ref's archives hold the same tar bytes)")
    table(refc, f"{label(ref, ref_label)}, sizes of {new_v} from {ref}; the update column uses the "
                f"changed set measured above")
PY
