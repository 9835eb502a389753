#!/usr/bin/env bash
# The Neurosurgeon-style breakdown (edge compute, transfer, cloud compute per split point; edge-only and
# cloud-only) of LeNet and CIFAR10CNN over two emulated links, through a real `splitleak serve` on loopback.
# Writes RESULTS_DIR/<arch>/{latency.png,bytes.png,sweep.csv,sweep.json} and copies the plots to docs/.
#
#   bash bench/runtime_sweep.sh [LENET.ckpt] [CIFAR.ckpt] [RESULTS_DIR]
# Defaults: runs/lenet.ckpt, runs/cifar10cnn.ckpt, runs/runtime-sweep; LINKS=1,100 (Mbit/s), RTT=10 (ms),
# IMAGES=10 per split (LeNet), CIFAR_IMAGES=5 (at 1 Mbit/s a CIFAR conv tensor takes 2 s). A model file that is
# missing is replaced by an untrained model of the same architecture (timing does not depend on the weights).
set -euo pipefail
cd "$(dirname "$0")/.."
LENET="${1:-runs/lenet.ckpt}"
CIFAR="${2:-runs/cifar10cnn.ckpt}"
RESULTS_DIR="${3:-runs/runtime-sweep}"
LINKS="${LINKS:-1,100}"
RTT="${RTT:-10}"
B="${SPLITLEAK:-build/bin/splitleak}"
export OMP_NUM_THREADS=1
mkdir -p "$RESULTS_DIR"
# shellcheck source=bench/serve_lib.sh
. bench/serve_lib.sh

sweep() {  # $1 arch, $2 checkpoint, $3 dataset, $4 images
  local arch="$1" ckpt="$2" ds="$3" images="$4"
  if [ ! -f "$ckpt" ]; then
    echo "runtime_sweep: $ckpt not found: timing an untrained $arch" >&2
    ckpt="$work/$arch-untrained.ckpt"
    "$B" train --dataset "$ds" --model "$arch" --max-steps 1 --limit 32 --test-limit 32 --out "$ckpt" >/dev/null
  fi
  "$B" split --model "$ckpt" --at all --out "$work/$arch" >/dev/null
  serve_start "$work/$arch/cloud.ckpt"
  "$B" edge --model "$work/$arch/edge.ckpt" --connect "$server_addr" --sweep-splits --link-mbps "$LINKS" \
    --link-rtt-ms "$RTT" --images "$images" --threads 1 --out "$RESULTS_DIR/$arch"
  serve_stop
  cp "$RESULTS_DIR/$arch/latency.png" "docs/runtime-sweep-$arch-latency.png"
  cp "$RESULTS_DIR/$arch/bytes.png" "docs/runtime-sweep-$arch-bytes.png"
}

sweep lenet "$LENET" mnist "${IMAGES:-10}"
sweep cifar10cnn "$CIFAR" cifar10 "${CIFAR_IMAGES:-5}"
