// Losses and softmax (math as in kernels/cpu/loss.cpp):
//   mse(a, b)  = mean((a - b)^2)                         d/da = 2 (a - b) / n
//   CE(z, y)   = mean_n [ log sum_j e^{z_nj} - z_{n,y_n} ]  d/dz = (softmax(z) - onehot(y)) / N
//   softmax    y = e^{z - max} / sum e^{z - max}         dz = y (dy - sum dy y)
//   TV         kernels/backend_api.inc (beta = 2: squared differences over their counts; else (dh^2+dw^2+eps)^(beta/2))
// Row-wise ops run one warp per row, in double like the CPU. Every scalar result comes from the deterministic
// two-pass reduction; backward kernels gather (each output element sums its own terms), so no atomics anywhere.
// A label outside [0, C) cannot be reported without a host sync: its row's loss becomes NaN instead.
#include <cmath>

#include "kernels/cuda/common.cuh"

namespace sl::cuda {

namespace {
constexpr int kRowWarps = 8;  // rows per block of the row-wise kernels

// Writes probs and the row's loss (lse - z[label]; NaN for a bad label).
// One warp's row: its maximum m and the sum of exp(z - m) (double), every lane holding both.
template <class T>
__device__ __forceinline__ void row_max_sumexp(const T* zr, int cols, int lane, double& m, double& se) {
  m = -INFINITY;
  for (int j = lane; j < cols; j += 32) m = fmax(m, double(zr[j]));
  m = warp_max(m);
  se = 0;
  for (int j = lane; j < cols; j += 32) se += exp(double(zr[j]) - m);
  se = warp_sum(se);
}

template <class T>
__global__ void ce_forward_kernel(const T* z, const int32_t* labels, T* probs, double* row_loss, int rows, int cols) {
  const int row = blockIdx.x * kRowWarps + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= rows) return;
  const T* zr = z + int64_t(row) * cols;
  double m, se;
  row_max_sumexp(zr, cols, lane, m, se);
  const double lse = m + log(se);
  for (int j = lane; j < cols; j += 32) probs[int64_t(row) * cols + j] = T(exp(double(zr[j]) - lse));
  if (lane == 0) {
    int y = labels[row];
    row_loss[row] = (y >= 0 && y < cols) ? lse - double(zr[y]) : NAN;
  }
}

template <class T>
__global__ void softmax_forward_kernel(const T* z, T* o, int64_t rows, int cols) {
  const int64_t row = int64_t(blockIdx.x) * kRowWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const T* zr = z + row * cols;
  double m, se;
  row_max_sumexp(zr, cols, lane, m, se);
  for (int j = lane; j < cols; j += 32) o[row * cols + j] = T(exp(double(zr[j]) - m) / se);
}

template <class T>
__global__ void softmax_backward_kernel(const T* y, const T* gy, T* gx, int64_t rows, int cols) {
  const int64_t row = int64_t(blockIdx.x) * kRowWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const T* p = y + row * cols;
  const T* g = gy + row * cols;
  double dot = 0;
  for (int j = lane; j < cols; j += 32) dot += double(p[j]) * double(g[j]);
  dot = warp_sum(dot);
  for (int j = lane; j < cols; j += 32) gx[row * cols + j] = T(double(p[j]) * (double(g[j]) - dot));
}

// Softmax along a dim that is not the last: x as [outer, C, inner], one thread per (outer, inner) line, reading
// the line's C elements `inner` apart (neighbouring threads read neighbouring elements).
template <class T>
__global__ void softmax_lines_forward_kernel(const T* z, T* o, int64_t lines, int c, int64_t inner) {
  for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < lines; l += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (l / inner) * c * inner + l % inner;
    double m = double(z[base]);
    for (int j = 1; j < c; ++j) m = fmax(m, double(z[base + j * inner]));
    double se = 0;
    for (int j = 0; j < c; ++j) se += exp(double(z[base + j * inner]) - m);
    for (int j = 0; j < c; ++j) o[base + j * inner] = T(exp(double(z[base + j * inner]) - m) / se);
  }
}
template <class T>
__global__ void softmax_lines_backward_kernel(const T* y, const T* gy, T* gx, int64_t lines, int c, int64_t inner) {
  for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < lines; l += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (l / inner) * c * inner + l % inner;
    double dot = 0;
    for (int j = 0; j < c; ++j) dot += double(y[base + j * inner]) * double(gy[base + j * inner]);
    for (int j = 0; j < c; ++j)
      gx[base + j * inner] = T(double(y[base + j * inner]) * (double(gy[base + j * inner]) - dot));
  }
}

