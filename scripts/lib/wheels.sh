# Sourced by scripts that read NVIDIA and ONNX Runtime libraries out of pinned wheels.
# Needs CACHE (the cache directory; wheels go to $CACHE/wheels) set by the caller.

# Prints the cached wheel for a pinned requirement (name==version), downloading it first
# through pip when absent.
wheel_for() {
    local req=$1 name ver stem found
    name=${req%%==*}
    ver=${req##*==}
    stem="${name//-/_}-${ver}-"
    mkdir -p "$CACHE/wheels"
    found=$(find "$CACHE/wheels" -maxdepth 1 -name "${stem}*.whl" | sort | head -n 1)
    if [[ -z "$found" ]]; then
        echo "downloading $req into $CACHE/wheels" >&2
        # One call with every platform tag these wheels use; pip picks the matching file.
        python3 -m pip download --quiet --no-deps --only-binary=:all: \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
            --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 \
            --platform manylinux1_x86_64 \
            --python-version 3.11 "$req" -d "$CACHE/wheels" >&2
        found=$(find "$CACHE/wheels" -maxdepth 1 -name "${stem}*.whl" | sort | head -n 1)
        [[ -n "$found" ]] || { echo "error: pip downloaded no wheel for $req" >&2; exit 2; }
    fi
    printf '%s\n' "$found"
}
