#!/usr/bin/env bash
# Runs every GPU check of veil on a machine with an NVIDIA GPU, from binaries built elsewhere by
# scripts/gpu_build.sh (the GPU machines have no package manager): the GPU tests (CPU vs GPU bit
# for bit for every ring kernel, ring GEMM, PRG, device tensors and transports) and the GPU
# benchmark (`veil-bench gpu`: ring GEMM on tensor cores vs SIMT vs float64 limbs vs cuBLAS FP32/TF32,
# elementwise bandwidth), and private training with GPU parties (veil-train --device cuda: bit for
# bit against the CPU, then one full epoch of the MLP and of LeNet). Results go to $OUT (default
# ./out/gpu): one log per step, gpu.json, train_*.json and summary.txt. Exits non-zero when a test fails. Usage: bash scripts/gpu_verify.sh [build dir]
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
# Private training with every party's shares on the GPU (veil-train --device cuda):
#  1. bit for bit against the CPU on 1,024 rows (same keys from an insecure reproducibility seed):
#     MLP with SGD and LeNet with Adam; the predictions' digests must agree;
#  2. one epoch on all of Fashion-MNIST, 2 parties as threads on one GPU, MLP and LeNet, with the
#     plaintext twin: epoch time and accuracy into $out/train_*.json (the CPU figures are in
#     docs/benchmarks.md). Skipped with a note when the data are missing.
data=${VEIL_FASHION_MNIST_DIR:-$build/fashion-mnist}
[[ -d "$data" ]] || data=/usr/share/datasets/fashion-mnist
train="$build/tools/veil-train"
if [[ -x "$train" && -d "$data" ]]; then
  for model in "mlp sgd" "lenet adam"; do
    set -- $model
    for dev in cpu cuda; do
      "$train" --data-dir "$data" --device "$dev" --model "$1" --optimizer "$2" --samples 1024 \
        --test-samples 500 --epochs 1 --no-twin --insecure --insecure-seed 5 \
        --metrics-json "$out/bitexact_$1_$dev.json" >"$out/bitexact_$1_$dev.log" 2>&1
    done
    a=$(grep -o '"predictions_digest": *"[^"]*"' "$out/bitexact_$1_cpu.json" 2>/dev/null)
    b=$(grep -o '"predictions_digest": *"[^"]*"' "$out/bitexact_$1_cuda.json" 2>/dev/null)
    if [[ -n "$a" && "$a" == "$b" ]]; then
      echo "veil-train $1 --device cuda: bit for bit the CPU run ($a)" | tee -a "$summary"
    else
      echo "veil-train $1 --device cuda: DIFFERS from the CPU run (cpu: $a, cuda: $b)" \
        | tee -a "$summary"
      status=1
    fi
  done
  for model in mlp lenet; do
    "$train" --data-dir "$data" --device cuda --model "$model" --epochs 1 \
      --metrics-json "$out/train_$model.json" >"$out/train_$model.log" 2>&1
    rc=$?
    echo "veil-train --device cuda --model $model (all data, 1 epoch): exit $rc" | tee -a "$summary"
    grep -E "private training:|encrypted inference|plaintext float64 twin" "$out/train_$model.log" \
      >>"$summary"
    [[ $rc -eq 0 ]] || status=1
  done
else
  echo "veil-train runs skipped: $train or the data ($data) missing" | tee -a "$summary"
fi
echo "gpu_verify: status $status" | tee -a "$summary"
exit $status
