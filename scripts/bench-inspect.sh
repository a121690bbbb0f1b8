#!/usr/bin/env bash
# Benchmark of `gpulibs inspect` against `cuobjdump --list-elf` on the same files, in one run:
# wall time on a warm page cache, peak RSS, and how many bytes each tool reads from disk.
# See scripts/README.md and docs/inspect-parity.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/bench-inspect.sh [OPTIONS] [FILE...]

Times, on each FILE (default: libonnxruntime_providers_cuda.so from onnxruntime-gpu 1.31.1 and
libcufft.so.11 from nvidia-cufft-cu12 11.4.1.4, fetched into the parity cache when missing):

  gpulibs inspect --no-deps --json --gpu 9.0 FILE   kernels only
  gpulibs inspect --json --gpu 9.0 FILE             kernels and dependency resolution
  cuobjdump --list-elf FILE                         NVIDIA's listing (nvidia-cuda-cuobjdump 13.5.37)

1. Time on a warm page cache (the file is read once before timing): hyperfine when installed
   (apt-get install -y hyperfine), else a loop timed with `date +%s%N`; the median is reported,
   with the ratio cuobjdump / gpulibs.
2. Peak RSS (/usr/bin/time). For gpulibs most of it is the memory-mapped file (page cache,
   shared and reclaimable); cuobjdump copies the file into its heap.
3. Bytes read: the file alone is evicted from the page cache (posix_fadvise DONTNEED, no root
   needed, other files untouched), the tool runs once, and /usr/bin/time's "File system inputs"
   (512-byte blocks) and major faults say what came from disk; strace counts the opens, mmaps
   and read() bytes on the file.

Options:
  --runs N        timed runs per command (default 10)
  --cache DIR     parity cache (default: $GPULIBS_PARITY_CACHE, else
                  ${XDG_CACHE_HOME:-$HOME/.cache}/gpulibs/parity)
  --gpulibs PATH  the gpulibs binary (default: target/release/gpulibs, built when missing)
  --cuobjdump P   cuobjdump binary (default: from the nvidia-cuda-cuobjdump wheel in the cache)
  --no-cold       skip step 3
  -h, --help      this help

Needs: python3 and pip (to fetch the default files), /usr/bin/time (apt-get install -y time);
optional: hyperfine, strace, fincore (util-linux).
EOF
}

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${GPULIBS_PARITY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpulibs/parity}
GPULIBS=""
CUOBJDUMP=""
RUNS=10
COLD=1
FILES=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
        --cache) CACHE=${2:?--cache needs a directory}; shift 2 ;;
        --gpulibs) GPULIBS=${2:?--gpulibs needs a path}; shift 2 ;;
        --cuobjdump) CUOBJDUMP=${2:?--cuobjdump needs a path}; shift 2 ;;
        --no-cold) COLD=0; shift ;;
        -*) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) FILES+=("$1"); shift ;;
    esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "error: --runs takes a positive number" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "error: /usr/bin/time is needed (apt-get install -y time)" >&2; exit 2; }

source "$REPO_ROOT/scripts/lib/wheels.sh"

# Prints the path of one member of a pinned wheel, fetching and unzipping it into the cache
# (the same layout as scripts/parity-cuobjdump.sh) when missing.
member_of() {
    local req=$1 member=$2 wheel out
    wheel=$(wheel_for "$req")
    out="$CACHE/lib/$(basename "$wheel" .whl)/$member"
    python3 - "$wheel" "$member" "$out" <<'PY'
import os, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    info = z.getinfo(member)
    if not (os.path.exists(out) and os.path.getsize(out) == info.file_size):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out + ".partial", "wb") as dst:
            while chunk := src.read(1 << 22):
                dst.write(chunk)
        os.replace(out + ".partial", out)
os.chmod(out, os.stat(out).st_mode | 0o755)
PY
    printf '%s\n' "$out"
}

