#!/usr/bin/env bash
# Packs a built binary into gpulibs-<version>-<triple>.tar.gz and writes its .sha256
# (`sha256sum -c` format), reproducibly: names sorted, mtime = SOURCE_DATE_EPOCH, owner and group
# 0, fixed modes, gzip without a name or time stamp. Same inputs, same bytes.
#
#   scripts/dist/archive.sh TRIPLE BINARY [OUTDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=env.sh
source "$here/env.sh"
triple=${1:?usage: archive.sh TRIPLE BINARY [OUTDIR]}
binary=${2:?usage: archive.sh TRIPLE BINARY [OUTDIR]}
outdir=${3:-$DIST_OUT}
triple=$(dist_triple "$triple")
[ -f "$binary" ] || { echo "archive.sh: no binary at $binary (run scripts/dist/build.sh first)" >&2; exit 1; }

version=$(dist_version)
name=gpulibs-$version-$triple
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name" "$outdir"
install -m 0755 "$binary" "$stage/$name/gpulibs"
install -m 0644 "$DIST_REPO/docs/install-gpulibs.md" "$stage/$name/README.md"
tar --sort=name --format=gnu --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  --mode='u=rwX,go=rX' -C "$stage" -cf - "$name" | gzip -9 -n >"$outdir/$name.tar.gz.partial"
mv "$outdir/$name.tar.gz.partial" "$outdir/$name.tar.gz"
(cd "$outdir" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "archive: $outdir/$name.tar.gz ($(stat -c %s "$outdir/$name.tar.gz") bytes)"
echo "sha256:  $(cat "$outdir/$name.tar.gz.sha256")"
