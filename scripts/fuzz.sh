#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang, ASan + UBSan, in build-fuzz/) and runs each for a bounded time.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]   SECONDS per target (default 30); all targets when none named
# Environment: FUZZ_CXX (default clang++-14), FUZZ_PARALLEL (targets run at once, default 1), FUZZ_BUILD
# (build folder, default build-fuzz). Each target starts from its seeds in fuzz/corpus/<target>/ and from
# what earlier runs found (FUZZ_BUILD/corpus/<target>/; only that folder grows); a crashing input is saved
# under FUZZ_BUILD/artifacts/<target>/ and the run fails. Prints one line per target: executions, coverage
# (libFuzzer's cov = edges, ft = features), corpus size, result. Exit status 1 when any target failed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
cxx="${FUZZ_CXX:-clang++-14}"
build="${FUZZ_BUILD:-build-fuzz}"
parallel="${FUZZ_PARALLEL:-1}"
command -v "$cxx" >/dev/null || {
  echo "fuzz: $cxx not found (apt-get install clang-14 libfuzzer-14-dev libclang-rt-14-dev libomp-14-dev)" >&2
  exit 2
}
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || { echo "fuzz: SECONDS must be a positive integer" >&2; exit 2; }

mkdir -p "$build"
if ! { cmake -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" -DSPLITLEAK_FUZZ=ON \
  -DSPLITLEAK_CUDA=OFF -DSPLITLEAK_BENCH=OFF -DSPLITLEAK_TESTS=OFF &&
  cmake --build "$build" -j"$(nproc)" --target fuzz_all; } >"$build/build.log" 2>&1; then
  tail -40 "$build/build.log" >&2
  echo "fuzz: the build failed (whole log: $build/build.log)" >&2
  exit 2
fi

mapfile -t all < "$build/fuzz_targets.txt"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz: unknown target '$t' (targets: ${all[*]})" >&2; exit 2; }
done

# One target: fuzz for $seconds, log to $build/logs/<t>.log, exit status of libFuzzer.
run_one() {
  local t="$1" seeds=()
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t" "$build/logs"
  [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t")
  # A hard stop well past the fuzzing time, in case a target hangs where libFuzzer's own timeout cannot act.
  timeout --signal=KILL $((seconds + 300)) "$build/bin/fuzz_$t" -max_total_time="$seconds" -timeout=30 \
    -malloc_limit_mb=64 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" \
    "$build/corpus/$t" "${seeds[@]}" >"$build/logs/$t.log" 2>&1
}

echo "fuzz: ${#targets[@]} target(s), ${seconds} s each, ${parallel} at a time (logs: $build/logs/)"
declare -A status
pids=()
names=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  names+=("$t")
  if [ ${#pids[@]} -ge "$parallel" ]; then
    if wait "${pids[0]}"; then status[${names[0]}]=0; else status[${names[0]}]=$?; fi
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
  fi
done
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then status[${names[$i]}]=0; else status[${names[$i]}]=$?; fi
done

failed=0
printf '%-12s %12s %9s %7s %7s %9s  %s\n' target executions exec/s cov ft corpus result
for t in "${targets[@]}"; do
  log="$build/logs/$t.log"
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  done_line=$(grep -a -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$done_line")
  if [ "${status[$t]}" = 0 ]; then
    result=ok
  else
    failed=1
    result="FAILED (exit ${status[$t]}): $(grep -a -m1 -E '^SUMMARY|^fuzz: |ERROR: libFuzzer' "$log" || echo 'see log')"
  fi
  printf '%-12s %12s %9s %7s %7s %9s  %s\n' "$t" "${runs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "${corp:--}" "$result"
done
if [ "$failed" != 0 ]; then
  echo "fuzz: failures above; crashing inputs are in $build/artifacts/<target>/, logs in $build/logs/" >&2
  for t in "${targets[@]}"; do
    [ "${status[$t]}" = 0 ] || { echo "--- $t (tail of $build/logs/$t.log)" >&2; tail -40 "$build/logs/$t.log" >&2; }
  done
fi
exit "$failed"
