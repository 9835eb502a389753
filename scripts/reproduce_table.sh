#!/usr/bin/env bash
# Reproduces the MNIST table of He, Zhang & Lee (white-box / black-box / query-free x conv1 / ReLU2)
# in one command: trains LeNet (3 epochs) unless OUT/lenet.ckpt exists, then runs `splitleak attack table`
# with the tuned preset and with the reference preset. Each prints a terminal table and writes
# OUT/<preset>/table.md, table.csv and one folder per cell (grid.png, results.csv, results.json).
#
#   scripts/reproduce_table.sh [DATA_DIR] [OUT_DIR]          (defaults: $SPLITLEAK_DATA or data/, runs/table)
#   DEVICE=cuda scripts/reproduce_table.sh ...                (any --device value; default cpu)
#   THREADS=1 ...                                             (CPU threads; 1 is fastest on a busy machine)
#   SPLITLEAK=build-inv/bin/splitleak ...                     (the binary; default build/bin/splitleak)
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-${SPLITLEAK_DATA:-data}}"
dest="${2:-runs/table}"
bin="${SPLITLEAK:-build/bin/splitleak}"
device="${DEVICE:-cpu}"
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
mkdir -p "$dest"

if [ ! -f "$dest/lenet.ckpt" ]; then
  "$bin" train --dataset mnist --model lenet --epochs 3 --batch 32 --device "$device" --data "$data" \
    --out "$dest/lenet.ckpt" "${threads[@]}"
fi
for preset in tuned reference; do
  "$bin" attack table --preset "$preset" --model "$dest/lenet.ckpt" --data "$data" --device "$device" \
    --out "$dest/$preset" "${threads[@]}"
done
echo "tables: $dest/tuned/table.md and $dest/reference/table.md"
