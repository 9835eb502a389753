#!/usr/bin/env bash
# The GPU check, on any machine with an NVIDIA GPU and the CUDA toolkit: builds the CUDA binaries if BUILD_DIR
# does not hold them yet, then runs
#   tests      the GPU test tags of splitleak_tests (every op against the CPU, convolutions against cuDNN, GEMMs
#              against cuBLAS, every GEMM tile configuration, CUDA graphs, the attacks)
#   memcheck   compute-sanitizer memcheck over the quick GPU test subset (SL_TEST_QUICK=1)
#   racecheck  compute-sanitizer racecheck over the tile-configuration and graph tests (SL_TEST_QUICK=1)
#   bench      bench_cuda: our kernels against cuDNN and cuBLAS, and whole training steps (Google Benchmark JSON)
#   torch      bench/torch_reference.py: the same workloads in PyTorch, when PyTorch with CUDA is installed
#   mnist      when MNIST is in $SPLITLEAK_DATA (or data/; the IDX files as `splitleak fetch` writes them, or
#              gzip-compressed as published): LeNet trained on the GPU, evaluated whole and split, and the batched
#              white-box attack (1000 images x 5000 iterations) against PyTorch
# and writes RESULTS_DIR/summary.md (device, driver, commit, date, one row per stage, the benchmark tables of
# bench/cuda_report.py), one log per stage, bench_cuda.json, torch.json and report.md. It ends with the stage
# table on the terminal and exits non-zero when a stage failed. A stage that cannot run here (no
# compute-sanitizer, no PyTorch, no MNIST) is reported as skipped, with the reason.
#
#   scripts/gpu-check.sh [BUILD_DIR] [RESULTS_DIR]         defaults: the repository's build-cuda, BUILD_DIR/gpu-check
#
# Environment:
#   STAGES="tests memcheck racecheck bench torch mnist"    the stages to run (default: all). Stages write their
#                     own files only, so two calls with the same RESULTS_DIR add up to one summary.
#   CUDA_ARCH=90      GPU architecture of a build (CMAKE_CUDA_ARCHITECTURES; default: that variable, else 90)
#   REBUILD=1         build even though BUILD_DIR already holds splitleak, splitleak_tests and bench_cuda
#   JOBS=N            build parallelism (default: all cores)
#   TIMEOUT_SCALE=N   multiplies every stage's time limit (defaults: tests 600 s, memcheck 600 s, racecheck 900 s,
#                     bench 600 s, torch 600 s, mnist 600 s)
#
# Prebuilt binaries: a BUILD_DIR holding bin/ from a build elsewhere is used as it is (`splitleak --version` in
# the summary names its commit). Shared libraries the binaries need but the machine lacks (say, Google
# Benchmark's) can be put in BUILD_DIR/lib; cuDNN and cuBLAS are looked for in the CUDA toolkit, the system
# library folders and PyTorch's wheels.
set -uo pipefail
START_CMD="scripts/gpu-check.sh $*"
SRC="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$SRC/build-cuda}"                    # relative paths: from where the script is called
mkdir -p "$BUILD" && BUILD="$(cd "$BUILD" && pwd)"
RES="${2:-$BUILD/gpu-check}"
mkdir -p "$RES" && RES="$(cd "$RES" && pwd)"
if [ -n "${SPLITLEAK_DATA:-}" ] && [ -d "$SPLITLEAK_DATA" ]; then SPLITLEAK_DATA="$(cd "$SPLITLEAK_DATA" && pwd)"; fi
cd "$SRC"
STAGES=" ${STAGES:-tests memcheck racecheck bench torch mnist} "
SCALE="${TIMEOUT_SCALE:-1}"
BIN="$BUILD/bin"

say() { printf '%s\n' "$*" | tee -a "$RES/gpu-check.log"; }
wants() { [[ "$STAGES" == *" $1 "* ]]; }
# record STAGE STATUS SECONDS DETAIL: one line per stage in RESULTS_DIR/<stage>.status (read by the summary).
record() {
  printf '%s\t%s\t%s\n' "$2" "$3" "$4" > "$RES/$1.status"
  say "[$1] $2 (${3} s): $4"
}
limit() { echo $(( $1 * SCALE )); }
now() { date +%s; }

