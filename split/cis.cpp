// CIS DP noise (split/cis.h): per-channel L1 clipping, rank- or uniformly-allocated budgets, the Laplace mechanism.
#include "split/cis.h"

#include <algorithm>
#include <cmath>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "kernels/dispatch.h"
#include "split/kinds.h"

namespace sl {

int numerical_rank(std::vector<double> m, int64_t rows, int64_t cols) {
  SL_CHECK(rows >= 0 && cols >= 0 && int64_t(m.size()) == rows * cols, ShapeError, "numerical_rank: ", m.size(),
           " values for a ", rows, "x", cols, " matrix");
  double largest = 0;
  for (double v : m) largest = std::max(largest, std::abs(v));
  if (largest == 0) return 0;
  const double tol = double(std::max(rows, cols)) * std::ldexp(1.0, -23) * largest;
  int rank = 0;
  const int64_t steps = std::min(rows, cols);
  for (int64_t k = 0; k < steps; ++k) {
    // Full pivoting: the largest remaining entry.
    int64_t pr = k, pc = k;
    double best = 0;
    for (int64_t r = k; r < rows; ++r)
      for (int64_t c = k; c < cols; ++c)
        if (std::abs(m[size_t(r * cols + c)]) > best) {
          best = std::abs(m[size_t(r * cols + c)]);
          pr = r;
          pc = c;
        }
    if (best <= tol) break;
    ++rank;
    for (int64_t c = 0; c < cols; ++c) std::swap(m[size_t(k * cols + c)], m[size_t(pr * cols + c)]);
    for (int64_t r = 0; r < rows; ++r) std::swap(m[size_t(r * cols + k)], m[size_t(r * cols + pc)]);
    const double pivot = m[size_t(k * cols + k)];
    for (int64_t r = k + 1; r < rows; ++r) {
      const double f = m[size_t(r * cols + k)] / pivot;
      if (f == 0) continue;
      for (int64_t c = k; c < cols; ++c) m[size_t(r * cols + c)] -= f * m[size_t(k * cols + c)];
    }
  }
  return rank;
}

namespace {

// [N, C, H, W] -> (N, C, H, W); [N, F] -> (N, F, 1, 1). ShapeError for other ranks.
struct MapShape {
  int64_t n = 0, channels = 0, rows = 1, cols = 1;
  int64_t plane() const { return rows * cols; }
};
MapShape map_shape(const Tensor& x, const char* who) {
  SL_CHECK(x.defined() && (x.dim() == 2 || x.dim() == 4), ShapeError, who,
           ": needs features [N, C, H, W] or [N, F], got ", x.defined() ? x.str() : "an undefined tensor");
  MapShape m;
  m.n = x.size(0);
  m.channels = x.size(1);
  if (x.dim() == 4) {
    m.rows = x.size(2);
    m.cols = x.size(3);
  }
  return m;
}

}  // namespace

std::vector<double> channel_ranks(const Tensor& features) {
  MapShape s = map_shape(features, "channel_ranks");
  SL_CHECK(s.n >= 1, ShapeError, "channel_ranks: needs at least one sample, got ", features.str());
  std::vector<double> v = features.to(Device::cpu()).contiguous().to_vector();
  std::vector<double> sum(size_t(s.channels), 0.0);
  for (int64_t i = 0; i < s.n; ++i)
    for (int64_t c = 0; c < s.channels; ++c) {
      auto first = v.begin() + (i * s.channels + c) * s.plane();
      sum[size_t(c)] += numerical_rank(std::vector<double>(first, first + s.plane()), s.rows, s.cols);
    }
  for (double& r : sum) r /= double(s.n);
  return sum;
}

DefenseCalibration calibrate_channels(const SplitPipeline& pipeline, const Tensor& images) {
  SL_CHECK(images.defined() && images.dim() >= 1 && images.size(0) >= 1, ValueError,
           "CIS calibration: needs at least one image of the edge's own data");
  NoGradGuard no_grad;
  DefenseCalibration cal;
  cal.images = images.size(0);
  const int64_t batch = 256;
  std::vector<double> sum;
  for (int64_t b = 0; b < images.size(0); b += batch) {
    const int64_t e = std::min(images.size(0), b + batch);
    Tensor v = pipeline.edge_head().forward(images.slice(b, e));
    std::vector<double> r = channel_ranks(v);
    if (sum.empty()) sum.assign(r.size(), 0.0);
    for (size_t c = 0; c < r.size(); ++c) sum[c] += r[c] * double(e - b);
  }
  for (double& r : sum) r /= double(images.size(0));
  cal.channel_rank = sum;
  return cal;
}

std::vector<double> cis_budgets(double eps, const std::vector<double>& ranks, bool by_rank) {
  SL_CHECK(std::isfinite(eps) && eps > 0, ValueError, "CIS: the budget eps must be > 0, got ", eps);
  SL_CHECK(!ranks.empty(), ValueError, "CIS: no channels to share the budget");
  std::vector<double> out(ranks.size(), eps / double(ranks.size()));
  if (!by_rank) return out;
  double total = 0;
  for (double r : ranks) {
    SL_CHECK(std::isfinite(r) && r >= 0, ValueError, "CIS: a channel rank must be finite and >= 0, got ", r);
    total += std::max(r, 1.0);
  }
  for (size_t c = 0; c < ranks.size(); ++c) out[c] = eps * std::max(ranks[c], 1.0) / total;
  return out;
}

namespace {

class CisDefense : public Defense {
 public:
  CisDefense(const DefenseSpec& s, uint64_t key, const DefenseCalibration* cal)
      : Defense(s, key), clip_(s.number("clip", 1.0)), by_rank_(s.option("alloc", "rank") == "rank") {
    if (by_rank_) ranks_ = cal->channel_rank;
  }

