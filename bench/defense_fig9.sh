#!/usr/bin/env bash
# Times the whole of the paper's Fig 9 with `splitleak defend --figure 9`: 3 defenses x 2 places, 10 class
# exemplars attacked per level (white-box rMLE, the paper's attacker), accuracy on the 10 000 MNIST test images per
# level.
#   cpu:  --quick (8 levels per line, 1000 rMLE iterations instead of 5000), one thread; target <= 10 min on 2 cores
#   cuda: the full figure (10-14 levels per line, 5000 iterations);                   target <= 30 s on an H200
# Usage: bash bench/defense_fig9.sh cpu|cuda [MODEL.ckpt] [RESULTS_DIR]
#   SPLITLEAK=path/to/splitleak (default build/bin/splitleak, or build-cuda/bin/splitleak for cuda);
#   the data directory comes from SPLITLEAK_DATA (or --data in EXTRA).
set -euo pipefail
device="${1:?device: cpu or cuda}"
model="${2:-runs/lenet.ckpt}"
results="${3:-runs/bench-defense-fig9-$device}"
default_bin=build/bin/splitleak
[ "$device" = cuda ] && default_bin=build-cuda/bin/splitleak
bin="${SPLITLEAK:-$default_bin}"
case "$device" in
  cpu) args=(--quick --threads 1) ;;
  cuda) args=(--device cuda) ;;
  *) echo "device must be cpu or cuda" >&2; exit 2 ;;
esac
mkdir -p "$results"
start=$(date +%s%N)
"$bin" defend --model "$model" --figure 9 "${args[@]}" ${EXTRA:-} --out "$results" | tee "$results/table.txt"
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
secs="$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
target=600
[ "$device" = cuda ] && target=30
echo "Fig 9 on $device (${args[*]}): ${secs} s wall, target <= ${target} s" | tee "$results/time.txt"
