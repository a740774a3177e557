#!/usr/bin/env bash
# Installs every Debian package dnnplan needs (once) and builds it in Release under build/.
set -euo pipefail
cd "$(dirname "$0")"

packages=(g++ cmake pkg-config libboost-graph-dev nlohmann-json3-dev libsimgrid-dev libopenmpi-dev openmpi-bin
          catch2 libbenchmark-dev libcli11-dev libopenblas-dev libmetis-dev libonnx-dev libprotobuf-dev
          protobuf-compiler python3 jq libonnx-testdata
          chromium)  # chromium: the headless-browser test of the HTML reports (tests/reports/html_render_test.sh)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
