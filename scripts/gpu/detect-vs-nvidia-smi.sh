#!/usr/bin/env bash
# Runs on a GPU machine (the lent H100): compares every field of `gpulibs detect --json` with
# what nvidia-smi reports, checks CUDA_VISIBLE_DEVICES handling, times detection, and inspects
# the CUDA libraries of the machine's PyTorch environment against the detected GPU.
#
# usage: scripts/gpu/detect-vs-nvidia-smi.sh GPULIBS_BINARY OUT_DIR
# Exits non-zero when a field disagrees.
set -euo pipefail
bin=${1:?usage: $0 GPULIBS_BINARY OUT_DIR}
out=${2:?usage: $0 GPULIBS_BINARY OUT_DIR}
mkdir -p "$out"

echo "== nvidia-smi"
nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,compute_cap,memory.total,memory.free,mig.mode.current,driver_version \
  --format=csv,noheader,nounits | tee "$out/nvidia-smi.csv"
nvidia-smi | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | tee "$out/nvidia-smi-cuda.txt"

echo "== gpulibs detect"
"$bin" detect --json > "$out/detect.json"
"$bin" detect --color never | tee "$out/detect.txt"

echo "== compare"
python3 - "$out" <<'PY'
import csv, json, sys
out = sys.argv[1]
d = json.load(open(f"{out}/detect.json"))
rows = list(csv.reader(open(f"{out}/nvidia-smi.csv"), skipinitialspace=True))
smi_cuda = open(f"{out}/nvidia-smi-cuda.txt").read().strip()
bad = 0
def check(what, ours, theirs):
    global bad
    ok = ours == theirs
    bad += not ok
    print(f"{'ok ' if ok else 'BAD'} {what:<28} gpulibs={ours!r:<44} nvidia-smi={theirs!r}")
check("source", d["source"], "nvml")
check("driver.version", d["driver"]["version"], rows[0][8])
check("driver.cuda", d["driver"]["cuda"], smi_cuda)
check("gpu count", len(d["gpus"]), len(rows))
for gpu, r in zip(sorted(d["gpus"], key=lambda g: g["nvml_index"]), rows):
    i = r[0]
    check(f"gpu{i}.nvml_index", gpu["nvml_index"], int(r[0]))
    check(f"gpu{i}.name", gpu["name"], r[1])
    check(f"gpu{i}.uuid", gpu["uuid"], r[2])
    # nvidia-smi prints the 8-digit PCI domain; NVML's busId is the same string.
    check(f"gpu{i}.pci_bus_id", gpu["pci_bus_id"].upper(), r[3].upper())
    check(f"gpu{i}.compute_capability", gpu["compute_capability"], r[4])
    check(f"gpu{i}.sm", gpu["sm"], "sm_" + r[4].replace(".", ""))
    # nvidia-smi reports MiB, rounded down; free memory moves between the two reads.
    check(f"gpu{i}.memory_total MiB", gpu["memory_total_bytes"] // 2**20, int(r[5]))
    free_delta = abs(gpu["memory_free_bytes"] // 2**20 - int(r[6]))
    check(f"gpu{i}.memory_free ±64 MiB", free_delta <= 64, True)
    mig = r[7]
    ours = "[N/A]" if gpu["mig"] is None else ("Enabled" if gpu["mig"]["current"] else "Disabled")
    check(f"gpu{i}.mig", ours, mig)
print(f"{bad} disagreement(s)")
sys.exit(1 if bad else 0)
PY

echo "== CUDA_VISIBLE_DEVICES"
uuid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["gpus"][0]["uuid"])' "$out/detect.json")
for v in "" "0" "1" "${uuid:0:12}" "0,0" "-1"; do
  # detect exits 3 when no GPU is visible: that is an answer here, not a failure.
  n=$( (CUDA_VISIBLE_DEVICES="$v" "$bin" detect --json || true) | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["gpus"]), [p["code"] for p in d["problems"]])')
  printf 'CUDA_VISIBLE_DEVICES=%-16q -> gpus, problems: %s\n' "$v" "$n"
done | tee "$out/visible.txt"

echo "== timing (10 runs of the whole binary)"
python3 - "$bin" <<'PY' | tee "$out/timing.txt"
import subprocess, sys, time
def median(cmd):
    ts = []
    for _ in range(10):
        t = time.perf_counter(); subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False); ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2] * 1000
a = median([sys.argv[1], "detect", "--json"])
b = median(["nvidia-smi", "--query-gpu=index,name,compute_cap,memory.total,driver_version", "--format=csv,noheader"])
print(f"gpulibs detect --json: {a:.1f} ms median; nvidia-smi --query-gpu: {b:.1f} ms median; ratio {a/b:.2f}")
PY

echo "== inspect the image's CUDA 13 libraries against the detected GPU"
site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
libs=()
for f in "$site"/nvidia/cu13/lib/libcublasLt.so.13 "$site"/nvidia/cu13/lib/libcudart.so.13 "$site"/nvidia/cu13/lib/libcufft.so.12 \
         "$site"/nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9 "$site"/nvidia/cudnn/lib/libcudnn.so.9; do
  [ -e "$f" ] && libs+=("$(readlink -f "$f")")
done
LD_LIBRARY_PATH="$site/nvidia/cu13/lib:$site/nvidia/cudnn/lib" "$bin" inspect --summary "${libs[@]}" | tee "$out/inspect-summary.txt" || true
"$bin" inspect --json "${libs[@]}" > "$out/inspect.json" || true
