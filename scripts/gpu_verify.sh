#!/usr/bin/env bash
# Runs every GPU check of veil on a machine with an NVIDIA GPU, from binaries built elsewhere by
# scripts/gpu_build.sh (the GPU machines have no package manager): the GPU tests (CPU vs GPU bit
# for bit for every ring kernel, ring GEMM, PRG, device tensors and transports) and the GPU
# benchmark (`veil-bench gpu`: ring GEMM on tensor cores vs SIMT vs float64 limbs vs cuBLAS FP32/TF32,
# elementwise bandwidth). Results go to $OUT (default ./out/gpu): one log per step, gpu.json, and
# summary.txt. Exits non-zero when a test fails. Usage: bash scripts/gpu_verify.sh [build dir]
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
out=${OUT:-out/gpu}
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/$build/lib-carry:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
summary="$out/summary.txt"
: >"$summary"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >>"$summary"
head -15 "$out/nvidia-smi.txt" >>"$summary" 2>/dev/null
status=0
for t in kernels core crypto comm; do
  bin="$build/tests/veil_test_$t"
  if [[ ! -x "$bin" ]]; then
    echo "missing $bin (run scripts/gpu_build.sh first)" | tee -a "$summary"
    status=1
    continue
  fi
  start=$(date +%s)
  "$bin" --reporter compact >"$out/test_$t.log" 2>&1
  rc=$?
  skipped=$(grep -c "SKIPPED:" "$out/test_$t.log")
  echo "tests/$t: exit $rc, $(( $(date +%s) - start )) s, SKIPPED lines: $skipped, $(tail -1 "$out/test_$t.log")" \
    | tee -a "$summary"
  [[ $rc -eq 0 ]] || status=1
done
"$build/tools/veil-bench" gpu --device cuda --json "$out/gpu.json" >"$out/bench_gpu.log" 2>&1
rc=$?
echo "veil-bench gpu: exit $rc" | tee -a "$summary"
tail -40 "$out/bench_gpu.log" >>"$summary"
[[ $rc -eq 0 ]] || status=1
echo "gpu_verify: status $status" | tee -a "$summary"
exit $status
