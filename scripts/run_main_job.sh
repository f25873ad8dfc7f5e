#!/usr/bin/env bash
# Fresh Debian 12 machine, as root: install dependencies, build, and run the main job: private
# training of a 784-128-10 MLP on all 60,000 Fashion-MNIST training images by 2 parties with the
# dealer provider, then encrypted evaluation on the 10,000 test images and the plaintext twin.
# Extra arguments are passed to veil-train (e.g. --parties 3).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
mkdir -p out
./build/tools/veil-train --parties 2 --provider dealer --epochs 1 --batch-size 128 --lr 0.1 \
  --samples 60000 --metrics-json out/main_job_metrics.json "$@"
