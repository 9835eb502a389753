#!/usr/bin/env bash
# The partition advisor and the CIS sweep of docs/partition.md, timed:
#   1. `splitleak partition` with all three attacks at every split layer (the acceptance timing: --quick on the CPU,
#      target <= 15 min on 2 cores; the full settings on a GPU, target <= 2 min on an H200);
#   2. the recommendation in three scenarios with the paper's query-free attack and --max-ssim 0.3:
#      1 Mbit/s + 2 MB edge memory, 100 Mbit/s + no limit, 1 Mbit/s + 64 KiB;
#   3. CIS at the model's CIS split (MNIST ReLU2, CIFAR-10 ReLU22): accuracy and attack SSIM vs ε, rank and
#      uniform allocation side by side (`splitleak defend --defense cis,...,cis,...`), the paper's attacker and the
#      adaptive one (`--compare`), white-box and black-box.
# Usage: bash bench/partition.sh cpu|cuda [MODEL.ckpt] [RESULTS_DIR]
#   SPLITLEAK=path/to/splitleak (default build/bin/splitleak, or build-cuda/bin/splitleak for cuda);
#   CLIP=C overrides the CIS clip bound; the data directory comes from SPLITLEAK_DATA.
set -euo pipefail
device="${1:?device: cpu or cuda}"
model="${2:-runs/lenet.ckpt}"
results="${3:-runs/bench-partition-$device}"
default_bin=build/bin/splitleak
[ "$device" = cuda ] && default_bin=build-cuda/bin/splitleak
bin="${SPLITLEAK:-$default_bin}"
case "$device" in
  cpu) args=(--quick) target=900 ;;
  cuda) args=(--device cuda) target=120 ;;
  *) echo "device must be cpu or cuda" >&2; exit 2 ;;
esac
arch=$("$bin" info --model "$model" --json | sed -n 's/.*"arch": *"\([^"]*\)".*/\1/p' | head -1)
case "$arch" in
  lenet) cis_split=ReLU2 levels=0,300,500,1000,1500,2000,3000,5000,10000 clip=16 ;;
  cifar10cnn) cis_split=ReLU22 levels=0,10000,30000,60000,100000,300000,1000000 clip=128 ;;
  *) echo "bench/partition.sh: no CIS settings for a '$arch' model" >&2; exit 2 ;;
esac
clip="${CLIP:-$clip}"
mkdir -p "$results"
seconds() { local ms=$(( ($2 - $1) / 1000000 )); echo "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"; }

start=$(date +%s%N)
"$bin" partition --model "$model" --attacks queryfree,whitebox,blackbox "${args[@]}" --bandwidth 1Mbit \
  --edge-memory 2MB --max-ssim 0.3 --out "$results/all-attacks"
end=$(date +%s%N)
echo "partition, 3 attacks x every layer, $device (${args[*]}): $(seconds "$start" "$end") s wall, target <= $target s" |
  tee "$results/time.txt"

# One measurement, three recommendations (--scenario reuses the attacks and timings).
"$bin" partition --model "$model" "${args[@]}" --bandwidth 1Mbit --edge-memory 2MB --max-ssim 0.3 \
  --scenario 100Mbit --scenario 1Mbit,64KiB --out "$results/queryfree-scenarios"

cis_args=()
[ "$device" = cuda ] && cis_args=(--device cuda)
# The paper's attacker and the adaptive one side by side: white-box over every level, black-box over every other one.
"$bin" defend --model "$model" --split "$cis_split" --defense "cis,alloc=rank,clip=$clip,cis,alloc=uniform,clip=$clip" \
  --levels "$levels" --compare "${cis_args[@]}" --out "$results/cis-$cis_split"
bb_levels=$(echo "$levels" | tr ',' '\n' | awk 'NR % 2 == 1' | paste -sd, -)
"$bin" defend --model "$model" --split "$cis_split" --defense "cis,alloc=rank,clip=$clip,cis,alloc=uniform,clip=$clip" \
  --levels "$bb_levels" --attack blackbox --compare "${cis_args[@]}" --out "$results/cis-$cis_split-blackbox"
