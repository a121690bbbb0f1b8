#!/usr/bin/env bash
# Benchmark of `gpulibs install` against the raw transfer and against the seed's way.
#
# Builds a ~300 MB tar.zst artifact (incompressible bytes + ELF libraries from /usr/lib, which
# compress about 3:1), serves it from a local HTTP server on 127.0.0.1 (Python, with Range and
# a per-URL rate limit that stands in for a real link: /r<MBPS>/bench.tar.zst, 0 = unlimited),
# and measures at each rate, each run in a fresh root:
#
#   raw      curl URL -o /dev/null                                   (the transfer alone)
#   saved    curl -o F; sync -f F                                    (the archive, made durable)
#   gpulibs  gpulibs install --manifest M --allow-unsigned           (download + sha256 + libzstd
#                                                                     + unpack + fsync, one pass)
#   seed     curl -o F; sha256sum F; tar -I zstd -xf F; cp -rL; rm F (download, hash, extract, copy)
#
# and once, with no transfer at all:
#
#   offline  gpulibs install --offline DIR                           (the same from a local file)
#
# For each: wall time, and from /proc/self/io of a wrapper that reaped the command: rchar
# (bytes read through read(2)/recv(2), page cache and sockets included) and read_bytes (bytes
# the block layer read from storage; small when everything is cached). The last lines compare
# gpulibs / raw with the target (1.15) at every rate.
#
# Usage: scripts/bench-install.sh [--rate LIST] [--size-mb N] [--runs N] [--keep]
#   --rate LIST   comma-separated server rates in MB/s, 0 = unlimited (default 50,100,200,0;
#                 on unlimited loopback the disk and the decoder, not the link, are the bound)
#   --size-mb N   incompressible part in MB (default 220; the ELF part is about 200 MB raw)
#   --runs N      runs of each measurement; the median is reported (default 3)
# Needs: python3, curl, zstd, tar, sha256sum, and a release build (built if missing).
set -euo pipefail

RATES=50,100,200,0
TARGET=1.15
SIZE_MB=220
RUNS=3
KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rate) RATES="$2"; shift 2 ;;
    --size-mb) SIZE_MB="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