if [[ -z "$GPULIBS" ]]; then
    GPULIBS="$REPO_ROOT/target/release/gpulibs"
    if [[ ! -x "$GPULIBS" ]]; then
        echo "building gpulibs (cargo build --release -p gpulibs-cli)" >&2
        (cd "$REPO_ROOT" && cargo build --release -p gpulibs-cli) >&2
    fi
fi
[[ -n "$CUOBJDUMP" ]] || CUOBJDUMP=$(member_of nvidia-cuda-cuobjdump==13.5.37 nvidia/cu13/bin/cuobjdump)
if [[ ${#FILES[@]} -eq 0 ]]; then
    FILES+=("$(member_of onnxruntime-gpu==1.31.1 onnxruntime/capi/libonnxruntime_providers_cuda.so)")
    FILES+=("$(member_of nvidia-cufft-cu12==11.4.1.4 nvidia/cufft/lib/libcufft.so.11)")
fi

now_ns() { date +%s%N; }
evict() {
    python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)' "$1"
}
cached_bytes() {
    if command -v fincore >/dev/null; then fincore -b -n -o RES "$1" | tr -d ' '; else echo "?"; fi
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "gpulibs:   $("$GPULIBS" --version) ($GPULIBS)"
echo "cuobjdump: $("$CUOBJDUMP" --version | grep -o 'V[0-9][0-9.]*' | head -n 1) ($CUOBJDUMP)"
echo "machine:   $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date:      $(date -u +%Y-%m-%dT%H:%MZ)"

SUMMARY=()
for FILE in "${FILES[@]}"; do
    [[ -r "$FILE" ]] || { echo "error: cannot read '$FILE'" >&2; exit 2; }
    SIZE=$(stat -c %s "$FILE")
    LABEL=$(basename "$FILE")
    echo
    echo "== $LABEL ($SIZE bytes)"
    NAMES=("gpulibs --no-deps" "gpulibs (deps)" "cuobjdump --list-elf")
    CMDS=(
        "$GPULIBS inspect --no-deps --json --gpu 9.0 $FILE"
        "$GPULIBS inspect --json --gpu 9.0 $FILE"
        "$CUOBJDUMP --list-elf $FILE"
    )

    # 1. Warm page cache.
    cat "$FILE" >/dev/null
    echo "page cache: warm ($(cached_bytes "$FILE") of $SIZE bytes cached before timing)"
    MEDIANS=()
    if command -v hyperfine >/dev/null; then
        hyperfine --style basic --warmup 2 --runs "$RUNS" -i -N \
            --export-json "$WORK/h.json" \
            -n "${NAMES[0]}" "${CMDS[0]}" -n "${NAMES[1]}" "${CMDS[1]}" \
            -n "${NAMES[2]}" "${CMDS[2]}" >"$WORK/h.txt" 2>&1 \
            || { cat "$WORK/h.txt" >&2; exit 1; }
        mapfile -t MEDIANS < <(python3 -c 'import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("%.4f %.4f" % (r["median"], r["min"]))' "$WORK/h.json")
        TIMER="hyperfine, $RUNS runs after 2 warm-ups, median"
    else
        for c in "${CMDS[@]}"; do
            TIMES=()
            for ((i = 0; i < RUNS + 1; i++)); do
                t0=$(now_ns)
                $c >/dev/null 2>&1 || true
                t1=$(now_ns)
                ((i == 0)) || TIMES+=($(((t1 - t0) / 1000)))
            done
            MEDIANS+=("$(printf '%s\n' "${TIMES[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.4f %.4f", m / 1e6, a[1] / 1e6}')")
        done
        TIMER="date +%s%N loop, $RUNS runs after 1 warm-up, median"
    fi

    # 2. Peak RSS, warm cache.
    RSS=()
    for c in "${CMDS[@]}"; do
        /usr/bin/time -f "%M" -o "$WORK/rss" $c >/dev/null 2>&1 || true
        RSS+=("$(tail -n 1 "$WORK/rss")")
    done

    MINS=()
    for i in 0 1 2; do
        MINS+=("${MEDIANS[$i]#* }")
        MEDIANS[i]=${MEDIANS[$i]% *}
    done
    printf '%-22s %12s %9s %10s %12s %14s\n' "command" "median (s)" "min (s)" "vs gpulibs" "peak RSS MB" "RSS/file size"
    for i in 0 1 2; do
        printf '%-22s %12s %9s %10s %12s %14s\n' "${NAMES[$i]}" "${MEDIANS[$i]}" "${MINS[$i]}" \
            "$(awk -v a="${MEDIANS[$i]}" -v b="${MEDIANS[0]}" 'BEGIN {printf "%.1fx", a / b}')" \
            "$(awk -v k="${RSS[$i]}" 'BEGIN {printf "%.0f", k / 1024}')" \
            "$(awk -v k="${RSS[$i]}" -v s="$SIZE" 'BEGIN {printf "%.2f", k * 1024 / s}')"
    done
    echo "($TIMER; warm page cache)"
    RATIO=$(awk -v a="${MEDIANS[2]}" -v b="${MEDIANS[0]}" 'BEGIN {printf "%.0f", a / b}')
    SUMMARY+=("$(printf '%-34s gpulibs %8ss  cuobjdump %8ss  cuobjdump/gpulibs %5sx  RSS %s MB vs %s MB' \
        "$LABEL" "${MEDIANS[0]}" "${MEDIANS[2]}" "$RATIO" \
        "$(awk -v k="${RSS[0]}" 'BEGIN {printf "%.0f", k / 1024}')" \
        "$(awk -v k="${RSS[2]}" 'BEGIN {printf "%.0f", k / 1024}')")")

    # 3. Bytes read from disk, file evicted from the page cache first.
    if [[ $COLD -eq 1 ]]; then
        echo
        printf '%-22s %14s %12s %13s %8s %6s %6s %12s\n' "cold, file evicted" "disk bytes" "x file size" "major faults" "time s" "opens" "mmaps" "read() bytes"
        for i in 0 1 2; do
            evict "$FILE"
            before=$(cached_bytes "$FILE")
            /usr/bin/time -f "%I %F %e" -o "$WORK/cold" ${CMDS[$i]} >/dev/null 2>&1 || true
            read -r inputs majors secs < <(tail -n 1 "$WORK/cold")
            opens="-" mmaps="-" rbytes="-"
            if command -v strace >/dev/null; then
                # Warm now; strace only counts calls, which do not depend on the cache.
                strace -f -y -e trace=openat,open,mmap,read,pread64 -o "$WORK/st" ${CMDS[$i]} >/dev/null 2>&1 || true
                read -r opens mmaps rbytes < <(python3 - "$WORK/st" "$FILE" <<'PY'
import re, sys
trace, path = sys.argv[1], sys.argv[2]
opens = mmaps = rbytes = 0
for line in open(trace, errors="replace"):
    if re.search(r'open(at)?\(.*"%s"' % re.escape(path), line) and "= -1" not in line:
        opens += 1
    elif "mmap(" in line and "<%s>" % path in line:
        mmaps += 1
    elif re.search(r"\b(read|pread64)\(\d+<%s>" % re.escape(path), line):
        m = re.search(r"= (\d+)\s*$", line)
        rbytes += int(m.group(1)) if m else 0
print(opens, mmaps, rbytes)
PY
)
            fi
            printf '%-22s %14s %12s %13s %8s %6s %6s %12s\n' "${NAMES[$i]}" "$((inputs * 512))" \
                "$(awk -v b="$((inputs * 512))" -v s="$SIZE" 'BEGIN {printf "%.2f", b / s}')" \
                "$majors" "$secs" "$opens" "$mmaps" "$rbytes"
            [[ "$before" == "0" || "$before" == "?" ]] || echo "  note: $before bytes were still cached before this run"
        done
        echo "(disk bytes: /usr/bin/time 'File system inputs' x 512 after posix_fadvise DONTNEED on the file;"
        echo " includes kernel readahead; opens/mmaps/read() bytes: strace on the file's descriptors)"
    fi
done

echo
echo "== summary (warm page cache, median)"
printf '%s\n' "${SUMMARY[@]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
