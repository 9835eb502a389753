// Small pieces the three attacks share: the valid pixel box in the normalised input space, and a guard
// that freezes a module's parameters while something else is optimised through it.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "nn/module.h"
#include "tensor/tensor.h"

namespace sl::inv {

// The normalised images that are real images: pixel p in [0, 1] of channel c becomes (p - mean[c]) / std[c],
// so channel c lives in [lo[c], hi[c]] = [-mean[c]/std[c], (1 - mean[c])/std[c]] (MNIST: [-1, 1]).
struct PixelRange {
  std::vector<float> lo, hi;  // one entry per channel
  static PixelRange of(const data::Normalization& norm);
  int channels() const { return int(lo.size()); }
};

// The box as two constant tensors of a batch's shape, on the batch's device (built once, reused at every
// step of an attack), and the projection into it, channel by channel:
//   clamp(x, lo, hi) = hi - relu(hi - (lo + relu(x - lo)))     (= min(max(x, lo), hi))
// made of device ops, so no host loop touches the pixels. No autograd graph is recorded.
class PixelBox {
 public:
  PixelBox(const PixelRange& range, const Shape& batch_shape, Device device);
  Tensor clamp(const Tensor& x) const;

 private:
  Tensor lo_, hi_;
};
// The mean of per-image scores (PSNR, SSIM); 0 for none.
inline double mean_score(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / double(v.size());
}

inline Tensor clamp_to_range(const Tensor& x, const PixelRange& range) {
  return PixelBox(range, x.shape(), x.device()).clamp(x);
}

// While alive, none of the module's parameters requires grad, so backward passes through the module
// compute only what flows to its input (the attacks optimise the input, or another module, not these
// weights). Restores each parameter's flag on destruction.
class FrozenParams {
 public:
  explicit FrozenParams(const Module& m);
  ~FrozenParams();
  FrozenParams(const FrozenParams&) = delete;
  FrozenParams& operator=(const FrozenParams&) = delete;

 private:
  std::vector<Tensor> params_;
  std::vector<bool> was_;
};

// Records graphs in its scope even inside a NoGradGuard: the attacks differentiate whatever the caller's mode.
class GradModeOn {
 public:
  GradModeOn();
  ~GradModeOn();
  GradModeOn(const GradModeOn&) = delete;
  GradModeOn& operator=(const GradModeOn&) = delete;

 private:
  bool prev_;
};

// How the two learned attacks train their network (the black-box decoder, the query-free shadow head) on the
// attacker's own data: Adam (AMSGrad, eps 1e-3 by default, as the reference trains its models), mini-batches
// drawn by a seeded shuffle, and a learning rate that is constant or decays along a cosine to 0.
struct FitOptions {
  int epochs = 2;
  int64_t batch = 32;
  int64_t limit = -1;  // use only the first `limit` attacker images (-1: all)
  double lr = 1e-3;
  double adam_eps = 1e-3;
  bool amsgrad = true;
  std::string schedule = "cosine";  // or "constant"
  uint64_t seed = 1;
};

// Called once with step 0 at the start, then every `every` steps and after the last:
// (steps done, total steps, mean loss since the last call).
struct FitProgress {
  int every = 50;
  std::function<void(int64_t step, int64_t total, double loss)> fn;
};

// The learning rate after `step` of `total` steps.
double fit_lr(const FitOptions& o, int64_t step, int64_t total);

// Trains `model`'s parameters to minimise loss(images, labels) over mini-batches of `data` (moved to
// `device`); returns the mean loss of the last epoch. ValueError for an empty data set or a loss that
// stops being finite.
using BatchLoss = std::function<Tensor(const Tensor& images, const Tensor& labels)>;
double fit(Module& model, const data::Dataset& data, Device device, const FitOptions& o, const BatchLoss& loss,
           const FitProgress& progress = {});

}  // namespace sl::inv