REPO="$(cd "$(dirname "$0")/.." && pwd)"
GPULIBS="$REPO/target/release/gpulibs"
if [[ ! -x "$GPULIBS" ]]; then
  (cd "$REPO" && cargo build --release --locked -p gpulibs-cli)
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpulibs-bench.XXXXXX")"
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
  [[ "$KEEP" == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT

echo "work directory: $WORK"
mkdir -p "$WORK/content/lib" "$WORK/serve"
head -c "$((SIZE_MB * 1000 * 1000))" /dev/urandom > "$WORK/content/lib/libnoise.so.1"
# Real shared libraries: compressible the way CUDA libraries are.
python3 - "$WORK/content/lib/libelf-mix.so.1" <<'EOF'
import os, sys
out, budget = open(sys.argv[1], "wb"), 200 * 1000 * 1000
for base in ("/usr/lib", "/usr/lib64", "/usr/local/lib"):
    for dirpath, _, files in os.walk(base):
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            if ".so" not in f or os.path.islink(p) or budget <= 0:
                continue
            try:
                data = open(p, "rb").read(budget)
            except OSError:
                continue
            out.write(data)
            budget -= len(data)
# Not enough libraries on this machine: top up with text, which compresses too.
while budget > 0:
    chunk = (b"".join(b"%d gpulibs bench line\n" % i for i in range(20000)))[:budget]
    out.write(chunk)
    budget -= len(chunk)
EOF
head -c 1000 /dev/urandom > "$WORK/content/lib/libonnxruntime.so.1.0.0"
ln -s libonnxruntime.so.1.0.0 "$WORK/content/lib/libonnxruntime.so"
tar -C "$WORK/content" -cf - lib | zstd -q -T0 -3 -o "$WORK/serve/bench.tar.zst"
ARCHIVE="$WORK/serve/bench.tar.zst"
SIZE=$(stat -c %s "$ARCHIVE")
UNPACKED=$(du -sb --apparent-size "$WORK/content/lib" | cut -f1)
SHA=$(sha256sum "$ARCHIVE" | cut -d' ' -f1)
echo "artifact: $SIZE bytes compressed, $UNPACKED bytes unpacked"

# A threaded HTTP server with Range and an optional rate limit.
PORT_FILE="$WORK/port"
python3 - "$WORK/serve" "$PORT_FILE" <<'EOF' &
import http.server, os, re, socketserver, sys, time
root, port_file = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        # /r<MBPS>/name: name at MBPS megabytes per second (0: as fast as loopback goes).
        m = re.fullmatch(r"/r(\d+)/([^/]+)", self.path)
        rate = float(m.group(1)) * 1e6 if m else 0.0
        path = os.path.join(root, m.group(2) if m else self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
        size = os.path.getsize(path)
        start = 0
        r = self.headers.get("Range", "")
        if r.startswith("bytes="):
            start = int(r[6:].split("-")[0] or 0)
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size-1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Connection", "close")
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            t0, sent = time.monotonic(), 0
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
                if rate > 0:
                    ahead = sent / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
open(port_file, "w").write(str(s.server_address[1]))
s.serve_forever()
EOF
SERVER_PID=$!
for _ in $(seq 50); do [[ -s "$PORT_FILE" ]] && break; sleep 0.1; done
BASE="http://127.0.0.1:$(cat "$PORT_FILE")"

# manifest RATE: writes a manifest whose archive is served at RATE MB/s; prints its path.
manifest() {
  cat > "$WORK/manifest-$1.toml" <<EOF
schema_version = 1
app = "bench"
version = "1"

[[components]]
id = "bench"
kind = "onnxruntime"
version = "1"

[components.archive]
url = "$BASE/r$1/bench.tar.zst"
sha256 = "$SHA"
size = $SIZE
unpacked_size = $UNPACKED
format = "tar.zst"

[[variants]]
name = "cpu"
device = "cpu"
components = ["bench"]
EOF
  echo "$WORK/manifest-$1.toml"
}

# measure NAME COMMAND...: runs COMMAND under a wrapper that reaps it and reads /proc/self/io,
# RUNS times; prints the median line "NAME wall_s rchar read_bytes".
measure() {
  local name="$1"; shift
  local lines=()
  for i in $(seq "$RUNS"); do
    rm -rf "$WORK/root" "$WORK/seed" "$WORK/seed.tar.zst"
    sync
    lines+=("$(python3 - "$@" <<'EOF'
import os, subprocess, sys, time
def io():
    d = {}
    for line in open("/proc/self/io"):
        k, v = line.split(":")
        d[k] = int(v)
    return d
before = io()
t0 = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.monotonic() - t0
after = io()
if r.returncode != 0:
    sys.exit(f"command failed ({r.returncode}): {' '.join(sys.argv[1:])}")
print(f"{wall:.3f} {after['rchar'] - before['rchar']} {after['read_bytes'] - before['read_bytes']}")
EOF
)")
  done
  printf '%s\n' "${lines[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p" | sed "s/^/$name /"
}

export GPULIBS_HOME="$WORK/root"
RESULTS="$WORK/results"
{
  echo "0 $(measure offline "$GPULIBS" install --manifest "$(manifest 0)" --allow-unsigned --cpu \
    --no-reuse --no-verify --offline "$WORK/serve")"
  for RATE in ${RATES//,/ }; do
    URL="$BASE/r$RATE/bench.tar.zst"
    M="$(manifest "$RATE")"
    echo "$RATE $(measure raw curl -sS -o /dev/null "$URL")"
    echo "$RATE $(measure saved bash -c "set -e
      curl -sS -o '$WORK/seed.tar.zst' '$URL'
      sync -f '$WORK/seed.tar.zst'
      rm -f '$WORK/seed.tar.zst'")"
    echo "$RATE $(measure gpulibs "$GPULIBS" install --manifest "$M" --allow-unsigned --cpu \
      --no-reuse --no-verify)"
    echo "$RATE $(measure seed bash -c "set -e
      curl -sS -o '$WORK/seed.tar.zst' '$URL'
      echo '$SHA  $WORK/seed.tar.zst' | sha256sum -c --quiet
      mkdir -p '$WORK/seed/x' '$WORK/seed/libs'
      tar -I zstd -xf '$WORK/seed.tar.zst' -C '$WORK/seed/x'
      cp -rL '$WORK/seed/x/lib/.' '$WORK/seed/libs/'
      sync -f '$WORK/seed/libs'
      rm -f '$WORK/seed.tar.zst'")"
  done
} | tee "$RESULTS"

python3 - "$RESULTS" "$SIZE" "$UNPACKED" "$RATES" "$TARGET" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    rate, name, *vals = line.split()
    rows[(float(rate), name)] = vals
size, unpacked = int(sys.argv[2]), int(sys.argv[3])
rates, target = [float(r) for r in sys.argv[4].split(",")], float(sys.argv[5])
def label(rate):
    return "unlimited" if rate == 0 else f"{rate:.0f} MB/s"
print()
print(f"artifact {size/1e6:.0f} MB compressed, {unpacked/1e6:.0f} MB unpacked; median of runs")
wall, rchar, rb = rows[(0.0, "offline")]
print(f"offline (no transfer): {float(wall):.2f} s, read(2) {int(rchar)/1e6:.0f} MB "
      f"= {int(rchar)/size:.2f} x the archive, disk read {int(rb)/1e6:.0f} MB")
verdicts = []
for rate in rates:
    raw = float(rows[(rate, "raw")][0])
    print()
    print(f"server rate {label(rate)}")
    print(f"{'':8} {'wall s':>8} {'/ raw':>7} {'MB/s':>7} {'read(2) MB':>11} {'x archive':>10} "
          f"{'disk read MB':>13}")
    for name in ("raw", "saved", "gpulibs", "seed"):
        wall, rchar, rb = rows[(rate, name)]
        wall, rchar, rb = float(wall), int(rchar), int(rb)
        print(f"{name:8} {wall:8.2f} {wall/raw:7.2f} {size/1e6/wall:7.0f} {rchar/1e6:11.0f} "
              f"{rchar/size:10.2f} {rb/1e6:13.0f}")
    verdicts.append((label(rate), float(rows[(rate, "gpulibs")][0]) / raw,
                     float(rows[(rate, "saved")][0]) / raw))
print()
print(f"gpulibs / raw transfer (target <= {target}):")
for name, ratio, saved in verdicts:
    mark = "met" if ratio <= target else "NOT met"
    print(f"  {name:>10}  {ratio:6.2f}  {mark:8} (saving the archive durably alone: {saved:.2f})")
EOF
