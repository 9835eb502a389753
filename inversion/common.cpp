#include "inversion/common.h"

#include <cmath>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "datasets/loader.h"
#include "nn/optim.h"

namespace sl::inv {

PixelRange PixelRange::of(const data::Normalization& norm) {
  PixelRange r;
  for (int c = 0; c < norm.channels(); ++c) {
    r.lo.push_back((0.0f - norm.mean[size_t(c)]) / norm.std[size_t(c)]);
    r.hi.push_back((1.0f - norm.mean[size_t(c)]) / norm.std[size_t(c)]);
  }
  return r;
}

PixelBox::PixelBox(const PixelRange& range, const Shape& batch_shape, Device device) {
  SL_CHECK(batch_shape.rank() == 4 && batch_shape[1] == range.channels(), ShapeError, "pixel range: ", range.channels(),
           " channel(s) do not fit images of shape ", batch_shape.str());
  const int64_t plane = batch_shape[2] * batch_shape[3], C = batch_shape[1];
  std::vector<float> lo(size_t(batch_shape.numel())), hi(lo.size());
  for (size_t k = 0; k < lo.size(); ++k) {
    size_t c = size_t((int64_t(k) / plane) % C);
    lo[k] = range.lo[c];
    hi[k] = range.hi[c];
  }
  lo_ = Tensor::from_vector(lo, batch_shape).to(device);
  hi_ = Tensor::from_vector(hi, batch_shape).to(device);
}

Tensor PixelBox::clamp(const Tensor& x) const {
  NoGradGuard no_grad;
  Tensor lo = lo_.to(x.dtype()), hi = hi_.to(x.dtype());
  Tensor at_least_lo = lo + relu(x - lo);  // max(x, lo)
  return hi - relu(hi - at_least_lo);      // min(max(x, lo), hi): exactly lo or hi at the bounds
}

FrozenParams::FrozenParams(const Module& m) : params_(m.parameters()) {
  for (auto& p : params_) {
    was_.push_back(p.requires_grad());
    p.requires_grad_(false);
  }
}

FrozenParams::~FrozenParams() {
  for (size_t i = 0; i < params_.size(); ++i) params_[i].requires_grad_(was_[i]);
}

double fit_lr(const FitOptions& o, int64_t step, int64_t total) {
  if (o.schedule == "constant") return o.lr;
  if (o.schedule == "cosine")
    return o.lr * 0.5 * (1.0 + std::cos(M_PI * double(step) / double(std::max<int64_t>(total, 1))));
  throw ValueError("unknown learning-rate schedule '" + o.schedule + "' (constant, cosine)");
}

GradModeOn::GradModeOn() : prev_(grad_enabled()) { set_grad_enabled(true); }
GradModeOn::~GradModeOn() { set_grad_enabled(prev_); }

double fit(Module& model, const data::Dataset& data, Device device, const FitOptions& o, const BatchLoss& loss,
           const FitProgress& progress) {
  data::Dataset used = o.limit >= 0 && o.limit < data.size() ? data.slice(0, o.limit) : data;
  SL_CHECK(used.size() > 0, ValueError, "the attacker's data set is empty: an attack that learns from data needs ",
           "at least one image (check --attacker-data / --attacker-limit)");
  SL_CHECK(o.epochs >= 1 && o.batch >= 1 && o.lr > 0 && std::isfinite(o.lr), ValueError,
           "fit: needs epochs >= 1, batch >= 1 and a finite lr > 0");
  AdamArgs a;
  a.lr = o.lr;
  a.eps = o.adam_eps;
  a.amsgrad = o.amsgrad;
  GradModeOn grad_on;
  Adam opt(model.parameters(), a);
  data::LoaderOptions lo;
  lo.batch_size = o.batch;
  lo.seed = o.seed;
  data::Loader loader(used, lo);
  const int64_t per_epoch = loader.batches_per_epoch(), total = per_epoch * o.epochs;
  model.train();
  double window = 0, epoch_loss = 0;
  int64_t window_n = 0, step = 0;
  if (progress.fn) progress.fn(0, total, 0.0);  // the phase starts (lets a progress line start its clock)
  for (int e = 0; e < o.epochs; ++e) {
    loader.set_epoch(e);
    epoch_loss = 0;
    for (int64_t i = 0; i < per_epoch; ++i, ++step) {
      data::Batch b = loader.batch(i);
      opt.set_lr(fit_lr(o, step, total));
      opt.zero_grad();
      Tensor l = loss(b.images.to(device), b.labels.to(device));
      l.backward();
      opt.step();
      double v = l.item();
      SL_CHECK(std::isfinite(v), ValueError, "attack training diverged: the loss became ",
               std::isnan(v) ? "NaN" : "inf", " at step ", step + 1, " of ", total, " (learning rate ", o.lr,
               " too large, or a model with NaN/inf weights? try a smaller ", "--fit-lr)");
      epoch_loss += v;
      window += v;
      ++window_n;
      if (progress.fn && ((step + 1) % progress.every == 0 || step + 1 == total)) {
        progress.fn(step + 1, total, window / double(window_n));
        window = 0;
        window_n = 0;
      }
    }
  }
  model.eval();
  return epoch_loss / double(per_epoch);
}

}  // namespace sl::inv
