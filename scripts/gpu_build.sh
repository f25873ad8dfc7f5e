#!/usr/bin/env bash
# Builds veil's GPU binaries on a development machine (which has nvcc and every dependency but no
# GPU) so that a GPU machine without a package manager can run them: ./build-gpu (Release, CUDA on
# for sm_80 and sm_90) plus build-gpu/lib-carry, the shared libraries the binaries need that are
# neither in the CUDA toolkit nor in glibc. Then, on the GPU machine, with the checkout and
# build-gpu copied over: `bash scripts/gpu_verify.sh` (see docs/gpu.md).
# Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DVEIL_WITH_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="80;90" "$@"
targets=(veil-bench veil-train veil-run veil-dealer
         veil_test_kernels veil_test_core veil_test_comm veil_test_crypto)
cmake --build build-gpu -j "$(nproc)" --target "${targets[@]}"
# Libraries to carry: what ldd resolves outside glibc and the CUDA toolkit (the GPU machine has its
# own toolkit and driver; NCCL and cuBLAS are opened at run time from there).
carry=build-gpu/lib-carry
rm -rf "$carry" && mkdir -p "$carry"
for bin in build-gpu/tools/veil-bench build-gpu/tools/veil-train build-gpu/tools/veil-run \
           build-gpu/tools/veil-dealer build-gpu/tests/veil_test_*; do
  [[ -x "$bin" ]] || continue
  ldd "$bin" | awk '/=> \// {print $3}' | while read -r lib; do
    case "$lib" in
      */libc.so*|*/libm.so*|*/libpthread.so*|*/libdl.so*|*/librt.so*|*/ld-linux*|*/libgcc_s.so*) ;;
      */cuda*/*) ;;
      *) cp -Ln --preserve=mode "$lib" "$carry/" 2>/dev/null || true ;;
    esac
  done
done
# The C++ runtime may be newer here than there; carry it too.
cp -Ln "$(g++ -print-file-name=libstdc++.so.6)" "$carry/" 2>/dev/null || true
# Fashion-MNIST (30 MB compressed) for the training runs of gpu_verify.sh, when this machine has it.
data_src=${VEIL_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [[ -d "$data_src" ]]; then
  rm -rf build-gpu/fashion-mnist && mkdir -p build-gpu/fashion-mnist
  cp -L "$data_src"/*-ubyte* build-gpu/fashion-mnist/
fi
echo "gpu_build: $(du -sh build-gpu/tools build-gpu/tests "$carry" | awk '{print $2": "$1}' | tr '\n' ' ')"
