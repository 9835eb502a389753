#!/usr/bin/env python3
"""The same workloads as splitleak's GPU benchmarks, timed in PyTorch on the same card in the same run.

Workloads (all FP32 unless marked):
  lenet_step      LeNet training step (forward, cross-entropy, backward, Adam/AMSGrad), batch 32 and 256,
                  eager and captured into a CUDA graph
  cifar_step      CIFAR10CNN training step, batch 128, eager with PyTorch's default settings
  conv            each CIFAR10CNN conv at batch 128: forward, backward-data, backward-weight, FP32 and TF32
  gemm            the FC layers' GEMMs (forward, backward-data, backward-weight), FP32
  rmle            batched white-box rMLE on LeNet split at ReLU2: N images x iters Adam iterations
  train_cifar     CIFAR10CNN trained on the training batches under --data with the reference recipe -> test accuracy

Usage: python3 bench/torch_reference.py [--only conv,gemm,...] [--data DIR] [--json OUT.json]
Timing: CUDA events around each region after warm-up; the median of repeated runs is reported.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
        nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def cifar10cnn():
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(),
                nn.MaxPool2d(2, 2)]
    return nn.Sequential(*block(3, 64), *block(64, 128), *block(128, 128), nn.Flatten(),
                         nn.Linear(2048, 512), nn.Sigmoid(), nn.Linear(512, 10))


def cuda_time(fn, warmup=10, reps=50, rounds=5):
    """Median over `rounds` of the mean time (ms) of `reps` back-to-back calls, timed with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(rounds):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(reps):
            fn()
        b.record()
        b.synchronize()
        samples.append(a.elapsed_time(b) / reps)
    return statistics.median(samples)


def adam(params, capturable=False):
    return torch.optim.Adam(params, lr=1e-3, eps=1e-3, amsgrad=True, capturable=capturable)


def bench_lenet_step(results):
    for batch in (32, 256):
        torch.manual_seed(0)
        model = lenet().cuda()
        opt = adam(model.parameters())
        x = torch.randn(batch, 1, 28, 28, device="cuda")
        y = torch.randint(0, 10, (batch,), device="cuda")

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
        results[f"lenet_step_b{batch}_eager_ms"] = cuda_time(step, reps=100)

        # CUDA-graph captured step (static input buffers, capturable Adam), the fastest PyTorch can do here.
        model = lenet().cuda()
        opt = adam(model.parameters(), capturable=True)
        sx, sy = x.clone(), y.clone()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(sx), sy).backward()
                opt.step()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(g):
            F.cross_entropy(model(sx), sy).backward()
            opt.step()
        results[f"lenet_step_b{batch}_graph_ms"] = cuda_time(g.replay, reps=200)


def bench_cifar_step(results):
    torch.manual_seed(0)
    model = cifar10cnn().cuda()
    opt = adam(model.parameters())
    x = torch.randn(128, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (128,), device="cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    ms = cuda_time(step, reps=20)
    results["cifar_step_b128_eager_ms"] = ms
    results["cifar_step_b128_eager_img_per_s"] = 128 / ms * 1e3
    results["cifar_defaults"] = {"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                                 "matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                                 "cudnn.benchmark": torch.backends.cudnn.benchmark}


CIFAR_CONVS = [("conv11", 3, 64, 32), ("conv12", 64, 64, 32), ("conv21", 64, 128, 16), ("conv22", 128, 128, 16),
               ("conv31", 128, 128, 8), ("conv32", 128, 128, 8)]


def bench_convs(results, batch=128):
    out = {}
    saved = torch.backends.cudnn.allow_tf32
    for precision in ("fp32", "tf32"):
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        for name, cin, cout, hw in CIFAR_CONVS:
            x = torch.randn(batch, cin, hw, hw, device="cuda")
            w = torch.randn(cout, cin, 3, 3, device="cuda") * 0.1
            gy = torch.randn(batch, cout, hw, hw, device="cuda")
            flops = 2.0 * batch * cout * hw * hw * cin * 9
            fwd = cuda_time(lambda: F.conv2d(x, w, padding=1))
            bd = cuda_time(lambda: torch.ops.aten.convolution_backward(
                gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False]))
            bw = cuda_time(lambda: torch.ops.aten.convolution_backward(
                gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [False, True, False]))
            for what, ms in (("fwd", fwd), ("bwd_data", bd), ("bwd_weight", bw)):
                out[f"{name}_{what}_{precision}"] = {"ms": ms, "tflops": flops / ms / 1e9}
    torch.backends.cudnn.allow_tf32 = saved
    results["cudnn_conv_b128"] = out


FC_GEMMS = [("cifar_fc1", 128, 2048, 512), ("cifar_fc2", 128, 512, 10), ("lenet_fc1", 32, 256, 120),
            ("lenet_fc2", 32, 120, 84), ("lenet_fc3", 32, 84, 10)]


def bench_gemms(results):
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    out = {}
    for name, n, fin, fout in FC_GEMMS:
        x = torch.randn(n, fin, device="cuda")
        w = torch.randn(fout, fin, device="cuda")
        gy = torch.randn(n, fout, device="cuda")
        flops = 2.0 * n * fin * fout
        for what, fn in (("fwd", lambda: x @ w.t()), ("bwd_data", lambda: gy @ w), ("bwd_weight", lambda: gy.t() @ x)):
            ms = cuda_time(fn, reps=200)
            out[f"{name}_{what}"] = {"ms": ms, "tflops": flops / ms / 1e9}
    torch.backends.cuda.matmul.allow_tf32 = saved
    results["cublas_fc"] = out


