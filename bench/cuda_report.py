#!/usr/bin/env python3
"""Tables for bench/RESULTS.md from one run on a GPU: bench_cuda's JSON (Google Benchmark) and
bench/torch_reference.py's JSON, timed on the same card in the same call.

Usage: python3 bench/cuda_report.py BENCH_CUDA.json TORCH.json [--precision-note TEXT]
Ratios are throughputs relative to the baseline (baseline time / our time): > 1 means we are faster.
"""
import json
import sys

CONVS = ["conv11", "conv12", "conv21", "conv22", "conv31", "conv32"]
CONV_SHAPES = {"conv11": "3->64, 32x32", "conv12": "64->64, 32x32", "conv21": "64->128, 16x16",
               "conv22": "128->128, 16x16", "conv31": "128->128, 8x8", "conv32": "128->128, 8x8"}
FCS = [("cifar_fc1", "128 x 2048 -> 512"), ("cifar_fc2", "128 x 512 -> 10"), ("lenet_fc1", "32 x 256 -> 120"),
       ("lenet_fc2", "32 x 120 -> 84"), ("lenet_fc3", "32 x 84 -> 10")]
WHATS = ["fwd", "bwd_data", "bwd_weight"]


def load_bench(path):
    with open(path) as f:
        j = json.load(f)
    out = {}
    for b in j["benchmarks"]:
        if b.get("run_type") == "aggregate" or b.get("error_occurred"):
            continue
        parts = b["name"].split("/")
        key = "/".join(p for p in parts if not p.startswith(("min_time", "manual_time", "real_time")))
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b.get("time_unit", "ns")]
        out[key] = b["real_time"] * scale  # microseconds per call
    return j.get("context", {}), out


def fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


def ratio(base, ours):
    return None if base is None or ours is None or ours == 0 else base / ours


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ctx, b = load_bench(sys.argv[1])
    with open(sys.argv[2]) as f:
        t = json.load(f)
    lines = []
    p = lines.append
    p(f"Device: {t.get('device', '?')} (torch {t.get('torch', '?')}); bench_cuda date {ctx.get('date', '?')}; "
      f"torch_reference date {t.get('date', '?')}")
    p("")
    p("### Convolutions, CIFAR10CNN at batch 128 (3x3, pad 1), microseconds per call")
    p("")
    p("| layer | pass | ours FP32 | cuDNN FP32 | ours / cuDNN FP32 throughput | target >= 0.7 | cuDNN TF32 | PyTorch FP32 | PyTorch TF32 |")
    p("|---|---|---:|---:|---:|:---:|---:|---:|---:|")
    tc = t.get("cudnn_conv_b128", {})
    for c in CONVS:
        for w in WHATS:
            ours = b.get(f"conv/{c}/{w}/ours")
            f32 = b.get(f"conv/{c}/{w}/cudnn_fp32")
            t32 = b.get(f"conv/{c}/{w}/cudnn_tf32")
            r = ratio(f32, ours)
            pt = tc.get(f"{c}_{w}_fp32", {}).get("ms")
            ptt = tc.get(f"{c}_{w}_tf32", {}).get("ms")
            ok = "-" if r is None else ("yes" if r >= 0.7 else "**no**")
            p(f"| {c} ({CONV_SHAPES[c]}) | {w} | {fmt(ours)} | {fmt(f32)} | {fmt(r, 2)} | {ok} | {fmt(t32)} | "
              f"{fmt(pt * 1e3 if pt else None)} | {fmt(ptt * 1e3 if ptt else None)} |")
    for extra in ("ours_tf32", "ours_3xtf32"):
        if any(f"conv/{c}/{w}/{extra}" in b for c in CONVS for w in WHATS):
            p("")
            p(f"Selectable precision `{extra}` (microseconds; ratio against cuDNN with the same math: TF32 for tf32, FP32 for 3xtf32):")
            p("")
            p("| layer | pass | ours | cuDNN | ratio |")
            p("|---|---|---:|---:|---:|")
            for c in CONVS:
                for w in WHATS:
                    o = b.get(f"conv/{c}/{w}/{extra}")
                    base = b.get(f"conv/{c}/{w}/cudnn_tf32" if extra == "ours_tf32" else f"conv/{c}/{w}/cudnn_fp32")
                    p(f"| {c} | {w} | {fmt(o)} | {fmt(base)} | {fmt(ratio(base, o), 2)} |")
    p("")
    p("### FC GEMMs, FP32, microseconds per call")
    p("")
    p("| layer | pass | ours | cuBLAS FP32 | ours / cuBLAS throughput | target >= 0.7 | PyTorch FP32 |")
    p("|---|---|---:|---:|---:|:---:|---:|")
    tg = t.get("cublas_fc", {})
    for name, shape in FCS:
        for w in WHATS:
            ours = b.get(f"gemm/{name}/{w}/ours")
            cb = b.get(f"gemm/{name}/{w}/cublas_fp32")
            r = ratio(cb, ours)
            pt = tg.get(f"{name}_{w}", {}).get("ms")
            ok = "-" if r is None else ("yes" if r >= 0.7 else "**no**")
            p(f"| {name} ({shape}) | {w} | {fmt(ours, 2)} | {fmt(cb, 2)} | {fmt(r, 2)} | {ok} | {fmt(pt * 1e3 if pt else None, 2)} |")
    p("")
    p("### Training steps (forward, cross-entropy, backward, Adam/AMSGrad), microseconds per step")
    p("")
    p("| model | batch | ours eager | ours graph | PyTorch eager | PyTorch graph | ours graph / PyTorch graph (time) | ours best vs PyTorch eager (throughput) |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|")
    for arch, batch, tkey, sfx in (("lenet", 32, "lenet_step_b32", ""), ("lenet", 256, "lenet_step_b256", ""),
                                   ("cifar10cnn", 128, "cifar_step_b128", ""),
                                   ("cifar10cnn", 128, "cifar_step_b128", "_tf32"),
                                   ("cifar10cnn", 128, "cifar_step_b128", "_3xtf32")):
        oe = b.get(f"step/{arch}/b{batch}/eager{sfx}")
        og = b.get(f"step/{arch}/b{batch}/graph{sfx}")
        if oe is None and og is None:
            continue
        arch_label = arch + (f" (convs {sfx[1:]})" if sfx else "")
        pe = t.get(f"{tkey}_eager_ms")
        pg = t.get(f"{tkey}_graph_ms")
        pe = pe * 1e3 if pe else None
        pg = pg * 1e3 if pg else None
        best = min(x for x in (oe, og) if x is not None) if (oe or og) else None
        tr = None if og is None or pg is None else og / pg
        p(f"| {arch_label} | {batch} | {fmt(oe)} | {fmt(og)} | {fmt(pe)} | {fmt(pg)} | {fmt(tr, 2)} | {fmt(ratio(pe, best), 2)} |")
    p("")
    d = t.get("cifar_defaults")
    if d:
        p(f"PyTorch defaults in that run: {d}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
