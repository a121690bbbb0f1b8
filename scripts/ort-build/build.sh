#!/usr/bin/env bash
# Builds ONNX Runtime's shared library and CUDA provider for CMAKE_CUDA_ARCHITECTURES, inside the
# image of ./Dockerfile (or on any machine with the CUDA toolkit, cuDNN and CMake >= 3.28).
#
#   ort-build SRC OUT [ARCHS]
#     SRC    an onnxruntime checkout at the wanted tag (e.g. v1.31.1), with submodules
#     OUT    where the build tree goes; the libraries end up in OUT/Linux/Release
#     ARCHS  CMAKE_CUDA_ARCHITECTURES, default: $ORT_CUDA_ARCHS or the list for the CUDA version
#
# Environment: CUDA_HOME (default /usr/local/cuda), CUDNN_HOME (default /usr), JOBS (default nproc).
# Then: gpulibs package --from OUT/Linux/Release --from <NVIDIA wheels> --per-arch ... --out DIST
set -euo pipefail
src=${1:?usage: ort-build SRC OUT [ARCHS]}
out=${2:?usage: ort-build SRC OUT [ARCHS]}
cuda_home=${CUDA_HOME:-/usr/local/cuda}
cudnn_home=${CUDNN_HOME:-/usr}
jobs=${JOBS:-$(nproc)}
nvcc_version=$("$cuda_home/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p')

# Default architecture lists (cuda-facts §3: which targets each toolkit accepts):
# - CUDA 12.9: every SASS target from Maxwell to Blackwell, arch-specific 90a/120a where ONNX
#   Runtime has Hopper/Blackwell-only kernels, and PTX for 120 so newer GPUs can JIT.
# - CUDA 11.8: up to sm_90 (no 90a, no Blackwell); PTX 90 for anything newer.
case "$nvcc_version" in
  12.8|12.9|13.*) default_archs="50-real;52-real;60-real;61-real;70-real;75-real;80-real;86-real;89-real;90a-real;100-real;120a-real;120-virtual" ;;
  11.8) default_archs="50-real;52-real;60-real;61-real;70-real;75-real;80-real;86-real;89-real;90-real;90-virtual" ;;
  *) default_archs="75-real;80-real;86-real;89-real;90-real;90-virtual" ;;
esac
case "$nvcc_version" in
  13.*) default_archs=$(echo "$default_archs" | sed 's/50-real;52-real;60-real;61-real;70-real;//') ;;
esac
archs=${3:-${ORT_CUDA_ARCHS:-$default_archs}}
echo "ONNX Runtime from $src, CUDA $nvcc_version at $cuda_home, cuDNN at $cudnn_home"
echo "CMAKE_CUDA_ARCHITECTURES=$archs"

cd "$src"
./build.sh \
  --config Release \
  --build_dir "$out" \
  --build_shared_lib \
  --parallel "$jobs" \
  --nvcc_threads 2 \
  --use_cuda \
  --cuda_home "$cuda_home" \
  --cudnn_home "$cudnn_home" \
  --cuda_version "$nvcc_version" \
  --skip_tests \
  --allow_running_as_root \
  --cmake_extra_defines "CMAKE_CUDA_ARCHITECTURES=$archs" onnxruntime_BUILD_UNIT_TESTS=OFF

ls -l "$out/Linux/Release"/libonnxruntime*.so*
echo "$archs" >"$out/Linux/Release/CUDA_ARCHITECTURES.txt"