: > "$RES/gpu-check.log"
say "gpu-check: build $BUILD, results $RES, stages:$STAGES"

# --- the machine ------------------------------------------------------------------------------------------
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  say "gpu-check: no NVIDIA GPU is visible here (nvidia-smi -L failed); nothing to check"
  exit 2
fi
GPU="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
say "device: $GPU"

# --- the binaries: built here unless BUILD_DIR holds them -----------------------------------------------------
have_bins() { [ -x "$BIN/splitleak" ] && [ -x "$BIN/splitleak_tests" ]; }
if [ -n "${REBUILD:-}" ] || ! have_bins; then
  t0=$(now)
  arch="${CUDA_ARCH:-${CMAKE_CUDA_ARCHITECTURES:-90}}"
  nvcc="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
  say "building in $BUILD (CUDA architecture $arch, $nvcc)"
  if cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSPLITLEAK_CUDA=ON -DSPLITLEAK_BENCH=ON \
       -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_CUDA_COMPILER="$nvcc" > "$RES/build.log" 2>&1 &&
     cmake --build "$BUILD" -j"${JOBS:-$(nproc)}" --target splitleak splitleak_tests bench_cuda >> "$RES/build.log" 2>&1; then
    record build PASS $(( $(now) - t0 )) "CUDA architecture $arch"
  else
    cmake --build "$BUILD" -j"${JOBS:-$(nproc)}" --target splitleak splitleak_tests >> "$RES/build.log" 2>&1
    if have_bins; then
      record build PASS $(( $(now) - t0 )) "CUDA architecture $arch; bench_cuda not built (needs Google Benchmark and cuDNN; see build.log)"
    else
      record build FAIL $(( $(now) - t0 )) "see build.log: $(grep -m1 -iE 'error|could not find' "$RES/build.log")"
      say "gpu-check: the build failed. Without the header-only dependencies (scripts/install-deps.sh lists them),"
      say "build on another machine and pass that build folder: scripts/gpu-check.sh BUILD_DIR"
      exit 1
    fi
  fi
else
  rm -f "$RES/build.status"
  say "using the binaries in $BIN (REBUILD=1 rebuilds)"
fi

# Shared libraries: the binaries' missing ones from BUILD_DIR/lib, the toolkit, the system and PyTorch's wheels.
missing_libs() {
  for b in "$BIN"/splitleak "$BIN"/splitleak_tests "$BIN"/bench_cuda; do [ -x "$b" ] && ldd "$b" 2>/dev/null; done |
    awk '/not found/ {print $1}' | sort -u
}
for lib in $(missing_libs); do
  for d in "$BUILD/lib" /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/*/lib /usr/lib/x86_64-linux-gnu \
           /usr/local/lib/python3*/dist-packages/nvidia/*/lib /usr/lib/python3/dist-packages/nvidia/*/lib \
           "$HOME"/.local/lib/python3*/site-packages/nvidia/*/lib /opt/*/lib/python3*/site-packages/nvidia/*/lib \
           /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib; do
    if [ -e "$d/$lib" ]; then
      export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      break
    fi
  done
done
for lib in $(missing_libs); do  # anywhere else under the usual prefixes
  p="$(find /usr/local /usr/lib /opt -name "$lib" -print -quit 2>/dev/null)"
  [ -n "$p" ] && export LD_LIBRARY_PATH="$(dirname "$p")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
for b in "$BIN"/splitleak "$BIN"/splitleak_tests "$BIN"/bench_cuda; do
  [ -x "$b" ] && ldd "$b" 2>/dev/null | grep 'not found' | sed "s|^|$(basename "$b"): missing |" | tee -a "$RES/gpu-check.log"
done
{ echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"; for b in "$BIN"/*; do [ -x "$b" ] && { echo "== $b"; ldd "$b"; }; done; } \
  > "$RES/ldd.txt" 2>&1
VERSION="$("$BIN/splitleak" --version 2>&1 | head -1)"
say "binaries: $VERSION"
if ! ldd "$BIN/splitleak_tests" 2>/dev/null | grep -q libcudart; then
  say "gpu-check: $BIN/splitleak_tests is not a CUDA build (no libcudart); rebuild with REBUILD=1 on a machine with nvcc"
  exit 1
fi

# run_stage NAME LIMIT_S LOG CMD...: runs CMD under a time limit, output to LOG; sets RC and SECS.
run_stage() {
  local name="$1" lim="$2" log="$3"
  shift 3
  say "[$name] $*"
  local t0
  t0=$(now)
  timeout "$lim" "$@" > "$log" 2>&1
  RC=$?
  SECS=$(( $(now) - t0 ))
  [ "$RC" = 124 ] && echo "gpu-check: stopped after the ${lim} s limit (TIMEOUT_SCALE raises it)" >> "$log"
}
last() { grep -E "$1" "$2" | tail -1 | sed 's/^=* *//' | tr -s ' ' | cut -c1-160; }

