# Sourced by scripts/dist/*.sh: pinned tools, the dist target dir and the reproducibility settings.
# One cargo build per target (maturin's, in build.sh) gives the wheel, and the binary in it is the one
# the archive and the npm package carry.
# shellcheck shell=bash

DIST_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Pinned tool versions (PyPI wheels, installed with pip into a venv under the dist dir). maturin
# --zig links with zig against the glibc of the --compatibility tag (manylinux2014: 2.17), the way
# `cargo zigbuild --target <triple>.2.17` does (maturin uses cargo-zigbuild's code for it).
DIST_MATURIN_VERSION=1.16.0
DIST_ZIG_VERSION=0.14.1
# manylinux2014 = glibc 2.17; the check fails on any versioned symbol newer than this.
DIST_GLIBC=2.17

DIST_DIR=${GPULIBS_DIST_DIR:-$DIST_REPO/target/dist}
DIST_TOOLS=$DIST_DIR/tools
DIST_OUT=$DIST_DIR/out
export CARGO_TARGET_DIR=$DIST_DIR/cargo

# Reproducible: the commit time as the build time, no absolute paths of this checkout or of the
# cargo home in the binary, no debug info (the shipped binary keeps its symbol names).
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$DIST_REPO" log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_STRIP=debuginfo
_cargo_home=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="--remap-path-prefix=$DIST_REPO=/gpulibs --remap-path-prefix=$_cargo_home=/cargo"
unset _cargo_home

# x86_64 -> x86_64-unknown-linux-gnu (and the short names back), for the --target option.
dist_triple() {
  case "$1" in
    x86_64 | x86_64-unknown-linux-gnu) echo x86_64-unknown-linux-gnu ;;
    aarch64 | arm64 | aarch64-unknown-linux-gnu) echo aarch64-unknown-linux-gnu ;;
    *) echo "unknown target '$1': use x86_64, aarch64 or all" >&2; return 2 ;;
  esac
}
dist_targets() {
  if [ "$1" = all ]; then echo x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu; else dist_triple "$1"; fi
}

dist_version() {
  # The workspace version, which is gpulibs-cli's (version.workspace = true).
  sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$DIST_REPO/Cargo.toml"
}

# Installs the pinned tools into $DIST_TOOLS once (pip's configured index is the only network use).
dist_tools() {
  local want="maturin==$DIST_MATURIN_VERSION ziglang==$DIST_ZIG_VERSION"
  if [ ! -f "$DIST_TOOLS/.pinned" ] || [ "$(cat "$DIST_TOOLS/.pinned")" != "$want" ]; then
    rm -rf "$DIST_TOOLS"
    python3 -m venv "$DIST_TOOLS"
    # shellcheck disable=SC2086
    "$DIST_TOOLS/bin/pip" install --quiet --disable-pip-version-check $want
    echo "$want" >"$DIST_TOOLS/.pinned"
  fi
  # maturin --zig finds zig as `python -m ziglang` through this venv's python.
  export PATH="$DIST_TOOLS/bin:$PATH"
}

dist_need_std() {
  local triple=$1
  if ! rustc --print sysroot >/dev/null 2>&1 || [ ! -d "$(rustc --print sysroot)/lib/rustlib/$triple/lib" ]; then
    echo "blocked: the Rust standard library for $triple is not installed in $(rustc --print sysroot)" >&2
    echo "  fix: rustup target add $triple  (needs the Rust distribution server), then run this again" >&2
    return 3
  fi
}
