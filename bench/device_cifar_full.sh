#!/usr/bin/env bash
# CIFAR-10 on the whole training set on the device machine. The five training PNG batches and the test batch
# (6 x 23 MB) do not fit one call's 64 MiB carry, so they travel in three calls while the machine stays warm
# (its /tmp survives between calls): `stash` copies what a call carried into /tmp/slc, `train` and `attack` run
# on what has been stashed.
#   CARRY=dir bash bench/device_cifar_full.sh stash     dir holds bin.tar.xz and/or cifar10/<some files>
#   SEEDS="1 2 3" EPOCHS=15 bash bench/device_cifar_full.sh train    ours and bench/torch_reference.py, same
#        recipe (batch 32, Adam/AMSGrad lr 1e-3 halved every 20 epochs, no augmentation), one run per seed
#   ATTACK_EPOCHS=30 bash bench/device_cifar_full.sh attack   trains the attacked model (our default
#        augmentation) and runs the white-box and black-box attacks at ReLU22; grids to $OUT
set -uo pipefail
stage="${1:?stage: stash, train or attack}"
OUT="${OUT:-/tmp/out}"; CARRY="${CARRY:-.carry}"; P=/tmp/slc
mkdir -p "$OUT" "$P/data/cifar10"
for d in /usr/local/cuda/lib64 /usr/local/lib/python3*/dist-packages/nvidia/*/lib /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:$d"
done
SL=$P/bin/splitleak
run() { echo "+ $*" | tee -a "$OUT/commands.txt"; "$@"; }
case "$stage" in
  stash)
    [ -f "$CARRY/bin.tar.xz" ] && tar -xJf "$CARRY/bin.tar.xz" -C "$P"
    [ -d "$CARRY/cifar10" ] && cp "$CARRY"/cifar10/* "$P/data/cifar10/"
    ls -la "$P/data/cifar10" "$P/bin"
    ;;
  train)
    EPOCHS="${EPOCHS:-15}"; SEEDS="${SEEDS:-1 2 3}"
    for s in $SEEDS; do
      run timeout 200 $SL train --dataset cifar10 --model cifar10cnn --epochs "$EPOCHS" --batch 32 --no-augment \
        --seed "$s" --device cuda --data "$P/data" --out "$P/cnn-seed$s.ckpt" 2>&1 | grep -v '^epoch [0-9]*/' \
        | tee "$OUT/train_ours_seed$s.log" | tail -4
    done
    PYTHONUNBUFFERED=1 run timeout 400 python3 bench/torch_reference.py --only train_cifar --cifar-epochs "$EPOCHS" \
      --cifar-augment none --cifar-seeds "$(echo $SEEDS | tr ' ' ',')" --data "$P/data" --json "$OUT/train_torch.json" \
      | grep "train_cifar seed"
    ;;
  attack)
    ATTACK_EPOCHS="${ATTACK_EPOCHS:-30}"
    run timeout 300 $SL train --dataset cifar10 --model cifar10cnn --epochs "$ATTACK_EPOCHS" --batch 32 --device cuda \
      --data "$P/data" --out "$P/cnn-attacked.ckpt" 2>&1 | grep -v '^epoch [0-9]*/' | tee "$OUT/train_attacked.log" | tail -5
    cp "$P/cnn-attacked.ckpt" "$OUT/"
    for kind in whitebox blackbox; do
      run timeout 200 $SL attack $kind --model "$P/cnn-attacked.ckpt" --split ReLU22 --device cuda --data "$P/data" \
        --out "$P/cifar-$kind" 2>>"$OUT/stderr.log" | tee "$OUT/cifar_$kind.log"
      cp "$P/cifar-$kind/grid.png" "$OUT/cifar_$kind.png"
    done
    ;;
esac