GPU_TAGS="[cuda],[cuda-configs],[layers],[nn],[graph],[inversion],[ops]"
MEMCHECK_TAGS="[cuda]~[cuda-errors],[ops],[layers],[graph]"
RACECHECK_TAGS="[cuda-configs],[graph]"
CS="$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null | head -1)"

if wants tests; then
  run_stage tests "$(limit 600)" "$RES/tests.log" "$BIN/splitleak_tests" "$GPU_TAGS"
  detail="$(last 'All tests passed|test cases:' "$RES/tests.log")"
  skipped="$(grep -m1 'no GPU:' "$RES/tests.log")"
  if [ "$RC" = 0 ] && [ -z "$skipped" ]; then record tests PASS "$SECS" "$detail"
  elif [ -n "$skipped" ]; then record tests FAIL "$SECS" "GPU cases skipped: $skipped"
  else record tests FAIL "$SECS" "exit $RC; $detail; see tests.log"
  fi
fi

if wants memcheck; then
  if [ -z "$CS" ]; then record memcheck SKIP 0 "compute-sanitizer not found"
  else
    SL_TEST_QUICK=1 run_stage memcheck "$(limit 600)" "$RES/memcheck.log" \
      "$CS" --tool memcheck --leak-check no --print-limit 20 "$BIN/splitleak_tests" "$MEMCHECK_TAGS"
    detail="$(last 'ERROR SUMMARY' "$RES/memcheck.log"); $(last 'All tests passed|test cases:' "$RES/memcheck.log")"
    if [ "$RC" = 0 ] && grep -q 'ERROR SUMMARY: 0 errors' "$RES/memcheck.log"; then record memcheck PASS "$SECS" "$detail"
    else record memcheck FAIL "$SECS" "exit $RC; $detail; see memcheck.log"
    fi
  fi
fi

if wants racecheck; then
  if [ -z "$CS" ]; then record racecheck SKIP 0 "compute-sanitizer not found"
  else
    SL_TEST_QUICK=1 run_stage racecheck "$(limit 900)" "$RES/racecheck.log" \
      "$CS" --tool racecheck --print-limit 20 "$BIN/splitleak_tests" "$RACECHECK_TAGS"
    detail="$(last 'RACECHECK SUMMARY' "$RES/racecheck.log"); $(last 'All tests passed|test cases:' "$RES/racecheck.log")"
    if [ "$RC" = 0 ] && grep -q 'RACECHECK SUMMARY: 0 hazards' "$RES/racecheck.log"; then record racecheck PASS "$SECS" "$detail"
    else record racecheck FAIL "$SECS" "exit $RC; $detail; see racecheck.log"
    fi
  fi
fi

if wants bench; then
  if [ ! -x "$BIN/bench_cuda" ]; then record bench SKIP 0 "bench_cuda not built (needs Google Benchmark and cuDNN)"
  else
    run_stage bench "$(limit 600)" "$RES/bench_cuda.log" "$BIN/bench_cuda" \
      --benchmark_out="$RES/bench_cuda.json" --benchmark_out_format=json
    n="$(grep -c '"run_name"' "$RES/bench_cuda.json" 2>/dev/null || echo 0)"
    if [ "$RC" = 0 ] && [ "$n" -gt 0 ]; then record bench PASS "$SECS" "$n benchmarks in bench_cuda.json"
    else record bench FAIL "$SECS" "exit $RC, $n benchmarks; $(tail -1 "$RES/bench_cuda.log" | cut -c1-120)"
    fi
  fi
