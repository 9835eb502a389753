#!/usr/bin/env bash
# Builds and runs the test suite twice: an optimised build (with the CUDA backend compiled when nvcc is
# present; its GPU tests skip visibly without a GPU) and an AddressSanitizer + UndefinedBehaviorSanitizer
# build of the CPU engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/format.sh --check
jobs="$(nproc)"

cmake -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure)

cmake -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSPLITLEAK_SANITIZE=ON -DSPLITLEAK_CUDA=OFF -DSPLITLEAK_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="-O1" >/dev/null
cmake --build build-asan -j"$jobs" --target splitleak splitleak_tests
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure)