 protected:
  Tensor apply_block(const Tensor& x, uint64_t first_query) const override {
    MapShape s = map_shape(x, "defense cis");
    const std::vector<double> budgets = budgets_for(s.channels);
    // The noise scale 2C / ε_c of each channel, applied to a unit Laplace draw per element (no gradient: the
    // draw is a constant); the clip is channel_l1_clip, differentiable in x with its factor.
    std::vector<double> b(budgets.size());
    for (size_t c = 0; c < b.size(); ++c) b[c] = 2.0 * clip_ / budgets[c];
    Tensor unit = Tensor::empty(x.shape(), x.dtype(), x.device());
    kern::fill_laplace(unit, key(), counter(first_query, x.numel() / x.size(0)), 0.0, 1.0);
    Tensor noise;
    {
      NoGradGuard no_grad;
      Tensor scale_t = Tensor::from_vector(b, Shape{s.channels}, x.dtype()).to(x.device());
      noise = channel_affine(unit, scale_t, Tensor::zeros(Shape{s.channels}, x.dtype(), x.device()));
    }
    return add(channel_l1_clip(x, clip_), noise);
  }

 public:
  // The budget ε_c of each of `channels` channels (ShapeError when a rank calibration has another count).
  std::vector<double> budgets_for(int64_t channels) const {
    if (!by_rank_) return cis_budgets(level(), std::vector<double>(size_t(channels), 1.0), false);
    SL_CHECK(int64_t(ranks_.size()) == channels, ShapeError, "defense cis: calibrated for ", ranks_.size(),
             " channels, the features have ", channels);
    return cis_budgets(level(), ranks_, true);
  }
  double clip() const { return clip_; }

 private:
  double clip_;
  bool by_rank_;
  std::vector<double> ranks_;
};

}  // namespace

CisModel cis_model(const Defense& d, int64_t channels) {
  const auto* c = dynamic_cast<const CisDefense*>(&d);
  SL_CHECK(c, ValueError, "cis_model: ", d.spec().str(), " is not a CIS defense");
  CisModel m;
  m.clip = c->clip();
  for (double e : c->budgets_for(channels)) m.noise_scale.push_back(2.0 * m.clip / e);
  return m;
}

DefenseKind kinds::cis() {
  DefenseKind k;
  k.name = "cis";
  k.level_name = "eps";
  k.level_help = "the total privacy budget ε > 0, shared across the channels";
  k.options = {"alloc", "clip"};
  k.validate = [](const DefenseSpec& s) {
    if (s.level)
      SL_CHECK(std::isfinite(*s.level) && *s.level > 0, ValueError, "defense cis: eps must be > 0, got ", *s.level);
    const std::string alloc = s.option("alloc", "rank");
    SL_CHECK(alloc == "rank" || alloc == "uniform", ValueError, "defense cis: alloc must be rank or uniform, got '",
             alloc, "'");
    const double clip = s.number("clip", 1.0);
    SL_CHECK(clip > 0, ValueError, "defense cis: clip (the L1 bound C of a channel map) must be > 0, got ", clip);
    SL_CHECK(s.place == Place::intermediate, ValueError,
             "defense cis: sits on the intermediate feature map only (place=intermediate), not on the ",
             place_name(s.place));
  };
  k.make = [](const DefenseSpec& s, const DefenseSetup& setup) -> std::unique_ptr<Defense> {
    return std::make_unique<CisDefense>(s, setup.key, setup.calibration);
  };
  k.needs_calibration = [](const DefenseSpec& s) { return s.option("alloc", "rank") == "rank"; };
  return k;
}

}  // namespace sl