fi

HAVE_TORCH=0
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1 && HAVE_TORCH=1
if wants torch; then
  if [ "$HAVE_TORCH" = 0 ]; then record torch SKIP 0 "PyTorch with CUDA not found (python3 -c 'import torch' failed or saw no GPU)"
  else
    PYTHONUNBUFFERED=1 run_stage torch "$(limit 600)" "$RES/torch.log" python3 "$SRC/bench/torch_reference.py" \
      --only lenet_step,cifar_step,conv,gemm --json "$RES/torch.json"
    if [ "$RC" = 0 ] && [ -s "$RES/torch.json" ]; then
      record torch PASS "$SECS" "$(python3 -c "import json;t=json.load(open('$RES/torch.json'));print('torch', t.get('torch'), 'on', t.get('device'))")"
    else record torch FAIL "$SECS" "exit $RC; see torch.log"
    fi
  fi
fi

# The tables: ours against cuDNN/cuBLAS, with PyTorch's columns when torch.json is there.
if [ -s "$RES/bench_cuda.json" ]; then
  torch_json="$RES/torch.json"
  [ -s "$torch_json" ] || { echo "{\"device\": \"${GPU%%,*}\"}" > "$RES/no-torch.json"; torch_json="$RES/no-torch.json"; }
  python3 "$SRC/bench/cuda_report.py" "$RES/bench_cuda.json" "$torch_json" > "$RES/report.md" 2>&1 ||
    say "gpu-check: bench/cuda_report.py failed, see report.md"
fi

