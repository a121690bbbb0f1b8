#!/usr/bin/env bash
# Benchmark of `gpulibs install` against the raw transfer and against the seed's way.
#
# Builds a ~300 MB tar.zst artifact (incompressible bytes + ELF libraries from /usr/lib, which
# compress about 3:1), serves it from a local HTTP server on 127.0.0.1 (Python, with Range and
# an optional rate limit that stands in for a real link), and measures, each in a fresh root:
#
#   raw      curl URL -o /dev/null                                   (the transfer alone)
#   saved    curl -o F; sync -f F                                    (the archive, made durable)
#   gpulibs  gpulibs install --manifest M --allow-unsigned           (download + sha256 + libzstd
#                                                                     + unpack + fsync, one pass)
#   offline  gpulibs install --offline DIR                           (the same from a local file)
#   seed     curl -o F; sha256sum F; tar -I zstd -xf F; cp -rL; rm F (download, hash, extract, copy)
#
# For each: wall time, and from /proc/self/io of a wrapper that reaped the command: rchar
# (bytes read through read(2)/recv(2), page cache and sockets included) and read_bytes (bytes
# the block layer read from storage; small when everything is cached).
#
# Usage: scripts/bench-install.sh [--rate MBPS] [--size-mb N] [--runs N] [--keep]
#   --rate MBPS   limit the server to MBPS megabytes per second (default: unlimited, which on
#                 loopback makes the decoder, not the link, the bottleneck)
#   --size-mb N   incompressible part in MB (default 220; the ELF part is about 200 MB raw)
#   --runs N      runs of each measurement; the median is reported (default 3)
# Needs: python3, curl, zstd, tar, sha256sum, and a release build (built if missing).
set -euo pipefail

RATE=0
SIZE_MB=220
RUNS=3
KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rate) RATE="$2"; shift 2 ;;
    --size-mb) SIZE_MB="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
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
python3 - "$WORK/serve" "$RATE" "$PORT_FILE" <<'EOF' &
import http.server, os, socketserver, sys, time
root, rate, port_file = sys.argv[1], float(sys.argv[2]) * 1e6, sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        path = os.path.join(root, self.path.lstrip("/"))
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
URL="http://127.0.0.1:$(cat "$PORT_FILE")/bench.tar.zst"

cat > "$WORK/manifest.toml" <<EOF
schema_version = 1
app = "bench"
version = "1"

[[components]]
id = "bench"
kind = "onnxruntime"
version = "1"

[components.archive]
url = "$URL"
sha256 = "$SHA"
size = $SIZE
unpacked_size = $UNPACKED
format = "tar.zst"

[[variants]]
name = "cpu"
device = "cpu"
components = ["bench"]
EOF

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
  measure raw curl -sS -o /dev/null "$URL"
  measure saved bash -c "set -e
    curl -sS -o '$WORK/seed.tar.zst' '$URL'
    sync -f '$WORK/seed.tar.zst'
    rm -f '$WORK/seed.tar.zst'"
  measure gpulibs "$GPULIBS" install --manifest "$WORK/manifest.toml" --allow-unsigned --cpu \
    --no-reuse --no-verify
  measure offline "$GPULIBS" install --manifest "$WORK/manifest.toml" --allow-unsigned --cpu \
    --no-reuse --no-verify --offline "$WORK/serve"
  measure seed bash -c "set -e
    curl -sS -o '$WORK/seed.tar.zst' '$URL'
    echo '$SHA  $WORK/seed.tar.zst' | sha256sum -c --quiet
    mkdir -p '$WORK/seed/x' '$WORK/seed/libs'
    tar -I zstd -xf '$WORK/seed.tar.zst' -C '$WORK/seed/x'
    cp -rL '$WORK/seed/x/lib/.' '$WORK/seed/libs/'
    sync -f '$WORK/seed/libs'
    rm -f '$WORK/seed.tar.zst'"
} | tee "$RESULTS"

python3 - "$RESULTS" "$SIZE" "$UNPACKED" "$RATE" <<'EOF'
import sys
rows = {l.split()[0]: l.split()[1:] for l in open(sys.argv[1])}
size, unpacked, rate = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
raw = float(rows["raw"][0])
print()
print(f"artifact {size/1e6:.0f} MB compressed, {unpacked/1e6:.0f} MB unpacked; "
      f"server rate {'unlimited' if rate == 0 else f'{rate:.0f} MB/s'}; median of runs")
print(f"{'':8} {'wall s':>8} {'/ raw':>7} {'MB/s':>7} {'read(2) MB':>11} {'x archive':>10} {'disk read MB':>13}")
for name in ("raw", "saved", "gpulibs", "offline", "seed"):
    wall, rchar, rb = float(rows[name][0]), int(rows[name][1]), int(rows[name][2])
    print(f"{name:8} {wall:8.2f} {wall/raw:7.2f} {size/1e6/wall:7.0f} {rchar/1e6:11.0f} "
          f"{rchar/size:10.2f} {rb/1e6:13.0f}")
EOF
