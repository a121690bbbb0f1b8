#!/usr/bin/env bash
# Time and peak memory of `gpulibs inspect` on hostile files: a 50 GiB sparse non-ELF file, a
# 50 GiB sparse ELF file whose .nv_fatbin header claims 1 TiB, and a FIFO. Each must end in well
# under a second with a small peak RSS (the FIFO: refused, not waited on). See scripts/README.md.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/bench-inspect-bad-input.sh [GPULIBS]

GPULIBS: the binary to measure (default: target/release/gpulibs, else target/debug/gpulibs).
Needs /usr/bin/time, python3 and cc. Files are made in a temporary directory removed at exit.
USAGE
}
[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { usage; exit 0; }

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-}
if [[ -z "$bin" ]]; then
    for b in "$root/target/release/gpulibs" "$root/target/debug/gpulibs"; do
        [[ -x "$b" ]] && { bin=$b; break; }
    done
fi
[[ -x "${bin:-}" ]] || { echo "no gpulibs binary: cargo build --release -p gpulibs-cli" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. 50 GiB sparse, no ELF.
truncate -s 50G "$work/huge.bin"

# 2. A real shared object with a .nv_fatbin section, its section header patched to claim 1 TiB,
#    the file extended to 50 GiB with a hole.
printf '__attribute__((section(".nv_fatbin"), used)) static const char fb[64] = {0x50,0xed,0x55,0xba,1,0,16,0};\nint f(void){return 0;}\n' >"$work/lib.c"
cc -shared -fPIC -o "$work/libclaim.so" "$work/lib.c"
python3 - "$work/libclaim.so" <<'PY'
import struct, sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
shoff, = struct.unpack_from('<Q', b, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from('<HHH', b, 0x3A)
strtab, = struct.unpack_from('<Q', b, shoff + shstrndx * shentsize + 0x18)
for i in range(shnum):
    h = shoff + i * shentsize
    name, = struct.unpack_from('<I', b, h)
    if b[strtab + name:].startswith(b'.nv_fatbin\0'):
        struct.pack_into('<Q', b, h + 0x20, 1 << 40)
open(p, 'wb').write(b)
PY
truncate -s 50G "$work/libclaim.so"

# 3. A FIFO nobody writes to.
mkfifo "$work/fifo.so"

printf '%-40s %8s %12s %s\n' "case" "seconds" "peak RSS KiB" "exit"
for case in "huge.bin" "libclaim.so" "fifo.so"; do
    set +e
    /usr/bin/time -f '%e %M' -o "$work/time" timeout 120 "$bin" inspect --no-deps --json --gpu 9.0 \
        "$work/$case" >/dev/null 2>"$work/err"
    code=$?
    set -e
    read -r secs rss < <(tail -n 1 "$work/time") || true
    label=$case
    [[ $case != fifo.so ]] && label="$case (50 GiB sparse)"
    printf '%-40s %8s %12s %s\n' "$label" "$secs" "$rss" "$code"
    [[ $code -eq 124 ]] && echo "  timed out after 120 s" >&2
done