// x as [outer, C, inner] for a softmax along `axis` (negative: from the end).
struct Lines {
  int64_t outer = 1, c = 1, inner = 1;
};
Lines lines_of(const Tensor& x, int axis, const char* op) {
  const int r = int(x.dim());
  SL_CHECK(axis >= -r && axis < r, ValueError, op, ": axis ", axis, " out of range for ", x.str());
  const int a = axis < 0 ? axis + r : axis;
  Lines l;
  for (int d = 0; d < r; ++d) (d < a ? l.outer : d == a ? l.c : l.inner) *= x.size(d);
  SL_CHECK(l.c < (int64_t(1) << 31), ValueError, op, ": ", l.c, " classes exceed 2^31");
  return l;
}

unsigned row_blocks(int64_t rows) { return unsigned((rows + kRowWarps - 1) / kRowWarps); }
}  // namespace

namespace {
template <class T>
void mse_forward_t(const Tensor& a, const Tensor& b, Tensor& out, double weight) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* o = out.data<T>();
  int64_t n = a.numel();
  double inv = n ? weight / double(n) : 0.0;
  reduce_sum(
      a, n, "mse_forward",
      [=] __device__(int64_t i) {
        double d = double(pa[i]) - double(pb[i]);
        return d * d;
      },
      [=] __device__(double s) { o[0] = T(s * inv); });
}

template <class T>
void mse_backward_t(const Tensor& a, const Tensor& b, const Tensor& gout, Tensor& ga, double weight) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  const T* go = gout.data<T>();
  T* g = ga.data<T>();
  const double k2 = 2.0 * weight / double(a.numel());
  for_each(a, a.numel(), "mse_backward", [=] __device__(int64_t i) { g[i] = T(k2 * double(go[0])) * (pa[i] - pb[i]); });
}

template <class T>
void cross_entropy_forward_t(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& probs) {
  const int rows = int(logits.size(0)), cols = int(logits.size(1));
  T* out = loss.data<T>();
  if (rows == 0) {
    SL_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(T), stream_of(logits)));
    return;
  }
  DeviceBuffer row_loss(logits.device(), size_t(rows) * sizeof(double));
  double* rl = row_loss.as<double>();
  ce_forward_kernel<T><<<row_blocks(rows), kRowWarps * 32, 0, stream_of(logits)>>>(
      logits.data<T>(), labels.data<int32_t>(), probs.data<T>(), rl, rows, cols);
  SL_CUDA_LAUNCH("cross_entropy_forward");
  double inv = 1.0 / double(rows);
  reduce_sum(
      logits, rows, "cross_entropy_forward", [=] __device__(int64_t i) { return rl[i]; },
      [=] __device__(double s) { out[0] = T(s * inv); });
}

template <class T>
void cross_entropy_backward_t(const Tensor& probs, const Tensor& labels, const Tensor& gout, Tensor& glogits) {
  const T* p = probs.data<T>();
  const int32_t* y = labels.data<int32_t>();
  const T* go = gout.data<T>();
  T* g = glogits.data<T>();
  const int64_t rows = probs.size(0), cols = probs.size(1);
  for_each(probs, rows * cols, "cross_entropy_backward", [=] __device__(int64_t i) {
    int64_t r = i / cols, j = i - r * cols;
    T k = T(double(go[0]) / double(rows));
    g[i] = k * (p[i] - (j == y[r] ? T(1) : T(0)));
  });
}

