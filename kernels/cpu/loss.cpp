// Losses and softmax.
//   mse(a, b)  = mean((a - b)^2)                         d/da = 2 (a - b) / n
//   CE(z, y)   = mean_n [ log Σ_j e^{z_nj} - z_{n,y_n} ]  d/dz = (softmax(z) - onehot(y)) / N
//   softmax    y = e^{z - max} / Σ e^{z - max}           dz = y (dy - Σ dy y)   (along one axis)
//   TV         see kernels/backend_api.inc (β = 2: the reference's squared form; else (dh²+dw²+ε)^{β/2})
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace sl::cpu {

void mse_forward(const Tensor& a, const Tensor& b, Tensor& out, double weight) {
  dispatch_float(a, "mse", [&](auto t) {
    using T = decltype(t);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    int64_t n = a.numel();
    double s = 0;
#pragma omp parallel for if (n > kParallelGrain) reduction(+ : s) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double d = double(pa[i]) - double(pb[i]);
      s += d * d;
    }
    out.data<T>()[0] = T(n ? weight * s / double(n) : 0.0);
  });
}

void mse_backward(const Tensor& a, const Tensor& b, const Tensor& gout, Tensor& ga, double weight) {
  dispatch_float(a, "mse_backward", [&](auto t) {
    using T = decltype(t);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* g = ga.data<T>();
    int64_t n = a.numel();
    T k = T(2.0 * weight * double(gout.data<T>()[0]) / double(n));
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) g[i] = k * (pa[i] - pb[i]);
  });
}

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& probs) {
  dispatch_float(logits, "cross_entropy", [&](auto t) {
    using T = decltype(t);
    const T* z = logits.data<T>();
    const int32_t* y = labels.data<int32_t>();
    T* p = probs.data<T>();
    int64_t n = logits.size(0), c = logits.size(1);
    double total = 0;
    for (int64_t r = 0; r < n; ++r) {
      SL_CHECK(y[r] >= 0 && y[r] < c, ValueError, "cross_entropy: label ", y[r], " of row ", r, " is outside [0, ", c,
               ")");
      const T* zr = z + r * c;
      double m = zr[0];
      for (int64_t j = 1; j < c; ++j) m = std::max(m, double(zr[j]));
      double se = 0;
      for (int64_t j = 0; j < c; ++j) se += std::exp(double(zr[j]) - m);
      double lse = m + std::log(se);
      for (int64_t j = 0; j < c; ++j) p[r * c + j] = T(std::exp(double(zr[j]) - lse));
      total += lse - double(zr[y[r]]);
    }
    loss.data<T>()[0] = T(n ? total / double(n) : 0.0);
  });
}

void cross_entropy_backward(const Tensor& probs, const Tensor& labels, const Tensor& gout, Tensor& glogits) {
  dispatch_float(probs, "cross_entropy_backward", [&](auto t) {
    using T = decltype(t);
    const T* p = probs.data<T>();
    const int32_t* y = labels.data<int32_t>();
    T* g = glogits.data<T>();
    int64_t n = probs.size(0), c = probs.size(1);
    T k = T(double(gout.data<T>()[0]) / double(n));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < c; ++j) g[r * c + j] = k * (p[r * c + j] - (j == y[r] ? T(1) : T(0)));
  });
}

namespace {
// x as [outer, C, inner] for a softmax along `axis` (negative: from the end).
struct SoftmaxLines {
  int64_t outer = 1, c = 1, inner = 1;
};
SoftmaxLines softmax_lines(const Tensor& x, int axis, const char* op) {
  const int r = int(x.dim());
  SL_CHECK(axis >= -r && axis < r, ValueError, op, ": axis ", axis, " out of range for ", x.str());
  const int a = axis < 0 ? axis + r : axis;
  SoftmaxLines l;
  for (int d = 0; d < r; ++d) (d < a ? l.outer : d == a ? l.c : l.inner) *= x.size(d);
  return l;
}
}  // namespace

void softmax_forward(const Tensor& x, Tensor& y, int axis) {
  const SoftmaxLines l = softmax_lines(x, axis, "softmax");
  dispatch_float(x, "softmax", [&](auto t) {
    using T = decltype(t);
    const T* z = x.data<T>();
    T* o = y.data<T>();
    const int64_t c = l.c, in = l.inner;
#pragma omp parallel for if (x.numel() > kParallelGrain) schedule(static)
    for (int64_t line = 0; line < l.outer * in; ++line) {
      const int64_t base = (line / in) * c * in + line % in;  // element j of the line: base + j * in
      double m = z[base];
      for (int64_t j = 1; j < c; ++j) m = std::max(m, double(z[base + j * in]));
      double se = 0;
      for (int64_t j = 0; j < c; ++j) se += std::exp(double(z[base + j * in]) - m);
      for (int64_t j = 0; j < c; ++j) o[base + j * in] = T(std::exp(double(z[base + j * in]) - m) / se);
    }
  });
}

