#!/usr/bin/env bash
# Parity of `gpulibs inspect` with NVIDIA's `cuobjdump --list-elf` / `--list-ptx` on real
# libraries from pinned PyPI wheels, plus an independent reading of the fatbin headers.
# See scripts/README.md and docs/inspect-parity.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/parity-cuobjdump.sh [OPTIONS]

Compares the kernel targets `gpulibs inspect --json` reports with `cuobjdump --list-elf` and
`--list-ptx` (from the nvidia-cuda-cuobjdump wheel) on real CUDA libraries taken from pinned
wheels, and with an independent reading of the fatbin container and entry headers (Python,
embedded in this script).

For each library:
  1. cuobjdump view: cuobjdump reads only `.nv_fatbin` (or `__nv_relfatbin` when there is no
     `.nv_fatbin`). gpulibs' and the headers' per-target entry counts over the containers in
     that section must equal cuobjdump's exactly, after folding `sm_XYf` into `sm_XY` (cuobjdump
     names family-specific cubins without the `f`; `a` keeps its suffix). The script also lines
     the entries up one by one and prints how cuobjdump names each variant.
  2. whole file: gpulibs' per-target counts (exact names, PTX per ISA) and its containers per
     section must equal the header reader's over every section. Containers outside cuobjdump's
     section are listed as extras.
  Where cuobjdump aborts or reads nothing, only step 2 decides, and the abort is shown.

Exits 0 when everything agrees, 1 on any disagreement, 2 on a usage or setup error.

Options:
  --cache DIR     wheel and library cache (default: $GPULIBS_PARITY_CACHE, else
                  ${XDG_CACHE_HOME:-$HOME/.cache}/gpulibs/parity). Reused across runs.
  --gpulibs PATH  the gpulibs binary (default: target/release/gpulibs, built with
                  `cargo build --release -p gpulibs-cli` when missing)
  --only IDS      comma-separated library ids to check (see --list)
  --list          list the pinned libraries and exit
  -h, --help      this help

Needs: python3 (3.8+), pip, network access to the Python package index on a cold cache.
EOF
}

# id | pip requirement | member inside the wheel
LIBRARIES=(
    "ort-1.31.1|onnxruntime-gpu==1.31.1|onnxruntime/capi/libonnxruntime_providers_cuda.so"
    "ort-1.23.2|onnxruntime-gpu==1.23.2|onnxruntime/capi/libonnxruntime_providers_cuda.so"
    "curand|nvidia-curand-cu12==10.3.7.77|nvidia/curand/lib/libcurand.so.10"
    "cufft|nvidia-cufft-cu12==11.4.1.4|nvidia/cufft/lib/libcufft.so.11"
    "cublas|nvidia-cublas==13.10.0.20|nvidia/cu13/lib/libcublas.so.13"
    "cublaslt|nvidia-cublas==13.10.0.20|nvidia/cu13/lib/libcublasLt.so.13"
    "nvrtc|nvidia-cuda-nvrtc==13.5.37|nvidia/cu13/lib/libnvrtc.so.13"
)
CUOBJDUMP_REQ="nvidia-cuda-cuobjdump==13.5.37"
CUOBJDUMP_MEMBER="nvidia/cu13/bin/cuobjdump"

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${GPULIBS_PARITY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpulibs/parity}
GPULIBS=""
ONLY=""

while [[ $# -gt 0 ]]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --cache) CACHE=${2:?--cache needs a directory}; shift 2 ;;
        --gpulibs) GPULIBS=${2:?--gpulibs needs a path}; shift 2 ;;
        --only) ONLY=${2:?--only needs ids}; shift 2 ;;
        --list)
            printf '%-12s %-34s %s\n' id requirement member
            for l in "${LIBRARIES[@]}"; do
                IFS='|' read -r id req member <<<"$l"
                printf '%-12s %-34s %s\n' "$id" "$req" "$member"
            done
            printf '%-12s %-34s %s\n' "(tool)" "$CUOBJDUMP_REQ" "$CUOBJDUMP_MEMBER"
            exit 0 ;;
        *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

