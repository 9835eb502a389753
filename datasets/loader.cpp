#include "datasets/loader.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace sl::data {

namespace {

// splitmix64 finaliser: turns (seed, epoch) into well-spread generator seeds.
uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr uint64_t kAugmentStream = 0x61756720ull;  // separates augmentation draws from shuffling draws
constexpr uint64_t kDrawsPerSample = 8;

}  // namespace

AffineParams sample_affine(const Augment& aug, Generator& g, int64_t H, int64_t W) {
  AffineParams p;
  const double u_flip = g.uniform(), u_rot = g.uniform(), u_tx = g.uniform(), u_ty = g.uniform(), u_scale = g.uniform();
  p.flip = aug.hflip && u_flip < 0.5;
  p.angle_deg = aug.degrees * (2 * u_rot - 1);
  p.tx = aug.translate * double(W) * (2 * u_tx - 1);
  p.ty = aug.translate * double(H) * (2 * u_ty - 1);
  p.scale = aug.scale_min + (aug.scale_max - aug.scale_min) * u_scale;
  return p;
}

// Output pixel (x, y) reads the source at c + R(-angle) (q - c - t) / scale, q = (x, y), c the centre; with a
// flip the source column is then mirrored (the flip comes first in the forward transform).
void apply_affine(const float* src, float* dst, int64_t C, int64_t H, int64_t W, const AffineParams& p,
                  const float* fill) {
  const double a = p.angle_deg * 3.14159265358979323846 / 180.0;
  const double cs = std::cos(a) / p.scale, sn = std::sin(a) / p.scale;
  const double cx = (W - 1) * 0.5, cy = (H - 1) * 0.5;
  const int64_t plane = H * W;
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      const double dx = x - cx - p.tx, dy = y - cy - p.ty;
      double sx = cx + cs * dx + sn * dy;
      const double sy = cy - sn * dx + cs * dy;
      if (p.flip) sx = (W - 1) - sx;
      const double fx0 = std::floor(sx), fy0 = std::floor(sy);
      const int64_t x0 = int64_t(fx0), y0 = int64_t(fy0);
      const float wx = float(sx - fx0), wy = float(sy - fy0);
      const bool in00 = x0 >= 0 && x0 < W && y0 >= 0 && y0 < H;
      const bool in10 = x0 + 1 >= 0 && x0 + 1 < W && y0 >= 0 && y0 < H;
      const bool in01 = x0 >= 0 && x0 < W && y0 + 1 >= 0 && y0 + 1 < H;
      const bool in11 = x0 + 1 >= 0 && x0 + 1 < W && y0 + 1 >= 0 && y0 + 1 < H;
      const int64_t o = y * W + x, s00 = y0 * W + x0;
      for (int64_t c = 0; c < C; ++c) {
        const float* s = src + c * plane;
        const float f = fill[c];
        const float v00 = in00 ? s[s00] : f, v10 = in10 ? s[s00 + 1] : f;
        const float v01 = in01 ? s[s00 + W] : f, v11 = in11 ? s[s00 + W + 1] : f;
        const float top = v00 + (v10 - v00) * wx, bottom = v01 + (v11 - v01) * wx;
        dst[c * plane + o] = top + (bottom - top) * wy;
      }
    }
}

Loader::Loader(const Dataset& data, const LoaderOptions& opt) : data_(data), opt_(opt) {
  SL_CHECK(opt.batch_size > 0, ValueError, "Loader: batch_size must be positive, got ", opt.batch_size);
  SL_CHECK(data.images.defined() && data.images.dim() == 4 && data.images.dtype() == DType::f32 &&
               data.images.device().is_cpu(),
           ValueError, "Loader: dataset '", data.name, "' must hold float32 [N, C, H, W] CPU images, has ",
           data.images.defined() ? data.images.str() : "none");
  SL_CHECK(data.images.size(0) == data.size(), ValueError, "Loader: dataset '", data.name, "' has ",
           data.images.size(0), " images but ", data.size(), " labels");
  SL_CHECK(opt.augment.scale_min > 0 && opt.augment.scale_max >= opt.augment.scale_min, ValueError,
           "Loader: augmentation scale range [", opt.augment.scale_min, ", ", opt.augment.scale_max, "] is invalid");
  data_.images = data_.images.contiguous();
  const int64_t C = data_.channels();
  fill_.assign(size_t(C), 0.0f);
  if (data_.norm.channels() == C)
    for (int64_t c = 0; c < C; ++c) fill_[c] = -data_.norm.mean[c] / data_.norm.std[c];
  set_epoch(0);
}

int64_t Loader::batches_per_epoch() const {
  const int64_t n = data_.size(), b = opt_.batch_size;
  return opt_.drop_last ? n / b : (n + b - 1) / b;
}

void Loader::set_epoch(int64_t e) {
  epoch_ = e;
  cursor_ = 0;
  order_.resize(size_t(data_.size()));
  std::iota(order_.begin(), order_.end(), int64_t(0));
  if (!opt_.shuffle) return;
  Generator g(mix(opt_.seed, uint64_t(e)));
  for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[g.below(i)]);
}

Batch Loader::batch(int64_t i) const {
  SL_CHECK(i >= 0 && i < batches_per_epoch(), ValueError, "Loader: batch ", i, " outside 0..", batches_per_epoch() - 1);
  const int64_t begin = i * opt_.batch_size;
  const int64_t end = std::min(begin + opt_.batch_size, data_.size());
  const int64_t B = end - begin, C = data_.channels(), H = data_.height(), W = data_.width();
  const int64_t per = C * H * W;
  Batch out;
  out.indices.assign(order_.begin() + begin, order_.begin() + end);
  out.images = Tensor::empty(Shape{B, C, H, W}, DType::f32);
  out.labels = Tensor::empty(Shape{B}, DType::i32);
  const float* src = data_.images.data<float>();
  float* dst = out.images.data<float>();
  int32_t* lab = out.labels.data<int32_t>();
  const bool aug = opt_.augment.active();
  const uint64_t aug_seed = mix(opt_.seed, kAugmentStream);
  for (int64_t k = 0; k < B; ++k) {
    const int64_t idx = out.indices[size_t(k)];
    lab[k] = data_.labels[size_t(idx)];
    if (!aug) {
      std::memcpy(dst + k * per, src + idx * per, size_t(per) * sizeof(float));
      continue;
    }
    Generator g(aug_seed);
    g.take((uint64_t(epoch_) * uint64_t(data_.size()) + uint64_t(idx)) * kDrawsPerSample);
    const AffineParams p = sample_affine(opt_.augment, g, H, W);
    apply_affine(src + idx * per, dst + k * per, C, H, W, p, fill_.data());
  }
  return out;
}

bool Loader::next(Batch& out) {
  if (cursor_ >= batches_per_epoch()) {
    set_epoch(epoch_ + 1);
    return false;
  }
  out = batch(cursor_++);
  return true;
}

}  // namespace sl::data