if wants mnist; then
  data="${SPLITLEAK_DATA:-$SRC/data}"
  if [ ! -f "$data/mnist/t10k-images-idx3-ubyte" ] && [ -f "$data/mnist/t10k-images-idx3-ubyte.gz" ]; then
    unpacked="$(mktemp -d)"  # MNIST as published (gzip-compressed IDX files): unpacked for this run only
    trap 'rm -rf "$unpacked"' EXIT
    mkdir -p "$unpacked/mnist"
    for f in "$data"/mnist/*-ubyte.gz; do gzip -dc "$f" > "$unpacked/mnist/$(basename "$f" .gz)"; done
    data="$unpacked"
  fi
  if [ ! -f "$data/mnist/t10k-images-idx3-ubyte" ]; then
    record mnist SKIP 0 "no MNIST in $data/mnist (splitleak fetch mnist --data DIR, then SPLITLEAK_DATA=DIR)"
  else
    t0=$(now)
    ckpt="$RES/lenet-gpu.ckpt"
    {
      echo "+ splitleak train --dataset mnist --model lenet --epochs 3 --batch 32 --device cuda"
      timeout "$(limit 200)" "$BIN/splitleak" train --dataset mnist --model lenet --epochs 3 --batch 32 --device cuda \
        --data "$data" --out "$ckpt" --json > "$RES/train.json" &&
      echo "+ splitleak eval --split ReLU2 --device cuda" &&
      timeout "$(limit 100)" "$BIN/splitleak" eval --model "$ckpt" --split ReLU2 --device cuda --data "$data" --json \
        > "$RES/eval.json" &&
      echo "+ splitleak attack whitebox --split ReLU2 --images 1000 --batch 1000 --preset reference --device cuda" &&
      timeout "$(limit 200)" "$BIN/splitleak" attack whitebox --model "$ckpt" --split ReLU2 --images 1000 --batch 1000 \
        --preset reference --device cuda --data "$data" --out "$RES/rmle1000" --json > "$RES/rmle1000.json"
    } > "$RES/mnist.log" 2>&1
    rc=$?
    if [ "$rc" = 0 ] && [ "$HAVE_TORCH" = 1 ]; then
      PYTHONUNBUFFERED=1 timeout "$(limit 200)" python3 "$SRC/bench/torch_reference.py" --only rmle \
        --rmle-images 1000 --rmle-iters 5000 --json "$RES/torch_rmle.json" >> "$RES/mnist.log" 2>&1 || rc=$?
    fi
    detail="$(python3 - "$RES" <<'PY' 2>>"$RES/mnist.log"
import json, os, sys
r = sys.argv[1]
out = []
def load(name):
    p = os.path.join(r, name)
    return json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) else None
t, e, a, p = load("train.json"), load("eval.json"), load("rmle1000.json"), load("torch_rmle.json")
if t: out.append(f"LeNet 3 epochs {100 * t['test_accuracy']:.2f} %")
if e: out.append(f"split ReLU2: {e['split']['predictions_differing']} predictions differ")
if a: out.append(f"rMLE 1000 images x 5000 it {a['invert_seconds']:.3f} s ({a['mean_psnr']:.2f} dB / {a['mean_ssim']:.3f})")
if a and p:
    s = p["rmle_lenet_relu2"]["seconds"]
    out.append(f"PyTorch eager {s:.2f} s ({s / a['invert_seconds']:.1f}x)")
print("; ".join(out))
PY
)"
    if [ "$rc" = 0 ]; then record mnist PASS $(( $(now) - t0 )) "$detail"
    else record mnist FAIL $(( $(now) - t0 )) "exit $rc; ${detail:+$detail; }$(last 'error' "$RES/mnist.log")"
    fi
  fi
fi

# --- the summary: every stage recorded in RESULTS_DIR (this call's and earlier ones') -------------------------
failed=0
{
  echo "# GPU check"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| device | $GPU |"
  echo "| CUDA | $( (command -v nvcc >/dev/null && nvcc --version || /usr/local/cuda/bin/nvcc --version) 2>/dev/null | grep -o 'release [0-9.]*' | head -1) |"
  echo "| binaries | \`$BIN\`: $VERSION |"
  echo "| date | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
  echo "| command | \`$START_CMD\` (STAGES=\"$(echo $STAGES)\") |"
  echo
  echo "| stage | result | seconds | detail | log |"
  echo "|---|---|---:|---|---|"
  for s in build tests memcheck racecheck bench torch mnist; do
    [ -f "$RES/$s.status" ] || continue
    IFS=$'\t' read -r st secs detail < "$RES/$s.status"
    log="$s.log"; [ "$s" = bench ] && log="bench_cuda.log"; [ -f "$RES/$log" ] || log="-"
    echo "| $s | $st | $secs | $detail | $log |"
  done
  if [ -s "$RES/report.md" ]; then
    echo
    echo "## Benchmark tables (bench/cuda_report.py; microseconds; ratios are throughput, > 1: ours faster)"
    echo
    cat "$RES/report.md"
  fi
} > "$RES/summary.md"
for s in build tests memcheck racecheck bench torch mnist; do
  [ -f "$RES/$s.status" ] && grep -q '^FAIL' "$RES/$s.status" && failed=1
done

echo
echo "GPU check: $GPU; $VERSION"
printf '%-10s %-5s %7s  %s\n' stage result seconds detail
for s in build tests memcheck racecheck bench torch mnist; do
  [ -f "$RES/$s.status" ] || continue
  IFS=$'\t' read -r st secs detail < "$RES/$s.status"
  printf '%-10s %-5s %7s  %s\n' "$s" "$st" "$secs" "$detail"
done
if [ -s "$RES/report.md" ]; then
  # Headlines of the benchmark tables: the targets met, and the training steps against PyTorch.
  conv_ok=$(grep -cE '^\| conv[0-9]+ \(.*\| yes \|' "$RES/report.md"); conv_n=$(grep -cE '^\| conv[0-9]+ \(' "$RES/report.md")
  fc_ok=$(grep -cE '^\| (cifar|lenet)_fc.*\| yes \|' "$RES/report.md"); fc_n=$(grep -cE '^\| (cifar|lenet)_fc' "$RES/report.md")
  echo
  echo "convolution passes >= 0.7x cuDNN FP32: $conv_ok of $conv_n; FC GEMMs >= 0.7x cuBLAS: $fc_ok of $fc_n"
  grep -A8 '^### Training steps' "$RES/report.md" | grep '^|'
fi
echo
echo "summary: $RES/summary.md (logs beside it)"
exit "$failed"
