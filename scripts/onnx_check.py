#!/usr/bin/python3
"""Checks ONNX files written by `splitleak export` with a second, independent ONNX consumer: the ONNX project's own
Python checker (python3-onnx) and PyTorch (python3-torch), which runs the file's graph through an interpreter of its
nodes written here on torch.nn.functional (PyTorch 1.13 cannot load ONNX itself, and python3-onnx 1.12 has no
reference runtime). Optionally also against the checkpoint the file came from, rebuilt in PyTorch from its weights,
and against splitleak's own accuracy on the same images.

    /usr/bin/python3 scripts/onnx_check.py MODEL.onnx [--ckpt MODEL.ckpt] [--splitleak build/bin/splitleak]
                                           [--data $SPLITLEAK_DATA] [--images N]

Prints one line per check and exits 1 when one fails: the checker (full check, shape inference); the outputs of the
ONNX graph in PyTorch against the checkpoint's model in PyTorch (max abs difference, predictions that differ); the
accuracy of the ONNX graph in PyTorch against `splitleak eval --model MODEL.onnx --json` on the first N test images.
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn.functional as F


# ---- the ONNX graph in PyTorch ----------------------------------------------------------------------------------
def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def pads_2d(p):  # ONNX [top, left, bottom, right] -> F.pad's (left, right, top, bottom)
    return (p[1], p[3], p[0], p[2])


def run_onnx(model, x):
    vals = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    vals[model.graph.input[0].name] = x
    for n in model.graph.node:
        a = attrs(n)
        i = [vals[k] if k else None for k in n.input]
        op = n.op_type
        if op in ("Conv", "ConvTranspose"):
            k = a.get("kernel_shape", list(i[1].shape[2:]))
            p = a.get("pads", [0] * (2 * len(k)))
            s, d, g = a.get("strides", [1] * len(k)), a.get("dilations", [1] * len(k)), a.get("group", 1)
            b = i[2] if len(i) > 2 else None
            if op == "Conv":
                y = F.conv2d(F.pad(i[0], pads_2d(p)), i[1], b, s, 0, d, g)
            else:
                op_ = a.get("output_padding", [0, 0])
                y = F.conv_transpose2d(i[0], i[1], b, s, 0, op_, g, d)
                h, w = y.shape[2], y.shape[3]
                y = y[:, :, p[0] : h - p[2], p[1] : w - p[3]]
        elif op == "Gemm":
            w = i[1].t() if a.get("transB", 0) else i[1]
            y = a.get("alpha", 1.0) * (i[0] @ w)
            if len(i) > 2:
                y = y + a.get("beta", 1.0) * i[2]
        elif op in ("MaxPool", "AveragePool"):
            k, p = a["kernel_shape"], a.get("pads", [0, 0, 0, 0])
            s, ceil = a.get("strides", [1, 1]), bool(a.get("ceil_mode", 0))
            if op == "MaxPool":
                y = F.max_pool2d(F.pad(i[0], pads_2d(p), value=float("-inf")), k, s, 0, a.get("dilations", [1, 1]),
                                 ceil_mode=ceil)
            elif a.get("count_include_pad", 0) or not any(p):
                y = F.avg_pool2d(F.pad(i[0], pads_2d(p)), k, s, 0, ceil_mode=ceil)
            else:  # the mean over the window's cells inside the input
                ones = torch.ones_like(i[0][:, :1])
                num = F.avg_pool2d(F.pad(i[0], pads_2d(p)), k, s, 0, ceil_mode=ceil)
                den = F.avg_pool2d(F.pad(ones, pads_2d(p)), k, s, 0, ceil_mode=ceil)
                y = num / den
        elif op == "GlobalAveragePool":
            y = i[0].mean(dim=(2, 3), keepdim=True)
        elif op == "BatchNormalization":
            y = F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0, a.get("epsilon", 1e-5))
        elif op == "Add":
            y = i[0] + i[1]
        elif op == "Relu":
            y = F.relu(i[0])
        elif op == "LeakyRelu":
            y = F.leaky_relu(i[0], a.get("alpha", 0.01))
        elif op == "Sigmoid":
            y = torch.sigmoid(i[0])
        elif op == "Tanh":
            y = torch.tanh(i[0])
        elif op == "Softmax":
            y = F.softmax(i[0], a.get("axis", -1))
        elif op == "Flatten":
            ax = a.get("axis", 1)
            y = i[0].reshape(int(np.prod(i[0].shape[:ax])), -1)
        elif op == "Reshape":
            shape = [i[0].shape[j] if v == 0 else int(v) for j, v in enumerate(i[1].tolist())]
            y = i[0].reshape(shape)
        elif op in ("Identity", "Dropout"):
            y = i[0]
        else:
            raise SystemExit(f"onnx_check: operator {op} (node {n.name}) is not interpreted here")
        vals[n.output[0]] = y
    return vals[model.graph.output[0].name]


# ---- a splitleak checkpoint rebuilt in PyTorch --------------------------------------------------------------
def read_checkpoint(path):
    b = open(path, "rb").read()
    assert b[:4] == b"SPLK", f"{path}: not a splitleak checkpoint"
    off = 16

    def string():
        nonlocal off
        (n,) = struct.unpack_from("<I", b, off)
        off += 4
        s = b[off : off + n].decode()
        off += n
        return s

    arch = string()
    (nmeta,) = struct.unpack_from("<I", b, off)
    off += 4
    for _ in range(nmeta):
        string(), string()
    (nt,) = struct.unpack_from("<I", b, off)
    off += 4
    tensors = {}
    for _ in range(nt):
        name = string()
        dt, rank = b[off], b[off + 1]
        off += 2
        dims = struct.unpack_from(f"<{rank}q", b, off)
        off += 8 * rank
        dtype = {0: np.float32, 1: np.float64, 2: np.int32}[dt]
        n = int(np.prod(dims)) if rank else 1
        arr = np.frombuffer(b, dtype=dtype, count=n, offset=off).reshape(dims)
        off += n * arr.itemsize
        tensors[name] = torch.from_numpy(arr.copy())
    return arch, tensors


def run_checkpoint(arch, t, x):
    def conv(x, name, pad):
        return F.conv2d(x, t[name + ".weight"], t[name + ".bias"], 1, pad)

    def fc(x, name):
        return F.linear(x, t[name + ".weight"], t[name + ".bias"])

    if arch == "lenet":
        x = F.max_pool2d(F.relu(conv(x, "conv1", 0)), 2)
        x = F.max_pool2d(F.relu(conv(x, "conv2", 0)), 2).flatten(1)
        return fc(F.relu(fc(F.relu(fc(x, "fc1")), "fc2")), "fc3")
    if arch == "cifar10cnn":
        for blk in ("1", "2", "3"):
            x = F.relu(conv(x, f"conv{blk}1", 1))
            x = F.max_pool2d(F.relu(conv(x, f"conv{blk}2", 1)), 2)
        return fc(torch.sigmoid(fc(x.flatten(1), "fc1")), "fc2")
    raise SystemExit(f"onnx_check: no PyTorch rebuild of architecture '{arch}'")


# ---- test images, normalised as splitleak does ----------------------------------------------------------------
def test_images(data, shape, n):
    if list(shape) == [1, 28, 28]:
        raw = open(os.path.join(data, "mnist", "t10k-images-idx3-ubyte"), "rb").read()
        img = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
        lab = np.frombuffer(open(os.path.join(data, "mnist", "t10k-labels-idx1-ubyte"), "rb").read(), np.uint8, offset=8)
        mean, std = [0.5], [0.5]
    elif list(shape) == [3, 32, 32]:
        raw = np.frombuffer(open(os.path.join(data, "cifar10", "cifar-10-batches-bin", "test_batch.bin"), "rb").read(),
                            np.uint8).reshape(-1, 3073)
        img, lab = raw[:n, 1:].reshape(-1, 3, 32, 32), raw[:, 0]
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    else:
        raise SystemExit(f"onnx_check: no test images of shape {shape}")
    c = len(mean)
    table = np.stack([(np.arange(256, dtype=np.float32) / np.float32(255) - np.float32(mean[k])) / np.float32(std[k])
                      for k in range(c)])
    x = np.stack([table[k][img[:, k]] for k in range(c)], axis=1).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(lab[:n].astype(np.int64))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--ckpt")
    ap.add_argument("--splitleak")
    ap.add_argument("--data", default=os.environ.get("SPLITLEAK_DATA", "data"))
    ap.add_argument("--images", type=int, default=1000)
    a = ap.parse_args()
    ok = True

    model = onnx.load(a.model)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    print(f"onnx.checker (full check, strict shape inference): ok  [{a.model}: opset "
          f"{model.opset_import[0].version}, {len(model.graph.node)} nodes, "
          f"{len(inferred.graph.value_info)} inferred values]")

    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:]
    x, y = test_images(a.data, dims, a.images)
    torch.set_num_threads(2)
    with torch.no_grad():
        out = torch.cat([run_onnx(model, x[b : b + 250]) for b in range(0, len(x), 250)])
    acc = 100.0 * float((out.argmax(1) == y).float().mean())

    if a.ckpt:
        arch, t = read_checkpoint(a.ckpt)
        with torch.no_grad():
            ref = torch.cat([run_checkpoint(arch, t, x[b : b + 250]) for b in range(0, len(x), 250)])
        diff = float((out - ref).abs().max())
        differ = int((out.argmax(1) != ref.argmax(1)).sum())
        good = diff <= 1e-4 * max(1.0, float(ref.abs().max())) and differ == 0
        ok &= good
        print(f"PyTorch: the ONNX graph vs the checkpoint's {arch} rebuilt from its weights, {len(x)} test images: "
              f"max abs diff {diff:.3g}, {differ} predictions differ: {'ok' if good else 'MISMATCH'}")

    print(f"PyTorch: accuracy of the ONNX graph on the first {len(x)} test images: {acc:.2f} %")
    if a.splitleak:
        r = subprocess.run([a.splitleak, "eval", "--model", a.model, "--json", "--limit", str(len(x)), "--data", a.data],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"splitleak eval failed: {r.stderr.strip()}")
            return 1
        sl_acc = 100.0 * json.loads(r.stdout[r.stdout.index("{") :])["accuracy"]
        good = f"{sl_acc:.2f}" == f"{acc:.2f}"
        ok &= good
        print(f"splitleak eval on the same images: {sl_acc:.2f} %: {'ok' if good else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
