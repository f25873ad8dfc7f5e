#!/usr/bin/env bash
# Installs veil's build and test dependencies from Debian 12 packages (run as root).
# Nothing is downloaded at build time; the CUDA toolkit, when present, comes with the machine image.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(cmake ninja-build g++ pkg-config libfmt-dev catch2 libssl-dev libgcrypt20-dev zlib1g-dev libcli11-dev
          nlohmann-json3-dev dataset-fashion-mnist libgrpc++-dev protobuf-compiler-grpc
          libprotobuf-dev protobuf-compiler python3 iproute2 libonnx-dev python3-onnx
          python3-numpy)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "veil: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