unsigned line_blocks(const Tensor& on, int64_t lines) {
  return unsigned(
      std::max<int64_t>(1, std::min<int64_t>((lines + 255) / 256, int64_t(cuda_rt::sm_count(on.device())) * 16)));
}

template <class T>
void softmax_forward_t(const Tensor& x, Tensor& y, int axis) {
  const Lines l = lines_of(x, axis, "softmax_forward");
  if (x.numel() == 0) return;
  if (l.inner == 1) {  // the last dim: one warp per row
    softmax_forward_kernel<T>
        <<<row_blocks(l.outer), kRowWarps * 32, 0, stream_of(x)>>>(x.data<T>(), y.data<T>(), l.outer, int(l.c));
  } else {
    softmax_lines_forward_kernel<T><<<line_blocks(x, l.outer * l.inner), 256, 0, stream_of(x)>>>(
        x.data<T>(), y.data<T>(), l.outer * l.inner, int(l.c), l.inner);
  }
  SL_CUDA_LAUNCH("softmax_forward");
}

template <class T>
void softmax_backward_t(const Tensor& y, const Tensor& gy, Tensor& gx, int axis) {
  const Lines l = lines_of(y, axis, "softmax_backward");
  if (y.numel() == 0) return;
  if (l.inner == 1) {
    softmax_backward_kernel<T><<<row_blocks(l.outer), kRowWarps * 32, 0, stream_of(y)>>>(
        y.data<T>(), gy.data<T>(), gx.data<T>(), l.outer, int(l.c));
  } else {
    softmax_lines_backward_kernel<T><<<line_blocks(y, l.outer * l.inner), 256, 0, stream_of(y)>>>(
        y.data<T>(), gy.data<T>(), gx.data<T>(), l.outer * l.inner, int(l.c), l.inner);
  }
  SL_CUDA_LAUNCH("softmax_backward");
}

template <class T>
void tv_forward_t(const Tensor& x, double beta, double eps, Tensor& out, double weight) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), hw = h * w;
  const T* px = x.data<T>();
  T* o = out.data<T>();
  const bool squared = beta == 2.0;
  const double inv_h = h > 1 ? 1.0 / double(c * (h - 1) * w) : 0.0, inv_w = w > 1 ? 1.0 / double(c * h * (w - 1)) : 0.0;
  const double inv_n = weight / double(n);
  check_int32(x.numel(), "tv_forward");
  // 32-bit divisions by multiplication: a 64-bit division per element would dominate the kernel
  const FastDiv d_hw(uint32_t(std::max<int64_t>(hw, 1))), d_w(uint32_t(std::max<int64_t>(w, 1)));
  reduce_sum(
      x, x.numel(), "tv_forward",
      [=] __device__(int64_t i) {
        uint32_t q, r, a, b;
        d_hw.divmod(uint32_t(i), q, r);
        d_w.divmod(r, a, b);
        double v = double(px[i]);
        double dh = a + 1 < h ? double(px[i + w]) - v : 0.0;
        double dw = b + 1 < w ? double(px[i + 1]) - v : 0.0;
        if (squared) return dh * dh * inv_h + dw * dw * inv_w;
        if (a + 1 < h && b + 1 < w) return pow(dh * dh + dw * dw + eps, beta / 2);
        return 0.0;
      },
      [=] __device__(double s) { o[0] = T(s * inv_n); });
}

