#include "inversion/metrics.h"

#include <cmath>
#include <limits>

namespace sl::inv {

namespace {

// [C, H, W] or [1, C, H, W] -> [C, H, W] as doubles on the CPU.
struct Planes {
  int64_t C = 0, H = 0, W = 0;
  std::vector<double> v;
  double at(int64_t c, int64_t i, int64_t j) const { return v[size_t((c * H + i) * W + j)]; }
};

Planes planes_of(const Tensor& t, const char* what) {
  SL_CHECK(t.defined(), ValueError, what, " is undefined");
  Shape s = t.shape();
  if (s.rank() == 4) {
    SL_CHECK(s[0] == 1, ShapeError, what, ": expected one image [C, H, W] or [1, C, H, W], got ", t.str());
    s = Shape{s[1], s[2], s[3]};
  }
  SL_CHECK(s.rank() == 3, ShapeError, what, ": expected an image [C, H, W], got ", t.str());
  return Planes{s[0], s[1], s[2], t.to_vector()};
}

void check_pair(const Planes& a, const Planes& b, const char* metric) {
  SL_CHECK(a.C == b.C && a.H == b.H && a.W == b.W, ShapeError, metric, ": the images differ in shape: [", a.C, ", ",
           a.H, ", ", a.W, "] vs [", b.C, ", ", b.H, ", ", b.W, "]");
}

// Mean SSIM of one channel plane, as skimage computes it (see metrics.h).
double ssim_plane(const Planes& a, const Planes& b, int64_t c) {
  constexpr int kWin = 7, kHalf = kWin / 2;
  constexpr double kNp = kWin * kWin, kCovNorm = kNp / (kNp - 1);
  constexpr double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03;  // (K · data_range)², data_range = 1
  double total = 0;
  int64_t count = 0;
  for (int64_t i = kHalf; i < a.H - kHalf; ++i) {
    for (int64_t j = kHalf; j < a.W - kHalf; ++j) {
      // Window means of x, y, x², y², xy (skimage's uniform_filter outputs at this pixel).
      double ux = 0, uy = 0, uxx = 0, uyy = 0, uxy = 0;
      for (int64_t di = -kHalf; di <= kHalf; ++di)
        for (int64_t dj = -kHalf; dj <= kHalf; ++dj) {
          double x = a.at(c, i + di, j + dj), y = b.at(c, i + di, j + dj);
          ux += x, uy += y, uxx += x * x, uyy += y * y, uxy += x * y;
        }
      ux /= kNp, uy /= kNp, uxx /= kNp, uyy /= kNp, uxy /= kNp;
      double vx = kCovNorm * (uxx - ux * ux), vy = kCovNorm * (uyy - uy * uy), vxy = kCovNorm * (uxy - ux * uy);
      double s = (2 * ux * uy + C1) * (2 * vxy + C2) / ((ux * ux + uy * uy + C1) * (vx + vy + C2));
      total += s;
      ++count;
    }
  }
  return total / double(count);
}

Tensor image_of(const Tensor& batch, int64_t i) { return batch.slice(i, i + 1); }

void check_batches(const Tensor& a, const Tensor& b, const char* metric) {
  SL_CHECK(a.defined() && b.defined() && a.dim() == 4 && b.dim() == 4, ShapeError, metric,
           ": expected two batches [N, C, H, W]");
  SL_CHECK(a.shape() == b.shape(), ShapeError, metric, ": the batches differ in shape: ", a.str(), " vs ", b.str());
}

}  // namespace

double psnr(const Tensor& original, const Tensor& reconstructed) {
  Planes a = planes_of(original, "psnr: original"), b = planes_of(reconstructed, "psnr: reconstruction");
  check_pair(a, b, "psnr");
  double se = 0;
  for (size_t k = 0; k < a.v.size(); ++k) se += (a.v[k] - b.v[k]) * (a.v[k] - b.v[k]);
  double mse = se / double(a.v.size());
  if (mse == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(1.0 / mse);
}

double ssim(const Tensor& original, const Tensor& reconstructed) {
  Planes a = planes_of(original, "ssim: original"), b = planes_of(reconstructed, "ssim: reconstruction");
  check_pair(a, b, "ssim");
  SL_CHECK(a.H >= 7 && a.W >= 7, ShapeError, "ssim: the 7x7 window needs images of at least 7x7, got ", a.H, "x", a.W);
  double sum = 0;
  for (int64_t c = 0; c < a.C; ++c) sum += ssim_plane(a, b, c);
  return sum / double(a.C);
}

namespace {
template <class Metric>
std::vector<double> per_image(const Tensor& originals, const Tensor& reconstructions, const char* name, Metric metric) {
  check_batches(originals, reconstructions, name);
  std::vector<double> out;
  for (int64_t i = 0; i < originals.size(0); ++i)
    out.push_back(metric(image_of(originals, i), image_of(reconstructions, i)));
  return out;
}
}  // namespace

std::vector<double> psnr_per_image(const Tensor& originals, const Tensor& reconstructions) {
  return per_image(originals, reconstructions, "psnr", [](const Tensor& a, const Tensor& b) { return psnr(a, b); });
}

std::vector<double> ssim_per_image(const Tensor& originals, const Tensor& reconstructions) {
  return per_image(originals, reconstructions, "ssim", [](const Tensor& a, const Tensor& b) { return ssim(a, b); });
}

double recovery_rate(const std::vector<int32_t>& original_labels, const std::vector<int32_t>& predicted_labels) {
  SL_CHECK(original_labels.size() == predicted_labels.size(), ValueError, "recovery_rate: ", original_labels.size(),
           " original labels but ", predicted_labels.size(), " predictions");
  if (original_labels.empty()) return 0;
  size_t same = 0;
  for (size_t i = 0; i < original_labels.size(); ++i) same += original_labels[i] == predicted_labels[i];
  return double(same) / double(original_labels.size());
}

double mean_squared_error(const Tensor& originals, const Tensor& reconstructions) {
  SL_CHECK(originals.defined() && reconstructions.defined() && originals.shape() == reconstructions.shape(), ShapeError,
           "mean_squared_error: shapes differ, ", originals.defined() ? originals.str() : "undefined", " vs ",
           reconstructions.defined() ? reconstructions.str() : "undefined");
  std::vector<double> a = originals.to_vector(), b = reconstructions.to_vector();
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return a.empty() ? 0 : s / double(a.size());
}

double leakage_index(double pixel_variance, double mse) {
  SL_CHECK(pixel_variance >= 0 && mse >= 0 && std::isfinite(pixel_variance) && std::isfinite(mse), ValueError,
           "leakage_index: needs a finite variance and MSE >= 0, got ", pixel_variance, " and ", mse);
  const double floor = 1.0 / (255.0 * 255.0 * 12.0);
  if (pixel_variance <= 0) return 0;
  return std::max(0.0, 0.5 * std::log2(pixel_variance / std::max(mse, floor)));
}

}  // namespace sl::inv
