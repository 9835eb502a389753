#!/usr/bin/env bash
# The GPU part of the defense figures (the paper's Figs 9-13), in stages that each fit a 10-minute command:
#   build    CUDA build (build-cuda/) and the defense / adaptive / sweep tests on the GPU (CUDA draws = CPU draws)
#   fig9     the Fig 9 speed benchmark (paper's attacker, full figure, target <= 30 s on an H200), then Fig 9 and
#            Figs 11/13 with the paper's and the adaptive attacker side by side
#   fig10    CIFAR-10 at ReLU22: the three defenses at both places, paper's and adaptive attacker side by side
#            (fig10-paper and fig10-adaptive run them apart, should one command not fit 10 minutes)
#   fig12    CIFAR-10 dropout at ReLU12, pool1, conv22, ReLU22, pool2, paper's and adaptive attacker
# Usage: bash bench/defense_gpu.sh STAGE DATA_DIR RESULTS_DIR
#   SPLITLEAK_BIN / SPLITLEAK_TESTS_BIN: CUDA builds of splitleak and splitleak_tests made elsewhere (default
#   build-cuda/bin/, built by the build stage when missing)
#   DATA_DIR holds mnist/ (the IDX files) and cifar10/ (test_batch.png + test_lables.json, or test_batch.bin; the
#   white-box attacks need no training images); LENET and CIFAR name the checkpoints (default runs/lenet.ckpt,
#   runs/cifar10cnn.ckpt). Every stage writes its log, results.json/csv, grids and plots under RESULTS_DIR.
set -uo pipefail
stage="${1:?stage: build, fig9, fig10 or fig12}"
data="${2:?data directory}"
results="${3:?results directory}"
LENET="${LENET:-runs/lenet.ckpt}"
CIFAR="${CIFAR:-runs/cifar10cnn.ckpt}"
SL="${SPLITLEAK_BIN:-build-cuda/bin/splitleak}"            # a CUDA build of splitleak (the build stage makes one)
TESTS="${SPLITLEAK_TESTS_BIN:-build-cuda/bin/splitleak_tests}"
mkdir -p "$results"
for d in /usr/local/cuda/lib64; do [ -d "$d" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:$d"; done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$results/device.txt" 2>&1 || true
run() { echo "+ $*" | tee -a "$results/commands.txt"; "$@"; }
case "$stage" in
  build)
    if [ ! -x "$SL" ] || [ ! -x "$TESTS" ]; then
      run cmake -B build-cuda -DCMAKE_BUILD_TYPE=Release -DSPLITLEAK_BENCH=OFF > "$results/cmake.log" 2>&1
      run cmake --build build-cuda -j"$(nproc)" --target splitleak splitleak_tests > "$results/build.log" 2>&1 \
        || { tail -30 "$results/build.log"; exit 1; }
    fi
    SPLITLEAK_DATA="$data" run "$TESTS" "[defense],[adaptive],[experiment],[pipeline]" \
      2>&1 | tee "$results/tests.log" | tail -5
    ;;
  fig9)
    export SPLITLEAK=$SL EXTRA="--data $data"
    run bash bench/defense_fig9.sh cuda "$LENET" "$results/fig9-speed" 2>"$results/fig9-speed.err" | tail -3
    run $SL defend --model "$LENET" --figure 9 --compare --device cuda --data "$data" --out "$results/fig9" \
      2>"$results/fig9.err" | tee "$results/fig9.txt" | tail -16
    run $SL defend --model "$LENET" --figure 11 --compare --device cuda --data "$data" --out "$results/fig11" \
      2>"$results/fig11.err" | tee "$results/fig11.txt" | tail -14
    ;;
  fig10)
    run timeout 590 $SL defend --model "$CIFAR" --figure 10 --compare --eot 2 --device cuda --data "$data" \
      --out "$results/fig10" 2>"$results/fig10.err" | tee "$results/fig10.txt" | tail -16
    ;;
  fig10-paper | fig10-adaptive)
    who=--adaptive
    [ "$stage" = fig10-paper ] && who=""
    run timeout 590 $SL defend --model "$CIFAR" --figure 10 $who --eot 2 --device cuda --data "$data" \
      --out "$results/$stage" 2>"$results/$stage.err" | tee "$results/$stage.txt" | tail -10
    ;;
  fig12)
    run timeout 590 $SL defend --model "$CIFAR" --figure 12 --compare --device cuda --data "$data" --out "$results/fig12" \
      2>"$results/fig12.err" | tee "$results/fig12.txt" | tail -14
    ;;
  *) echo "unknown stage $stage (build, fig9, fig10, fig10-paper, fig10-adaptive, fig12)" >&2; exit 2 ;;
esac