command -v python3 >/dev/null || { echo "error: python3 is needed" >&2; exit 2; }
python3 -m pip --version >/dev/null 2>&1 || { echo "error: pip is needed (python3 -m pip)" >&2; exit 2; }

SELECTED=()
for l in "${LIBRARIES[@]}"; do
    IFS='|' read -r id _ _ <<<"$l"
    if [[ -z "$ONLY" || ",$ONLY," == *",$id,"* ]]; then SELECTED+=("$l"); fi
done
if [[ ${#SELECTED[@]} -eq 0 ]]; then
    echo "error: --only '$ONLY' matches no library (see --list)" >&2
    exit 2
fi

if [[ -z "$GPULIBS" ]]; then
    GPULIBS="$REPO_ROOT/target/release/gpulibs"
    if [[ ! -x "$GPULIBS" ]]; then
        echo "building gpulibs (cargo build --release -p gpulibs-cli)" >&2
        (cd "$REPO_ROOT" && cargo build --release -p gpulibs-cli) >&2
    fi
fi
[[ -x "$GPULIBS" ]] || { echo "error: gpulibs binary '$GPULIBS' is not executable" >&2; exit 2; }

mkdir -p "$CACHE/wheels" "$CACHE/lib"

source "$REPO_ROOT/scripts/lib/wheels.sh"

# Lines handed to the checker: id|requirement|wheel|member
JOBS_FILE=$(mktemp)
trap 'rm -f "$JOBS_FILE"' EXIT
echo "tool|$CUOBJDUMP_REQ|$(wheel_for "$CUOBJDUMP_REQ")|$CUOBJDUMP_MEMBER" >>"$JOBS_FILE"
for l in "${SELECTED[@]}"; do
    IFS='|' read -r id req member <<<"$l"
    echo "$id|$req|$(wheel_for "$req")|$member" >>"$JOBS_FILE"
done

set +e
python3 - "$CACHE" "$GPULIBS" "$JOBS_FILE" <<'PY'
import collections, json, mmap, os, re, struct, subprocess, sys, tempfile, time, zipfile

CACHE, GPULIBS, JOBS_FILE = sys.argv[1:4]
FATBIN_MAGIC = 0xBA55ED50
FLAG_A, FLAG_F = 0x100000, 0x200000
CUOBJDUMP_SECTIONS = (".nv_fatbin", "__nv_relfatbin")


def extract(wheel, member):
    """Unzips one member of a wheel into the cache (once) and returns its path."""
    stem = os.path.basename(wheel)[: -len(".whl")]
    out = os.path.join(CACHE, "lib", stem, member)
    with zipfile.ZipFile(wheel) as z:
        info = z.getinfo(member)
        if not (os.path.exists(out) and os.path.getsize(out) == info.file_size):
            os.makedirs(os.path.dirname(out), exist_ok=True)
            tmp = out + ".partial"
            with z.open(info) as src, open(tmp, "wb") as dst:
                while True:
                    chunk = src.read(1 << 22)
                    if not chunk:
                        break
                    dst.write(chunk)
            os.replace(tmp, out)
    mode = os.stat(out).st_mode
    os.chmod(out, mode | 0o755)
    return out


# ---------------------------------------------------------------------------------------------
# Independent header reader: ELF64 section table, then fatbin containers found by their magic
# at any byte offset of a section's file data, then each container's entries.
# ---------------------------------------------------------------------------------------------

def elf_sections(mm):
    """[(name, offset, size)] of sections with file data, or None when not a readable ELF64."""
    if len(mm) < 64 or mm[:4] != b"\x7fELF" or mm[4] != 2 or mm[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", mm, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", mm, 0x3A)
    if shoff == 0 or shentsize < 64:
        return None
    if shnum == 0 and shoff + 64 <= len(mm):  # extended numbering: count in section 0
        shnum = struct.unpack_from("<Q", mm, shoff + 0x20)[0]
    if shoff + shnum * shentsize > len(mm):
        return None
    raw = []
    for i in range(shnum):
        b = shoff + i * shentsize
        name, typ = struct.unpack_from("<II", mm, b)
        off, size = struct.unpack_from("<QQ", mm, b + 0x18)
        raw.append((name, typ, off, size))
    if shstrndx >= shnum:
        return None
    _, _, stroff, strsize = raw[shstrndx]
    out = []
    for name, typ, off, size in raw:
        if typ == 8 or size == 0 or off >= len(mm):  # SHT_NOBITS or empty
            continue
        n0 = stroff + name
        n1 = mm.find(b"\0", n0, stroff + strsize)
        label = mm[n0:n1].decode("ascii", "replace") if n1 >= 0 else "(bad name)"
        out.append((label, off, min(size, len(mm) - off)))
    return out


def target_of(kind, arch, flags):
    suffix = "a" if flags & FLAG_A else ("f" if flags & FLAG_F else "")
    if kind == 2:
        return "sm_%d%s" % (arch, suffix)
    if kind == 1:
        return "compute_%d%s" % (arch, suffix)
    return "kind %d arch %d" % (kind, arch)


def read_containers(mm, start, end, notes):
    """Containers whose header starts in [start, end): [(offset, [(target, ptx_isa)])]."""
    found = []
    pos = start
    magic = struct.pack("<I", FATBIN_MAGIC)
    while True:
        pos = mm.find(magic, pos, end)
        if pos < 0:
            return found
        if pos + 16 > len(mm):
            return found
        _, version, hsize, fat_size = struct.unpack_from("<IHHQ", mm, pos)
        cend = pos + hsize + fat_size
        if version != 1 or hsize != 16 or cend > end:
            pos += 1  # a magic-looking word in other data, not a container
            continue
        if pos % 8:
            notes.append("container at %#x is not 8-byte aligned" % pos)
        entries = []
        e = pos + hsize
        while e < cend:
            if e + 64 > cend:
                if any(mm[e:cend]):
                    notes.append("container at %#x: entry header at %#x is cut" % (pos, e))
                break
            kind, _ver, ehsize, size = struct.unpack_from("<HHIQ", mm, e)
            if ehsize < 64 or e + ehsize + size > cend:
                if any(mm[e:cend]):
                    notes.append("container at %#x: bad entry at %#x" % (pos, e))
                break
            isa_minor, isa_major, arch = struct.unpack_from("<HHI", mm, e + 0x18)
            flags, = struct.unpack_from("<Q", mm, e + 0x28)
            isa = "%d.%d" % (isa_major, isa_minor) if kind == 1 else None
            entries.append((target_of(kind, arch, flags), isa))
            e += ehsize + size
        found.append((pos, entries))
        pos = cend


def read_headers(path):
    """Reads a file's containers per section: {section: [(offset, entries)]}, format, notes."""
    notes = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return {}, "empty", notes
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            secs = elf_sections(mm)
            if secs is None:
                return {"(file)": read_containers(mm, 0, len(mm), notes)}, "not elf", notes
            by_section = {}
            covered = 0
            for name, off, sz in sorted(secs, key=lambda s: (s[1], s[1] + s[2])):
                lo = max(off, covered)
                if lo < off + sz:
                    got = read_containers(mm, lo, off + sz, notes)
                    if got:
                        by_section.setdefault(name, []).extend(got)
                    covered = off + sz
            return by_section, "elf", notes
        finally:
            mm.close()


# ---------------------------------------------------------------------------------------------
# The two tools.
# ---------------------------------------------------------------------------------------------

def run_gpulibs(path):
    t = time.monotonic()
    p = subprocess.run([GPULIBS, "inspect", "--no-deps", "--json", "--gpu", "", path],
                       capture_output=True, text=True)
    dt = time.monotonic() - t
    if p.returncode not in (0, 3):
        raise SystemExit("gpulibs failed on %s (exit %d): %s" % (path, p.returncode, p.stderr))
    f = json.loads(p.stdout)["files"][0]
    counts = collections.Counter()
    for k in f["kernels"]:
        key = k["target"] + ("  (ISA %s)" % k["ptx_isa"] if k["ptx_isa"] else "")
        counts[key] += k["entries"]
    sections = {s["name"]: s["containers"] for s in f["sections"]}
    return counts, sections, f, dt


LINE = re.compile(r"^(ELF|PTX) file\s+\d+: .*\.(sm_\d+[a-z]*)\.(cubin|ptx)$")


def run_cuobjdump(tool, path):
    """Starts --list-elf and --list-ptx together; returns a function collecting both."""
    procs = {flag: subprocess.Popen([tool, flag, path], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
             for flag in ("--list-elf", "--list-ptx")}
    t = time.monotonic()

    def collect():
        out = {}
        for flag, p in procs.items():
            text, _ = p.communicate()
            names, other = [], []
            for line in text.splitlines():
                m = LINE.match(line.strip())
                if m:
                    # cuobjdump calls PTX files `sm_XY.ptx`; gpulibs calls the target compute_XY.
                    n = m.group(2)
                    names.append(n if m.group(1) == "ELF" else "compute_" + n[3:])
                elif line.strip():
                    other.append(line.strip())
            out[flag] = (p.returncode, names, other)
        return out, time.monotonic() - t
    return collect


def cuobjdump_name(target):
    """How cuobjdump is expected to name a target: `f` dropped, `a` kept."""
    return target[:-1] if re.match(r"^(sm|compute)_\d+f$", target) else target


# ---------------------------------------------------------------------------------------------

def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    def fmt(r):
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    print("  " + fmt(header))
    print("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        print("  " + fmt(r))


def strip_isa(key):
    return key.split("  (ISA")[0]


def check(lib_id, req, path, tool):
    print("\n== %s: %s (%s, %.1f MB)" % (lib_id, os.path.basename(path), req,
                                         os.path.getsize(path) / 1e6))
    problems = []
    collect = run_cuobjdump(tool, path)
    t = time.monotonic()
    headers, fmt, notes = read_headers(path)
    t_headers = time.monotonic() - t
    g_counts, g_sections, g_file, t_gpulibs = run_gpulibs(path)
    cu, t_cu = collect()

    # Whole file: gpulibs against the header reader, exact targets, PTX per ISA.
    h_counts = collections.Counter()
    h_by_section = collections.defaultdict(collections.Counter)
    for sec, conts in headers.items():
        for _, entries in conts:
            for target, isa in entries:
                key = target + ("  (ISA %s)" % isa if isa else "")
                h_counts[key] += 1
                h_by_section[sec][key] += 1
    h_sections = {s: len(c) for s, c in headers.items()}
    if g_sections != h_sections:
        problems.append("containers per section: gpulibs %s, headers %s" % (g_sections, h_sections))

    read_sec = next((s for s in CUOBJDUMP_SECTIONS if s in elf_section_names(path)), None)
    extra_secs = sorted(s for s in headers if s != read_sec)

    rows = []
    for key in sorted(set(g_counts) | set(h_counts), key=target_order):
        ok = g_counts[key] == h_counts[key]
        if not ok:
            problems.append("whole file, %s: gpulibs %d, headers %d" % (key, g_counts[key], h_counts[key]))
        rows.append([key, g_counts[key], h_counts[key]]
                    + [h_by_section[s][key] for s in ([read_sec] if read_sec else []) + extra_secs]
                    + ["ok" if ok else "DIFFERS"])
    print("whole file: gpulibs %d containers / %d entries, headers %d / %d (%s)" % (
        g_file["containers"], g_file["entries"], sum(h_sections.values()), sum(h_counts.values()), fmt))
    if rows:
        table(rows, ["target", "gpulibs", "headers"]
              + ["in " + s for s in ([read_sec] if read_sec else []) + extra_secs] + ["result"])
    else:
        print("  no fatbin containers in the file (both agree)")
    whole_problems = list(problems)
    for n in notes[:5]:
        print("  header note: " + n)

    # cuobjdump view: only the section cuobjdump reads, `f` folded into the base name.
    elf_rc, elf_names, elf_other = cu["--list-elf"]
    ptx_rc, ptx_names, ptx_other = cu["--list-ptx"]
    cu_counts = collections.Counter(elf_names) + collections.Counter(ptx_names)
    messages = [m for m in elf_other + ptx_other]
    aborted = [m for m in messages if "fatal" in m or "error" in m.lower()]
    no_code = [m for m in messages if "does not contain device code" in m]

    restricted_entries = [e for _, es in headers.get(read_sec, []) for e in es] if read_sec else []
    h_view = collections.Counter(cuobjdump_name(t) for t, _ in restricted_entries
                                 if t.startswith(("sm_", "compute_")))
    if extra_secs and read_sec:
        # gpulibs over the cuobjdump section alone: run it on that section's bytes.
        g_view_raw = gpulibs_on_section(path, read_sec)
    else:
        g_view_raw = collections.Counter({strip_isa(k): 0 for k in g_counts})
        for k, n in g_counts.items():
            g_view_raw[strip_isa(k)] += n
    g_view = collections.Counter()
    for k, n in g_view_raw.items():
        if k.startswith(("sm_", "compute_")):
            g_view[cuobjdump_name(k)] += n

    status = "read"
    if aborted:
        m = re.search(r"(?:fatal|error)\s*:\s*(.*?)(?: in '|$)", aborted[0])
        status = "aborted (%s)" % (m.group(1) if m else aborted[0])
    elif no_code and not cu_counts:
        status = "no device code"
    print("cuobjdump (%s): %s; --list-elf exit %d, %d cubins; --list-ptx exit %d, %d PTX" % (
        read_sec or "no .nv_fatbin", status, elf_rc, len(elf_names), ptx_rc, len(ptx_names)))
    for m in dict.fromkeys(messages):
        print("  cuobjdump says: " + m.replace(path, os.path.basename(path))[:160])

    # Line cuobjdump's ELF list up with the entries in file order to see how it names variants.
    h_elf_order = [t for t, _ in restricted_entries if t.startswith("sm_")]
    naming = collections.Counter()
    for mine, theirs in zip(h_elf_order, elf_names):
        naming[(mine, theirs)] += 1
    in_order = all(cuobjdump_name(m) == t for (m, t) in naming)
    variants = sorted((m, t, n) for (m, t), n in naming.items() if m != t or m[-1] in "af")
    if variants:
        print("  how cuobjdump names variant cubins (entries in file order): " + ", ".join(
            "%s -> %s (%d)" % v for v in variants))
    if elf_names and not in_order:
        print("  note: cuobjdump's ELF order differs from file order; compared as multisets only")

    if aborted:
        # cuobjdump stopped part way: what it did list must be the first entries in file order.
        prefix_ok = [cuobjdump_name(t) for t in h_elf_order[: len(elf_names)]] == elf_names
        print("  cuobjdump listed %d cubin(s) before aborting; %s the first %d cubins in file order"
              % (len(elf_names), "they are" if prefix_ok else "they are NOT", len(elf_names)))
        if not prefix_ok:
            problems.append("cuobjdump's partial list is not a prefix of the headers' entries")
        verdict_view = "n/a (aborted)"
    else:
        rows = []
        for name in sorted(set(cu_counts) | set(g_view) | set(h_view), key=target_order):
            ok = cu_counts[name] == g_view[name] == h_view[name]
            if not ok:
                problems.append("%s, %s: cuobjdump %d, gpulibs %d, headers %d" % (
                    read_sec, name, cu_counts[name], g_view[name], h_view[name]))
            rows.append([name, cu_counts[name], g_view[name], h_view[name], "ok" if ok else "DIFFERS"])
        if rows:
            table(rows, ["target (cuobjdump name)", "cuobjdump", "gpulibs", "headers", "result"])
        verdict_view = "agree" if not any(r[-1] != "ok" for r in rows) else "DIFFER"

    extra = {s: len(headers[s]) for s in extra_secs}
    extra_entries = sum(len(es) for s in extra_secs for _, es in headers[s])
    print("extra containers outside cuobjdump's section: %s" % (
        ", ".join("%s: %d containers" % kv for kv in extra.items()) if extra else "none"))
    print("time: cuobjdump (both lists, in parallel) %.2fs, gpulibs %.2fs, header reader %.2fs"
          % (t_cu, t_gpulibs, t_headers))
    for p in problems:
        print("  DISAGREEMENT: " + p)
    return {
        "id": lib_id, "file": os.path.basename(path), "req": req,
        "cuobjdump": status if len(status) < 40 else status[:37] + "...",
        "view": verdict_view, "whole": "agree" if not whole_problems else "DIFFER",
        "cu_entries": len(elf_names) + len(ptx_names),
        "g_entries": g_file["entries"], "extra": "%d in %s" % (extra_entries, ",".join(extra)) if extra else "-",
        "ok": not problems,
    }


def target_order(key):
    m = re.match(r"^(sm|compute)_(\d+)([a-z]?)", key)
    if not m:
        return (2, 0, key)
    return (0 if m.group(1) == "sm" else 1, int(m.group(2)), key)


def elf_section_names(path):
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return []
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            return [s[0] for s in (elf_sections(mm) or [])]
        finally:
            mm.close()


def gpulibs_on_section(path, section):
    """gpulibs' per-target counts over one section alone (its bytes as a bare fatbin file)."""
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            (_, off, size), = [s for s in elf_sections(mm) if s[0] == section]
            with tempfile.NamedTemporaryFile(dir=CACHE, suffix=".fatbin") as tmp:
                tmp.write(mm[off:off + size])
                tmp.flush()
                counts, _, _, _ = run_gpulibs(tmp.name)
        finally:
            mm.close()
    out = collections.Counter()
    for k, n in counts.items():
        out[strip_isa(k)] += n
    return out


def main():
    jobs = [line.rstrip("\n").split("|") for line in open(JOBS_FILE) if line.strip()]
    tool_job, lib_jobs = jobs[0], jobs[1:]
    tool = extract(tool_job[2], tool_job[3])
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"V(\d+\.\d+\.\d+)", version)
    gv = subprocess.run([GPULIBS, "--version"], capture_output=True, text=True).stdout.strip()
    print("cuobjdump %s (%s), %s, cache %s" % (m.group(1) if m else "?", tool_job[1], gv, CACHE))
    results = []
    for lib_id, req, wheel, member in lib_jobs:
        results.append(check(lib_id, req, extract(wheel, member), tool))

    print("\n== summary")
    table([[r["id"], r["file"], r["cuobjdump"], r["cu_entries"], r["g_entries"], r["view"], r["whole"],
            r["extra"], "PASS" if r["ok"] else "FAIL"] for r in results],
          ["library", "file", "cuobjdump", "cuobjdump entries", "gpulibs entries",
           "cuobjdump view", "whole file vs headers", "entries elsewhere", "result"])
    bad = [r["id"] for r in results if not r["ok"]]
    print("\n" + ("parity: FAIL (%s)" % ", ".join(bad) if bad else "parity: PASS (%d libraries)" % len(results)))
    return 1 if bad else 0


sys.exit(main())
PY
status=$?
set -e
exit "$status"
