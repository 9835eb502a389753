#!/usr/bin/env bash
# Installs what splitleak needs on Debian/Ubuntu: compiler, CMake, the header-only libraries, the test and
# benchmark frameworks, clang with libFuzzer, npm (the data sets come as npm packages), the ONNX library with
# its backend test data (the optional ONNX importer, SPLITLEAK_ONNX), and asio + OpenSSL (the edge-cloud runtime)
# with HAProxy (its scale-out test). Safe to run again.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
pkgs=(build-essential cmake libeigen3-dev catch2 libstb-dev libcli11-dev nlohmann-json3-dev
      libbenchmark-dev gnuplot-nox clang-format-14
      libonnx-dev libprotobuf-dev protobuf-compiler libonnx-testdata
      clang-14 libfuzzer-14-dev libclang-rt-14-dev libomp-14-dev  # the fuzz targets (scripts/fuzz.sh)
      libasio-dev libssl-dev openssl haproxy)       # the runtime, its TLS and its scale-out test
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "dependencies ready"
