#!/bin/sh
# The app's installer, as a plain shell script: install the GPU libraries with gpulibs, then
# write the environment file the app's service reads.
#
#   install-gpu-libs.sh            (GPULIBS_BIN: the gpulibs binary; default: gpulibs on PATH)
#
# Exit status: 0 installed or already up to date (on the GPU or the CPU runtime), or nothing
# in the release runs here (gpulibs' exit 3); else gpulibs install's.
set -eu

APP=voicey
MANIFEST=${VOICEY_MANIFEST:-https://downloads.example.com/voicey/gpu-libs/1.0.0/manifest.toml}
PUBLIC_KEY=${VOICEY_PUBLIC_KEY:-RWQ_REPLACE_WITH_THE_SECOND_LINE_OF_vendor.pub}
GPULIBS=${GPULIBS_BIN:-gpulibs}

if ! command -v "$GPULIBS" >/dev/null 2>&1; then
  echo "$APP installer: $GPULIBS not found: set GPULIBS_BIN or put gpulibs on PATH" >&2
  exit 127
fi

status=0
"$GPULIBS" install --app "$APP" --manifest "$MANIFEST" --public-key "$PUBLIC_KEY" || status=$?
if [ "$status" -eq 3 ]; then
  # Nothing in the release runs here and it has no CPU variant: the app runs on its own.
  echo "$APP installer: no GPU libraries for this machine (see above)" >&2
  exit 0
fi
if [ "$status" -ne 0 ]; then
  echo "$APP installer: gpulibs install failed (exit $status); nothing was changed" >&2
  exit "$status"
fi

# KEY=value lines for systemd's EnvironmentFile= (LD_LIBRARY_PATH, ORT_DYLIB_PATH).
conf="${XDG_CONFIG_HOME:-$HOME/.config}/$APP"
mkdir -p "$conf"
"$GPULIBS" env --app "$APP" --format systemd > "$conf/gpu.env.tmp"
mv "$conf/gpu.env.tmp" "$conf/gpu.env"
echo "$APP installer: environment written to $conf/gpu.env"
