#!/usr/bin/env bash
# Fails when an ELF file needs a glibc symbol version newer than --max (default 2.17, the
# manylinux2014 baseline), or links a shared library outside the manylinux2014 set.
#
#   scripts/dist/check-glibc.sh [--max 2.17] FILE...
#
# Reads the version-needs table (readelf -V: what the dynamic loader checks at start-up) and names
# the symbols that need each too-new version (readelf --dyn-syms). readelf reads any ELF machine,
# so this checks aarch64 binaries on an x86_64 host too.
set -euo pipefail
max=2.17
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --max) max=${2:?--max needs a version like 2.17}; shift 2 ;;
    -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) files+=("$1"); shift ;;
  esac
done
[ ${#files[@]} -gt 0 ] || { echo "usage: check-glibc.sh [--max 2.17] FILE..." >&2; exit 2; }
command -v readelf >/dev/null || { echo "check-glibc.sh needs readelf (Debian: apt-get install binutils)" >&2; exit 2; }

# Libraries manylinux2014 lets a binary link (PEP 599), plus the dynamic loaders.
allowed='^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libutil\.so\.1|libgcc_s\.so\.1|libstdc\+\+\.so\.6|libcrypt\.so\.1|libnsl\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1)$'

# version_gt A B: A > B, comparing dotted numbers.
version_gt() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -1)" = "$1" ]; }

status=0
for f in "${files[@]}"; do
  if [ ! -f "$f" ]; then echo "FAIL $f: no such file" >&2; status=1; continue; fi
  if ! head -c 4 "$f" | grep -q 'ELF'; then echo "FAIL $f: not an ELF file" >&2; status=1; continue; fi
  machine=$(readelf -h "$f" | sed -n 's/^ *Machine: *//p')
  needed=$(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  if [ -z "$needed" ]; then
    echo "FAIL $f: links no shared libraries (a static binary cannot dlopen ONNX Runtime or NVML)" >&2
    status=1; continue
  fi
  bad_libs=$(printf '%s\n' "$needed" | grep -Ev "$allowed" || true)
  # Every GLIBC_x.y the file needs, from the version-needs section.
  versions=$(readelf -V "$f" | grep -o 'Name: GLIBC_[0-9.]*' | sed 's/Name: GLIBC_//' | sort -uV)
  newest=$(printf '%s\n' "$versions" | tail -1)
  too_new=()
  for v in $versions; do version_gt "$v" "$max" && too_new+=("$v"); done
  if [ ${#too_new[@]} -gt 0 ]; then
    status=1
    echo "FAIL $f ($machine): needs glibc $newest, more than $max:" >&2
    for v in "${too_new[@]}"; do
      syms=$(readelf --dyn-syms -W "$f" | awk -v ver="@GLIBC_$v" 'index($8, ver) {sub(/@.*/, "", $8); print $8}' | sort -u | tr '\n' ' ')
      echo "  GLIBC_$v: ${syms:-(no symbol names; see readelf -V)}" >&2
    done
    echo "  fix: build with scripts/dist/build.sh (zig links against glibc $max: maturin --zig, or cargo zigbuild --target <triple>.$max)" >&2
  fi
  if [ -n "$bad_libs" ]; then
    status=1
    echo "FAIL $f: links libraries outside manylinux2014: $(echo "$bad_libs" | tr '\n' ' ')" >&2
  fi
  if [ ${#too_new[@]} -eq 0 ] && [ -z "$bad_libs" ]; then
    echo "ok   $f ($machine): newest glibc symbol version $newest <= $max; links $(echo "$needed" | tr '\n' ' ')"
  fi
done
exit $status