template <class T>
void tv_backward_t(const Tensor& x, double beta, double eps, const Tensor& gout, Tensor& gx, double weight) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), hw = h * w;
  const T* px = x.data<T>();
  const T* go = gout.data<T>();
  T* pg = gx.data<T>();
  const bool squared = beta == 2.0;
  const double count_h = double(c * (h - 1) * w), count_w = double(c * h * (w - 1));
  check_int32(x.numel(), "tv_backward");
  const FastDiv d_hw(uint32_t(std::max<int64_t>(hw, 1))), d_w(uint32_t(std::max<int64_t>(w, 1)));
  // the factors without the incoming gradient, on the host: no double division per element
  const double per_n = weight / double(n);
  const double ch = count_h > 0 ? 2.0 * per_n / count_h : 0.0, cw = count_w > 0 ? 2.0 * per_n / count_w : 0.0;
  for_each(x, x.numel(), "tv_backward", [=] __device__(int64_t i) {
    const double gin = double(go[0]);
    uint32_t q, r, a, b;
    d_hw.divmod(uint32_t(i), q, r);
    d_w.divmod(r, a, b);
    auto X = [&](int64_t di, int64_t dj) { return double(px[i + di * w + dj]); };
    double g = 0;
    if (squared) {
      const double kh = gin * ch, kw = gin * cw;
      if (a >= 1) g += kh * (X(0, 0) - X(-1, 0));
      if (a + 1 < h) g -= kh * (X(1, 0) - X(0, 0));
      if (b >= 1) g += kw * (X(0, 0) - X(0, -1));
      if (b + 1 < w) g -= kw * (X(0, 1) - X(0, 0));
    } else {
      // cell (i, j) exists for i < h-1, j < w-1; it adds k dh to (i+1, j), k dw to (i, j+1), -k (dh+dw) to (i, j)
      const double g0 = gin * per_n;
      auto k_of = [&](double dh, double dw) { return g0 * beta * pow(dh * dh + dw * dw + eps, beta / 2 - 1); };
      if (a >= 1 && b + 1 < w) {  // cell (a-1, b)
        double dh = X(0, 0) - X(-1, 0), dw = X(-1, 1) - X(-1, 0);
        g += k_of(dh, dw) * dh;
      }
      if (b >= 1 && a + 1 < h) {  // cell (a, b-1)
        double dh = X(1, -1) - X(0, -1), dw = X(0, 0) - X(0, -1);
        g += k_of(dh, dw) * dw;
      }
      if (a + 1 < h && b + 1 < w) {  // cell (a, b)
        double dh = X(1, 0) - X(0, 0), dw = X(0, 1) - X(0, 0);
        g -= k_of(dh, dw) * (dh + dw);
      }
    }
    pg[i] = T(g);
  });
}
}  // namespace

void mse_forward(const Tensor& a, const Tensor& b, Tensor& out, double weight) {
  SL_CUDA_DISPATCH(a, "mse", mse_forward_t, a, b, out, weight);
}

void mse_backward(const Tensor& a, const Tensor& b, const Tensor& gout, Tensor& ga, double weight) {
  SL_CUDA_DISPATCH(a, "mse_backward", mse_backward_t, a, b, gout, ga, weight);
}

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& probs) {
  SL_CUDA_DISPATCH(logits, "cross_entropy", cross_entropy_forward_t, logits, labels, loss, probs);
}

void cross_entropy_backward(const Tensor& probs, const Tensor& labels, const Tensor& gout, Tensor& glogits) {
  SL_CUDA_DISPATCH(probs, "cross_entropy_backward", cross_entropy_backward_t, probs, labels, gout, glogits);
}

void softmax_forward(const Tensor& x, Tensor& y, int axis) {
  SL_CUDA_DISPATCH(x, "softmax", softmax_forward_t, x, y, axis);
}

void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, int axis) {
  SL_CUDA_DISPATCH(y, "softmax_backward", softmax_backward_t, y, gy, gx, axis);
}

void tv_forward(const Tensor& x, double beta, double eps, Tensor& out, double weight) {
  SL_CUDA_DISPATCH(x, "tv_loss", tv_forward_t, x, beta, eps, out, weight);
}

void tv_backward(const Tensor& x, double beta, double eps, const Tensor& gout, Tensor& gx, double weight) {
  SL_CUDA_DISPATCH(x, "tv_loss_backward", tv_backward_t, x, beta, eps, gout, gx, weight);
}

}  // namespace sl::cuda
