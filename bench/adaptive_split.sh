#!/usr/bin/env bash
# CIS's adaptive split live over loopback: one `splitleak serve` cloud serving the tails of several LeNet splits,
# `splitleak edge --adaptive-split` through a fast -> slow -> fast emulated link, against each split held fixed
# over the same images and link. Prints the per-phase table (requests, splits used, requests before the split
# changed, mean latency, the best fixed split's mean latency, their ratio) and the test accuracy of the same images
# from `splitleak eval`; writes RESULTS_DIR/adaptive.json. Acceptance: adaptive/best <= 1.10 in every phase.
#
#   bash bench/adaptive_split.sh [LENET.ckpt] [RESULTS_DIR]
# Defaults: runs/lenet.ckpt, runs/adaptive-split; PHASES=100:200,1:200,100:200 (Mbit/s : requests),
# SPLITS=input,pool1,pool2,fc1,fc3, SLOWDOWN=30 (the edge device 30x slower than this CPU, so that at 100 Mbit/s
# sending the image beats running the head, and at 1 Mbit/s the deep split wins).
set -euo pipefail
cd "$(dirname "$0")/.."
LENET="${1:-runs/lenet.ckpt}"
RESULTS_DIR="${2:-runs/adaptive-split}"
PHASES="${PHASES:-100:200,1:200,100:200}"
SPLITS="${SPLITS:-input,pool1,pool2,fc1,fc3}"
SLOWDOWN="${SLOWDOWN:-30}"
B="${SPLITLEAK:-build/bin/splitleak}"
export OMP_NUM_THREADS=1
mkdir -p "$RESULTS_DIR"
# shellcheck source=bench/serve_lib.sh
. bench/serve_lib.sh

"$B" split --model "$LENET" --at "$SPLITS" --out "$work/deploy" >/dev/null
serve_start "$work/deploy/cloud.ckpt"
addr="$server_addr"

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc --all) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $B edge --model <split --at $SPLITS>/edge.ckpt --adaptive-split --link-phases $PHASES --edge-slowdown $SLOWDOWN"
"$B" edge --model "$work/deploy/edge.ckpt" --connect "$addr" --adaptive-split --link-phases "$PHASES" \
  --edge-slowdown "$SLOWDOWN" --threads 1
"$B" edge --model "$work/deploy/edge.ckpt" --connect "$addr" --adaptive-split --link-phases "$PHASES" \
  --edge-slowdown "$SLOWDOWN" --threads 1 --json >"$RESULTS_DIR/adaptive.json" 2>/dev/null
images=0
for p in ${PHASES//,/ }; do images=$((images + ${p#*:})); done
echo "# eval on the same $images images:"
"$B" eval --model "$LENET" --limit "$images" 2>/dev/null | tail -n 3
python3 - "$RESULTS_DIR/adaptive.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"second run ({sys.argv[1]}): accuracy {j['accuracy']:.4f}, {j['switches']} switches, failed {j['failed_requests']}")
for k, p in enumerate(j["phases"], 1):
    print(f"  phase {k} {p['link_mbps']:g} Mbit/s: {p['splits_used']}; switch after {p['requests_before_switch']}; "
          f"mean {p['mean_ms']:.3f} ms, best fixed {p['best_fixed']} {p['best_fixed_mean_ms']:.3f} ms, "
          f"ratio {p['ratio_to_best_fixed']:.3f}")
PY
