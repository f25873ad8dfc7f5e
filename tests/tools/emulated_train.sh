#!/usr/bin/env bash
# veil-train --device cuda on the emulated CUDA device (tests/emulated_device/) against the CPU run:
# the same keys (an insecure reproducibility seed), the same rows, and the predictions' digests
# must be equal for the MLP with SGD and LeNet with Adam. Checks that a GPU party's whole training
# path (device shares, device PRG draws, device protocols, staging through the transport) computes
# what a CPU party computes. Usage: emulated_train.sh BUILD_DIR. Prints SKIPPED without the data.
set -euo pipefail
build=$1
data=${VEIL_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [[ ! -d "$data" || ! -x "$build/tools/veil-train" || ! -x "$build/tests/veil-train-emulated" ]]; then
  echo "SKIPPED: the Fashion-MNIST data or the veil-train programs are missing"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for model in "mlp sgd 384" "lenet adam 128"; do
  set -- $model
  for run in cpu emulated; do
    if [[ $run == cpu ]]; then
      program=("$build/tools/veil-train" --device cpu)
    else
      program=("$build/tests/veil-train-emulated" --device cuda)
    fi
    "${program[@]}" --data-dir "$data" --model "$1" --optimizer "$2" --samples "$3" \
      --test-samples 200 --batch-size 64 --epochs 1 --no-twin --insecure --insecure-seed 5 \
      --metrics-json "$work/$1_$run.json" >"$work/$1_$run.log" 2>&1 || {
        echo "veil-train ($run, $1) failed:"; tail -20 "$work/$1_$run.log"; exit 1; }
  done
  a=$(grep -o '"predictions_digest": *"[^"]*"' "$work/$1_cpu.json")
  b=$(grep -o '"predictions_digest": *"[^"]*"' "$work/$1_emulated.json")
  if [[ -z "$a" || "$a" != "$b" ]]; then
    echo "FAILED: $1/$2 on the emulated device differs from the CPU run (cpu: $a, emulated: $b)"
    exit 1
  fi
  grep -q "EMULATED CUDA device" "$work/$1_emulated.log" || {
    echo "FAILED: the emulated run did not use the emulated device"; exit 1; }
  echo "$1/$2: the emulated device run equals the CPU run ($a)"
done