def tv_loss(x):
    b, _, h, w = x.shape
    ch = x[:, :, 1:, :].numel() / b
    cw = x[:, :, :, 1:].numel() / b
    return ((x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).sum() / ch + (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).sum() / cw) / b


def bench_rmle(results, n=1000, iters=5000, lam=1.0):
    torch.manual_seed(0)
    head = lenet()[:5].cuda().eval()  # conv1, ReLU1, pool1, conv2, ReLU2
    for p in head.parameters():
        p.requires_grad_(False)
    target = head(torch.randn(n, 1, 28, 28, device="cuda"))
    x = torch.zeros(n, 1, 28, 28, device="cuda", requires_grad=True)
    opt = torch.optim.Adam([x], lr=1e-2, eps=1e-3, amsgrad=True)

    def it():
        opt.zero_grad(set_to_none=True)
        loss = ((head(x) - target) ** 2).mean() + lam * tv_loss(x)
        loss.backward()
        opt.step()
    for _ in range(20):
        it()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        it()
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    results["rmle_lenet_relu2"] = {"images": n, "iterations": iters, "seconds": secs, "it_per_s": iters / secs}


# ---- data (for train_cifar): the npm package's PNG sprites (PIL comes with scikit-image on the device) ----
def read_png_rgb(path):
    from PIL import Image
    import numpy as np
    a = np.asarray(Image.open(path).convert("RGB"))  # [images, 1024, 3]
    return torch.from_numpy(a.copy()).view(-1, 32, 32, 3).permute(0, 3, 1, 2).contiguous()


def load_cifar_subset(data_dir):
    d = os.path.join(data_dir, "cifar10")
    with open(os.path.join(d, "train_lables.json")) as f:
        train_labels = json.load(f)
    with open(os.path.join(d, "test_lables.json")) as f:
        test_labels = json.load(f)
    xs, ys, used = [], [], []
    for k in range(1, 6):
        p = os.path.join(d, f"data_batch_{k}.png")
        if os.path.exists(p):
            xs.append(read_png_rgb(p))
            ys.extend(train_labels[(k - 1) * 10000:k * 10000])
            used.append(k)
    xt = read_png_rgb(os.path.join(d, "test_batch.png"))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    norm = lambda u8: (u8.float() / 255 - mean) / std
    return norm(torch.cat(xs)), torch.tensor(ys), norm(xt), torch.tensor(test_labels), used


def train_cifar(results, data_dir, epochs, batch=32, seed=1, augment="none"):
    xtr, ytr, xte, yte, used = load_cifar_subset(data_dir)
    torch.manual_seed(seed)
    model = cifar10cnn().cuda()
    opt = adam(model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, 20, 0.5)
    xtr, ytr, xte, yte = xtr.cuda(), ytr.cuda(), xte.cuda(), yte.cuda()
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), device="cuda")
        for i in range(0, len(xtr), batch):
            idx = perm[i:i + batch]
            xb = xtr[idx]
            if augment == "flip":  # horizontal flip only (the affine jitter is left out here)
                flip = torch.rand(len(idx), device="cuda") < 0.5
                xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), ytr[idx]).backward()
            opt.step()
        sched.step()
    torch.cuda.synchronize()
    model.eval()
    with torch.no_grad():
        acc = sum((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item() for i in range(0, len(xte), 1000))
    key = "train_cifar" if seed == 1 else f"train_cifar_seed{seed}"
    results[key] = {"train_batches": used, "epochs": epochs, "batch": batch, "seed": seed,
                    "test_accuracy": acc / len(xte), "seconds": time.perf_counter() - t0, "augmentation": augment}
    print(f"train_cifar seed {seed}: test accuracy {100 * acc / len(xte):.2f} %", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="lenet_step,cifar_step,conv,gemm,rmle")
    ap.add_argument("--data", default="data")
    ap.add_argument("--cifar-epochs", type=int, default=10)
    ap.add_argument("--cifar-augment", choices=["none", "flip"], default="none")
    ap.add_argument("--cifar-seeds", default="1", help="comma-separated seeds, one training run each")
    ap.add_argument("--rmle-images", type=int, default=1000)
    ap.add_argument("--rmle-iters", type=int, default=5000)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch_reference.py: no CUDA device")
    only = set(a.only.split(","))
    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv)}
    if "lenet_step" in only:
        bench_lenet_step(results)
    if "cifar_step" in only:
        bench_cifar_step(results)
    if "conv" in only:
        bench_convs(results)
    if "gemm" in only:
        bench_gemms(results)
    if "rmle" in only:
        bench_rmle(results, a.rmle_images, a.rmle_iters)
    if "train_cifar" in only:
        for seed in [int(v) for v in a.cifar_seeds.split(",")]:
            train_cifar(results, a.data, a.cifar_epochs, seed=seed, augment=a.cifar_augment)
    text = json.dumps(results, indent=1)
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            f.write(text)
        os.replace(a.json + ".tmp", a.json)
    print(text)


if __name__ == "__main__":
    main()
