#!/bin/bash
# One device run: GPU info, the carried test binary (all tests but [cli]), compute-sanitizer memcheck and
# racecheck on the GPU-relevant tags, and the conv timing table. Logs under $OUT; a summary is printed last.
# usage (repo root, on the GPU machine, with the test binary carried in .carry/bin/): bash .carry/device_run.sh [stages]
#   stages: any of "t m r b" = tests, memcheck, racecheck, bench (default: all). See kernels/cuda/NOTES.md.
set -u
STAGES=${1:-"t m r b"}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BIN=.carry/bin/splitleak_tests
export OMP_NUM_THREADS=8
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>&1
# the oracles' libraries: the toolkit's, else the first copy found (PyTorch's wheels carry cuDNN)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
for lib in libcudnn.so.9 libcublas.so.13 libcudart.so.13; do
  if ldd "$BIN" | grep -q "$lib => not found"; then
    p=$(find /usr/local /usr/lib /opt -name "$lib" 2>/dev/null | head -1)
    [ -n "$p" ] && export LD_LIBRARY_PATH=$(dirname "$p"):$LD_LIBRARY_PATH
  fi
done
{ echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; ldd "$BIN"; } > "$OUT/ldd.txt" 2>&1
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
case "$STAGES" in *t*)
  timeout 130 "$BIN" "[cuda]" -d yes > "$OUT/cuda_tests.log" 2>&1; echo "rc=$?" >> "$OUT/cuda_tests.log"
  timeout 130 "$BIN" "~[cli]~[cuda]" > "$OUT/all_tests.log" 2>&1; echo "rc=$?" >> "$OUT/all_tests.log";;
esac
case "$STAGES" in *m*)
  timeout 170 $CS --tool memcheck --leak-check no --print-limit 20 "$BIN" "[cuda]~[cuda-errors],[ops],[layers]" > "$OUT/memcheck.log" 2>&1
  echo "rc=$?" >> "$OUT/memcheck.log";;
esac
case "$STAGES" in *r*)
  timeout 100 $CS --tool racecheck --print-limit 20 "$BIN" "[cuda-configs]" > "$OUT/racecheck.log" 2>&1
  echo "rc=$?" >> "$OUT/racecheck.log";;
esac
case "$STAGES" in *b*)
  timeout 120 "$BIN" "[.cuda-bench]" > "$OUT/bench.log" 2>&1; echo "rc=$?" >> "$OUT/bench.log";;
esac
echo "===== SUMMARY"; cat "$OUT/gpu.txt"; grep -h "not found" "$OUT/ldd.txt"
for f in cuda_tests all_tests memcheck racecheck bench; do
  [ -f "$OUT/$f.log" ] || continue
  echo "--- $f: $(grep -h -E '^test cases|All tests passed|ERROR SUMMARY|^rc=' "$OUT/$f.log" | tr '\n' ' ')"
done
grep -h "^\[cuda\]" "$OUT/cuda_tests.log" 2>/dev/null | head -40
grep -h "cuda-bench" "$OUT/bench.log" 2>/dev/null | grep -v "cfg [ 0-9]"
grep -h "cuda-bench.*cfg -1" "$OUT/bench.log" 2>/dev/null
echo "--- failures (first 60 lines)"
grep -h -B3 -A12 -E "FAILED|failed" "$OUT/cuda_tests.log" "$OUT/all_tests.log" 2>/dev/null | head -60
grep -h -A8 "========= Invalid\|========= Race\|========= Error" "$OUT/memcheck.log" "$OUT/racecheck.log" 2>/dev/null | head -30