void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, int axis) {
  const SoftmaxLines l = softmax_lines(y, axis, "softmax_backward");
  dispatch_float(y, "softmax_backward", [&](auto t) {
    using T = decltype(t);
    const T* p = y.data<T>();
    const T* g = gy.data<T>();
    T* o = gx.data<T>();
    const int64_t c = l.c, in = l.inner;
#pragma omp parallel for if (y.numel() > kParallelGrain) schedule(static)
    for (int64_t line = 0; line < l.outer * in; ++line) {
      const int64_t base = (line / in) * c * in + line % in;
      double dot = 0;
      for (int64_t j = 0; j < c; ++j) dot += double(p[base + j * in]) * double(g[base + j * in]);
      for (int64_t j = 0; j < c; ++j) o[base + j * in] = T(double(p[base + j * in]) * (double(g[base + j * in]) - dot));
    }
  });
}

namespace {
// Per-plane TV sums (plane = one (n, c) image channel), added in plane order: deterministic.
template <class T>
double tv_sum(const T* x, int64_t planes, int64_t h, int64_t w, double beta, double eps, int64_t batch, int64_t ch) {
  std::vector<double> part(size_t(planes), 0.0);
  bool squared = beta == 2.0;
  double count_h = double(ch * (h - 1) * w), count_w = double(ch * h * (w - 1));
#pragma omp parallel for if (planes * h * w > kParallelGrain) schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const T* q = x + p * h * w;
    double s = 0;
    if (squared) {
      double sh = 0, sw = 0;
      for (int64_t i = 0; i + 1 < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          double d = double(q[(i + 1) * w + j]) - double(q[i * w + j]);
          sh += d * d;
        }
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j + 1 < w; ++j) {
          double d = double(q[i * w + j + 1]) - double(q[i * w + j]);
          sw += d * d;
        }
      s = (count_h > 0 ? sh / count_h : 0.0) + (count_w > 0 ? sw / count_w : 0.0);
    } else {
      for (int64_t i = 0; i + 1 < h; ++i)
        for (int64_t j = 0; j + 1 < w; ++j) {
          double dh = double(q[(i + 1) * w + j]) - double(q[i * w + j]);
          double dw = double(q[i * w + j + 1]) - double(q[i * w + j]);
          s += std::pow(dh * dh + dw * dw + eps, beta / 2);
        }
    }
    part[size_t(p)] = s;
  }
  double s = 0;
  for (double v : part) s += v;
  return s / double(batch);
}
}  // namespace

void tv_forward(const Tensor& x, double beta, double eps, Tensor& out, double weight) {
  dispatch_float(x, "tv_loss", [&](auto t) {
    using T = decltype(t);
    int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    out.data<T>()[0] = T(weight * tv_sum(x.data<T>(), n * c, h, w, beta, eps, n, c));
  });
}

void tv_backward(const Tensor& x, double beta, double eps, const Tensor& gout, Tensor& gx, double weight) {
  dispatch_float(x, "tv_loss_backward", [&](auto t) {
    using T = decltype(t);
    int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    const T* px = x.data<T>();
    T* pg = gx.data<T>();
    double go = weight * double(gout.data<T>()[0]) / double(n);
    double count_h = double(c * (h - 1) * w), count_w = double(c * h * (w - 1));
    bool squared = beta == 2.0;
#pragma omp parallel for if (n * c * h * w > kParallelGrain) schedule(static)
    for (int64_t p = 0; p < n * c; ++p) {
      const T* q = px + p * h * w;
      T* g = pg + p * h * w;
      for (int64_t i = 0; i < h * w; ++i) g[i] = T(0);
      if (squared) {
        double kh = count_h > 0 ? 2.0 * go / count_h : 0.0, kw = count_w > 0 ? 2.0 * go / count_w : 0.0;
        for (int64_t i = 0; i + 1 < h; ++i)
          for (int64_t j = 0; j < w; ++j) {
            double d = double(q[(i + 1) * w + j]) - double(q[i * w + j]);
            g[(i + 1) * w + j] += T(kh * d);
            g[i * w + j] -= T(kh * d);
          }
        for (int64_t i = 0; i < h; ++i)
          for (int64_t j = 0; j + 1 < w; ++j) {
            double d = double(q[i * w + j + 1]) - double(q[i * w + j]);
            g[i * w + j + 1] += T(kw * d);
            g[i * w + j] -= T(kw * d);
          }
      } else {
        for (int64_t i = 0; i + 1 < h; ++i)
          for (int64_t j = 0; j + 1 < w; ++j) {
            double dh = double(q[(i + 1) * w + j]) - double(q[i * w + j]);
            double dw = double(q[i * w + j + 1]) - double(q[i * w + j]);
            double k = go * beta * std::pow(dh * dh + dw * dw + eps, beta / 2 - 1);
            g[(i + 1) * w + j] += T(k * dh);
            g[i * w + j + 1] += T(k * dw);
            g[i * w + j] -= T(k * (dh + dw));
          }
      }
    }
  });
}

}  // namespace sl::cpu
