#!/usr/bin/env python3
"""Writes tests/data/ssim_vectors.json: image pairs with the SSIM and PSNR that scikit-image computes for them.

tests/test_inversion.cpp ("SSIM matches scikit-image on stored vectors") checks inversion/metrics.cpp against
these values to 1e-4. Needs numpy and scikit-image:

    pip install numpy scikit-image
    python3 tests/data/gen_ssim_vectors.py            # writes next to this script

SSIM settings: skimage.metrics.structural_similarity defaults (7x7 uniform window, K1 0.01, K2 0.03, sample
covariance) with data_range=1.0; RGB pairs with channel_axis=-1 (the mean over channels).
PSNR: skimage.metrics.peak_signal_noise_ratio with data_range=1.0.

File format:
  {"generator": ..., "numpy": version, "skimage": version, "settings": ...,
   "cases": [{"name": str, "shape": [H, W] or [H, W, C], "a": [floats], "b": [floats],
              "ssim": float, "psnr": float or null}]}
  a and b are the images in C order of `shape` (channels last, as skimage sees them), values in [0, 1]
  with 6 decimals.
"""
import json
import os

import numpy as np
import skimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def ssim_of(a, b):
    if a.ndim == 3:
        try:
            return structural_similarity(a, b, data_range=1.0, channel_axis=-1)
        except TypeError:  # scikit-image < 0.19
            return structural_similarity(a, b, data_range=1.0, multichannel=True)
    return structural_similarity(a, b, data_range=1.0)


def digit_like(rng, h, w):
    """A dark image with a bright smooth stroke, like an MNIST digit."""
    y, x = np.mgrid[0:h, 0:w]
    cy, cx, r = h / 2 + rng.uniform(-2, 2), w / 2 + rng.uniform(-2, 2), min(h, w) / 3.5
    ring = np.exp(-((np.hypot(y - cy, x - cx) - r) ** 2) / 3.0)
    return np.clip(ring, 0.0, 1.0)


def main():
    rng = np.random.default_rng(20240601)
    cases = []

    def add(name, a, b):
        # Rounded to 6 decimals first (a smaller file); the metrics are computed on the rounded values.
        a = np.round(np.asarray(a, dtype=np.float64), 6)
        b = np.round(np.asarray(b, dtype=np.float64), 6)
        psnr = None if np.array_equal(a, b) else float(peak_signal_noise_ratio(a, b, data_range=1.0))
        cases.append({"name": name, "shape": list(a.shape), "a": a.ravel().tolist(), "b": b.ravel().tolist(),
                      "ssim": float(ssim_of(a, b)), "psnr": psnr})

    a = rng.uniform(size=(28, 28))
    add("grey 28x28 uniform noise pair", a, rng.uniform(size=(28, 28)))
    add("grey 28x28 identical", a, a.copy())
    d = digit_like(rng, 28, 28)
    add("grey 28x28 digit vs noisy digit", d, np.clip(d + rng.normal(0, 0.1, d.shape), 0, 1))
    add("grey 28x28 digit vs blurred grey", d, 0.5 * d + 0.25)
    add("grey 28x28 digit vs constant 0.5", d, np.full_like(d, 0.5))
    add("grey 28x28 black vs digit", np.zeros_like(d), d)
    add("grey 7x7 smallest", rng.uniform(size=(7, 7)), rng.uniform(size=(7, 7)))
    add("grey 9x13 non-square", rng.uniform(size=(9, 13)), rng.uniform(size=(9, 13)))
    b = rng.uniform(size=(16, 16))
    add("grey 16x16 vs 1 - itself", b, 1.0 - b)
    add("grey 16x16 binary pair", (rng.uniform(size=(16, 16)) > 0.5) * 1.0, (rng.uniform(size=(16, 16)) > 0.5) * 1.0)
    c = rng.uniform(size=(32, 32, 3))
    add("rgb 32x32 vs noisy", c, np.clip(c + rng.normal(0, 0.05, c.shape), 0, 1))
    add("rgb 32x32 uniform noise pair", c, rng.uniform(size=(32, 32, 3)))
    e = np.stack([digit_like(rng, 32, 32), np.full((32, 32), 0.3), rng.uniform(size=(32, 32))], axis=-1)
    add("rgb 32x32 mixed channels", e, np.clip(e * 0.8 + 0.1, 0, 1))

    out = {
        "generator": "tests/data/gen_ssim_vectors.py",
        "numpy": np.__version__,
        "skimage": skimage.__version__,
        "settings": "structural_similarity(a, b, data_range=1.0[, channel_axis=-1]) defaults; "
                    "peak_signal_noise_ratio(a, b, data_range=1.0)",
        "cases": cases,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ssim_vectors.json")
    with open(path, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
    main()
