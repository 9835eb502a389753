#!/usr/bin/python3
"""A small residual CNN written and trained in PyTorch on MNIST, exported with torch.onnx.export: the model from
elsewhere that splitleak imports (docs/onnx.md, "Bring your own model").

    /usr/bin/python3 examples/onnx/train_mnist_resnet.py [--data DIR] [--epochs N] [--out examples/onnx]

Writes mnist_resnet.onnx (the model, opset 13, a symbolic batch) and mnist_resnet.json (PyTorch's test accuracy on
the 10,000 MNIST test images, as printed, and the settings). Needs python3-torch and python3-numpy (Debian); reads the
MNIST IDX files of $SPLITLEAK_DATA/mnist (splitleak fetch mnist). The images are normalised as splitleak does:
(p / 255 - 0.5) / 0.5 in float32.

The network: stride-2 convolutions (no pooling layer before the end), batch normalisation (after each convolution,
which torch.onnx.export folds into the convolution, and once after the residual join, which stays a
BatchNormalization node), one residual block, global average pooling, a linear classifier.
"""
import argparse
import datetime
import json
import os
import platform
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(folder, split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte"))
    table = (np.arange(256, dtype=np.float32) / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)
    x = table[images].astype(np.float32)[:, None, :, :]
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.bn_out = nn.BatchNorm2d(channels)  # after the join: not foldable into a convolution

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(self.bn_out(x + y))


class MnistResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, stride=2, padding=1)  # 28 -> 14
        self.stem_bn = nn.BatchNorm2d(16)
        self.block = ResidualBlock(16)
        self.down = nn.Conv2d(16, 32, 3, stride=2, padding=1)  # 14 -> 7
        self.down_bn = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.block(x)
        x = F.relu(self.down_bn(self.down(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        x = torch.flatten(x, 1)
        return self.fc(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(os.environ.get("SPLITLEAK_DATA", "data"), "mnist"))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)

    xtr, ytr = load_mnist(a.data, "train")
    xte, yte = load_mnist(a.data, "test")
    model = MnistResNet()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    steps = a.epochs * ((len(xtr) + a.batch - 1) // a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps)
    start = time.time()
    step = 0
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for b in range(0, len(xtr), a.batch):
            idx = perm[b : b + a.batch]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0 or step == steps:
                el = time.time() - start
                print(f"epoch {epoch + 1}/{a.epochs} step {step}/{steps} loss {loss.item():.4f} "
                      f"{step / el:.1f} it/s ETA {(steps - step) / (step / el):.0f} s", flush=True)

    model.eval()
    correct = 0
    with torch.no_grad():
        for b in range(0, len(xte), 500):
            correct += int((model(xte[b : b + 500]).argmax(1) == yte[b : b + 500]).sum())
    acc = 100.0 * correct / len(xte)
    printed = f"{acc:.2f}"
    print(f"PyTorch test accuracy: {printed} % ({correct}/{len(xte)})")

    onnx_path = os.path.join(a.out, "mnist_resnet.onnx")
    torch.onnx.export(model, xte[:1], onnx_path, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=13)
    result = {
        "model": "mnist_resnet.onnx",
        "pytorch_test_accuracy_percent": printed,
        "pytorch_test_correct": correct,
        "test_images": len(xte),
        "epochs": a.epochs,
        "batch": a.batch,
        "lr": a.lr,
        "seed": a.seed,
        "torch": torch.__version__,
        "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": f"CPU ({platform.machine()}, {a.threads} threads)",
        "seconds": round(time.time() - start, 1),
        "command": "/usr/bin/python3 examples/onnx/train_mnist_resnet.py",
    }
    with open(os.path.join(a.out, "mnist_resnet.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {onnx_path} and mnist_resnet.json")


if __name__ == "__main__":
    main()
