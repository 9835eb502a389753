#!/usr/bin/env bash
# One LeNet training epoch on MNIST (CPU), on a quiet machine and with competing CPU-bound processes, for
# the thread policies of the CPU kernels:
#   fixed      every parallel region uses OpenMP's count (SPLITLEAK_ADAPTIVE_THREADS=0: the engine before the
#              load-adaptive count)
#   adaptive   the load-adaptive count (kernels/cpu/threads.h, the default)
#   1 thread   --threads 1, for reference
# Usage: bash bench/threads_under_load.sh [REPEATS] [LIMIT]
#   REPEATS  rounds (default 3); each round runs every policy once per load, interleaved, so that all see
#            the same machine
#   LIMIT    training images (default 60000: the whole epoch)
# Environment: SPLITLEAK (default build/bin/splitleak), SPLITLEAK_DATA (default data/), LOADS (numbers of
# competing busy loops, default "0 1"), PIN=1 (pin busy loop i to CPU i), PAUSE (seconds between runs,
# default 0), POLICIES (default "fixed adaptive one"; a policy may end in +passive, +active or +spinN to set
# libgomp's OMP_WAIT_POLICY or GOMP_SPINCOUNT for that run, e.g. fixed+passive).
# Prints the median training time of the epoch (from --json; data loading and the test pass are not timed),
# the spread (min-max) and img/s, and checks that every run gave the same bits (train loss, loss of the last
# steps, test accuracy): the thread count must not change results. Exit 1 when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats="${1:-3}"
limit="${2:-60000}"
bin="${SPLITLEAK:-build/bin/splitleak}"
data="${SPLITLEAK_DATA:-data}"
loads="${LOADS:-0 1}"
policies="${POLICIES:-fixed adaptive one}"
[ -x "$bin" ] || { echo "threads_under_load: $bin not found (build first: cmake --build build)" >&2; exit 2; }
[[ "$repeats" =~ ^[1-9][0-9]*$ && "$limit" =~ ^[1-9][0-9]*$ ]] || {
  echo "threads_under_load: REPEATS and LIMIT must be positive integers" >&2
  exit 2
}
work="$(mktemp -d)"
busy_pids=()
stop_load() {
  for p in "${busy_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${busy_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  busy_pids=()
}
cleanup() {
  stop_load
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_load() {
  local n="$1" i
  for ((i = 0; i < n; i++)); do
    if [ "${PIN:-0}" = 1 ]; then
      taskset -c "$i" bash -c 'while :; do :; done' &
    else
      bash -c 'while :; do :; done' &
    fi
    busy_pids+=($!)
  done
  [ "$n" = 0 ] || sleep 1  # let the scheduler (and the adaptive count) see the load
}

run_one() {  # policy load round -> appends "load policy seconds img/s loss last acc" to $work/results
  local policy="$1" load="$2" round="$3" env=() threads=()
  case "${policy%+*}" in
    fixed) env+=(SPLITLEAK_ADAPTIVE_THREADS=0) ;;
    adaptive) env+=(SPLITLEAK_ADAPTIVE_THREADS=1) ;;
    one) threads=(--threads 1) ;;
    *) echo "threads_under_load: unknown policy '$policy' (fixed, adaptive, one; +active or +passive)" >&2; exit 2 ;;
  esac
  case "$policy" in
    *+active) env+=(OMP_WAIT_POLICY=active) ;;
    *+passive) env+=(OMP_WAIT_POLICY=passive) ;;
    *+spin*) env+=(GOMP_SPINCOUNT="${policy##*+spin}") ;;
  esac
  local result="$work/$policy-$load-$round.json"
  env "${env[@]}" "$bin" train --dataset mnist --model lenet --epochs 1 --batch 32 \
    --seed 1 --limit "$limit" --test-limit 1000 --data "$data" --out "$work/lenet.ckpt" --json "${threads[@]}" \
    >"$result" 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
  python3 - "$result" "$load" "$policy" >>"$work/results" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
e = r["epochs"][0]
print(sys.argv[2], sys.argv[3], repr(e["seconds"]), repr(e["images_per_s"]), repr(e["train_loss"]),
      repr(r["loss_last_steps"]), repr(r["test_accuracy"]))
EOF
  printf '  round %s, %s busy loop(s), %-8s %6.2f s\n' "$round" "$load" "$policy" \
    "$(tail -1 "$work/results" | cut -d' ' -f3)" >&2
  sleep "${PAUSE:-0}"
}

echo "threads_under_load: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo -)," \
  "$(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), load average" \
  "$(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "command: bash bench/threads_under_load.sh $repeats $limit (LOADS='$loads' PIN=${PIN:-0})"
for ((round = 1; round <= repeats; round++)); do
  for load in $loads; do
    start_load "$load"
    for policy in $policies; do run_one "$policy" "$load" "$round"; done
    stop_load
  done
done

python3 - "$work/results" "$limit" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
names = {"fixed": "fixed (before)", "adaptive": "adaptive (after)", "one": "--threads 1"}
print()
print(f"LeNet, MNIST, 1 epoch of {sys.argv[2]} images, batch 32: training seconds per epoch")
print(f"| competing busy loops | policy | median s | min-max s | img/s (median) | runs |")
print(f"|---|---|---|---|---|---|")
keys = []
for r in rows:
    if (r[0], r[1]) not in keys:
        keys.append((r[0], r[1]))
for load, pol in keys:
    s = [float(r[2]) for r in rows if (r[0], r[1]) == (load, pol)]
    ips = [float(r[3]) for r in rows if (r[0], r[1]) == (load, pol)]
    print(f"| {load} | {names.get(pol, pol)} | {statistics.median(s):.2f} | {min(s):.2f}-{max(s):.2f} | "
          f"{statistics.median(ips):.0f} | {len(s)} |")
bits = {tuple(r[4:]) for r in rows}
if len(bits) == 1:
    print(f"\nresults: the same bits in all {len(rows)} runs (train loss, loss of the last steps, test accuracy)")
else:
    print(f"\nresults DIFFER between runs: {sorted(bits)}")
    sys.exit(1)
EOF
