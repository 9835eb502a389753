// How good is a reconstruction? PSNR and SSIM between an original and a reconstructed image (both as [0, 1]
// pixels), and the recovery rate (does the full model still see the original's class in the reconstruction?).
//
//   PSNR = 10 log10(1 / MSE)                         (data range 1; +inf when the images are identical)
//   SSIM = scikit-image's structural_similarity with its defaults (Wang et al. 2004):
//          7x7 uniform window, K1 = 0.01, K2 = 0.03, data_range = 1, sample covariance (x 49/48);
//          per pixel  S = (2 ux uy + C1)(2 sxy + C2) / ((ux² + uy² + C1)(sx² + sy² + C2)),  C = (K·1)²,
//          averaged over the pixels at least 3 from the border (skimage crops (7-1)/2 before the mean);
//          for RGB the mean over the channels of the per-channel SSIM (skimage's channel_axis).
//
// Metrics are evaluation code, not the hot path: they copy to the CPU and compute in double.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace sl::inv {

// One image each, [C, H, W] or [1, C, H, W], pixels in [0, 1] (any device / float dtype).
// Throws ShapeError when the shapes differ.
double psnr(const Tensor& original, const Tensor& reconstructed);
// SSIM needs H, W >= 7 (ShapeError otherwise).
double ssim(const Tensor& original, const Tensor& reconstructed);

// Batches [N, C, H, W]: one value per image.
std::vector<double> psnr_per_image(const Tensor& originals, const Tensor& reconstructions);
std::vector<double> ssim_per_image(const Tensor& originals, const Tensor& reconstructions);

// Per-pixel mean squared error over a batch of images ([0, 1] pixels; ShapeError when the shapes differ).
double mean_squared_error(const Tensor& originals, const Tensor& reconstructions);

// The leakage index (the "privacy leakage index" of the follow-up write-ups, made concrete): L = ½·log2(Var(x) / D)
// bits per pixel, D the per-pixel MSE of the best decoder on held-out images and Var(x) the pixel variance of the test
// images: the rate a Gaussian source needs for that distortion — an index to compare splits and defenses, not a bound
// on the true mutual information. D is floored at the quantisation noise of 8-bit pixels, (1/255)²/12 (below it an
// 8-bit image is recovered exactly), and L at 0 (a decoder no better than the mean image leaks nothing by this
// measure).
double leakage_index(double pixel_variance, double mse);

// Share of reconstructions whose predicted label equals the original's label (0 for empty input).
double recovery_rate(const std::vector<int32_t>& original_labels, const std::vector<int32_t>& predicted_labels);

}  // namespace sl::inv
