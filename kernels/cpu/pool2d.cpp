// Pooling with the general geometry of kernels/dispatch.h's PoolArgs on the CPU (ONNX MaxPool / AveragePool /
// GlobalAveragePool; pool.cpp keeps the tuned unpadded square max pool of the models). For output (oh, ow) the window's
// taps are (ih, iw) = (oh sh - pt + i dh, ow sw - pl + j dw), i < kh, j < kw; taps outside the input take no part:
//   max  y = max over the taps inside (the first in row-major order on ties, a NaN wins), idx = ih W + iw of it
//        gx[idx[o]] += gy[o]
//   avg  y = sum over the taps inside / d,  d = the number of taps inside the input, or with count_include_pad the
//        number inside the padded input [-pt, H + pb) x [-pl, W + pr)
//        gx[tap] += gy[o] / d for every tap inside
// A window with no tap inside the input (a dilated window straddling a tiny input) gives max -inf (index -1, no
// gradient) and average 0. Planes (n, c) are independent and spread over the OpenMP threads; each plane's backward
// scatters in output order.
#include <omp.h>

#include <algorithm>
#include <limits>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace sl::cpu {

namespace {

void check_plane_tensor(const Tensor& t, const char* op, const char* name) {
  SL_CHECK(t.defined(), ValueError, op, ": ", name, " is undefined");
  SL_CHECK(t.device().is_cpu(), DeviceError, op, ": ", name, " ", t.str(), " is not on the CPU");
  SL_CHECK(t.dim() == 4, ShapeError, op, ": ", name, " must be 4-d, got ", t.str());
  SL_CHECK(t.is_contiguous(), ValueError, op, ": ", name, " must be contiguous");
}

// Checks the geometry against x [N, C, H, W] and y [N, C, OH, OW].
void check_geometry(const Tensor& x, const PoolArgs& p, const Tensor& y, const char* op) {
  SL_CHECK(p.kh >= 1 && p.kw >= 1 && p.sh >= 1 && p.sw >= 1 && p.dh >= 1 && p.dw >= 1 && p.pt >= 0 && p.pl >= 0 &&
               p.pb >= 0 && p.pr >= 0,
           ValueError, op, ": window, strides and dilations must be >= 1 and paddings >= 0");
  const int64_t span_h = int64_t(p.kh - 1) * p.dh + 1, span_w = int64_t(p.kw - 1) * p.dw + 1;
  SL_CHECK(p.pt < span_h && p.pb < span_h && p.pl < span_w && p.pr < span_w, ValueError, op,
           ": every padding must be smaller than the window's span (", span_h, "x", span_w, ")");
  SL_CHECK(y.size(0) == x.size(0) && y.size(1) == x.size(1) &&
               y.size(2) == pool_out_size(x.size(2), p.kh, p.sh, p.pt, p.pb, p.dh, p.ceil_mode) &&
               y.size(3) == pool_out_size(x.size(3), p.kw, p.sw, p.pl, p.pr, p.dw, p.ceil_mode) && y.size(2) >= 1 &&
               y.size(3) >= 1,
           ShapeError, op, ": output ", y.str(), " does not match input ", x.str(), " with window ", p.kh, "x", p.kw,
           ", strides ", p.sh, "/", p.sw, ", padding ", p.pt, "/", p.pl, "/", p.pb, "/", p.pr);
}

// Taps i < k of a window starting at `start` (stride-free: start = o s - pad) inside [lo, hi).
inline int64_t taps_inside(int64_t start, int k, int d, int64_t lo, int64_t hi) {
  int64_t n = 0;
  for (int i = 0; i < k; ++i) n += start + int64_t(i) * d >= lo && start + int64_t(i) * d < hi;
  return n;
}

template <class T>
inline bool takes(T v, T best) {
  return v > best || (v != v && best == best);
}

template <class T>
void forward_plane(const T* x, int64_t H, int64_t W, const PoolArgs& p, int64_t OH, int64_t OW, T* y, int32_t* idx) {
  for (int64_t oh = 0; oh < OH; ++oh)
    for (int64_t ow = 0; ow < OW; ++ow) {
      const int64_t hs = oh * p.sh - p.pt, ws = ow * p.sw - p.pl;
      if (p.mode == PoolMode::max) {
        T best = T(0);
        int64_t bi = -1;
        for (int i = 0; i < p.kh; ++i) {
          const int64_t ih = hs + int64_t(i) * p.dh;
          if (ih < 0 || ih >= H) continue;
          for (int j = 0; j < p.kw; ++j) {
            const int64_t iw = ws + int64_t(j) * p.dw;
            if (iw < 0 || iw >= W) continue;
            const T v = x[ih * W + iw];
            if (bi < 0 || takes(v, best)) best = v, bi = ih * W + iw;
          }
        }
        y[oh * OW + ow] = bi < 0 ? -std::numeric_limits<T>::infinity() : best;  // no tap inside: -inf, index -1
        idx[oh * OW + ow] = int32_t(bi);
      } else {
        T s = T(0);
        for (int i = 0; i < p.kh; ++i) {
          const int64_t ih = hs + int64_t(i) * p.dh;
          if (ih < 0 || ih >= H) continue;
          for (int j = 0; j < p.kw; ++j) {
            const int64_t iw = ws + int64_t(j) * p.dw;
            if (iw >= 0 && iw < W) s += x[ih * W + iw];
          }
        }
        const int64_t d = p.count_include_pad ? taps_inside(hs, p.kh, p.dh, -p.pt, H + p.pb) *
                                                    taps_inside(ws, p.kw, p.dw, -p.pl, W + p.pr)
                                              : taps_inside(hs, p.kh, p.dh, 0, H) * taps_inside(ws, p.kw, p.dw, 0, W);
        y[oh * OW + ow] = d > 0 ? s / T(d) : T(0);
      }
    }
}

// Returns false when an index lies outside the plane (a corrupt idx).
template <class T>
bool backward_plane(const T* gy, const int32_t* idx, int64_t H, int64_t W, const PoolArgs& p, int64_t OH, int64_t OW,
                    T* gx) {
  std::fill(gx, gx + H * W, T(0));
  bool ok = true;
  for (int64_t oh = 0; oh < OH; ++oh)
    for (int64_t ow = 0; ow < OW; ++ow) {
      const T g = gy[oh * OW + ow];
      if (p.mode == PoolMode::max) {
        const int32_t i = idx[oh * OW + ow];
        if (i == -1) continue;  // a window without input taps
        if (i < 0 || i >= H * W) {
          ok = false;
          continue;
        }
        gx[i] += g;
        continue;
      }
      const int64_t hs = oh * p.sh - p.pt, ws = ow * p.sw - p.pl;
      const int64_t d = p.count_include_pad ? taps_inside(hs, p.kh, p.dh, -p.pt, H + p.pb) *
                                                  taps_inside(ws, p.kw, p.dw, -p.pl, W + p.pr)
                                            : taps_inside(hs, p.kh, p.dh, 0, H) * taps_inside(ws, p.kw, p.dw, 0, W);
      const T v = d > 0 ? g / T(d) : T(0);
      for (int i = 0; i < p.kh; ++i) {
        const int64_t ih = hs + int64_t(i) * p.dh;
        if (ih < 0 || ih >= H) continue;
        for (int j = 0; j < p.kw; ++j) {
          const int64_t iw = ws + int64_t(j) * p.dw;
          if (iw >= 0 && iw < W) gx[ih * W + iw] += v;
        }
      }
    }
  return ok;
}

}  // namespace

void pool2d_forward(const Tensor& x, const PoolArgs& p, Tensor& y, Tensor& idx) {
  const char* op = p.mode == PoolMode::max ? "max_pool2d" : "avg_pool2d";
  check_plane_tensor(x, op, "input");
  check_plane_tensor(y, op, "output");
  check_geometry(x, p, y, op);
  SL_CHECK(x.dtype() == y.dtype(), ValueError, op, ": dtypes differ (", x.str(), ", ", y.str(), ")");
  if (p.mode == PoolMode::max) {
    check_plane_tensor(idx, op, "indices");
    SL_CHECK(idx.dtype() == DType::i32 && idx.shape() == y.shape(), ValueError, op, ": indices ", idx.str(),
             " must be int32 of the output's shape");
    SL_CHECK(x.size(2) * x.size(3) < (int64_t(1) << 31), ValueError, op, ": plane of ", x.str(),
             " too large for int32 indices");
  }
  const int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3), OH = y.size(2), OW = y.size(3);
  dispatch_float(x, op, [&](auto t) {
    using T = decltype(t);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    int32_t* pi = p.mode == PoolMode::max ? idx.data<int32_t>() : nullptr;
#pragma omp parallel for schedule(static) if (planes * OH * OW * p.kh * p.kw > kParallelGrain && !omp_in_parallel())
    for (int64_t pl = 0; pl < planes; ++pl)
      forward_plane(px + pl * H * W, H, W, p, OH, OW, py + pl * OH * OW, pi ? pi + pl * OH * OW : nullptr);
  });
}

void pool2d_backward(const Tensor& gy, const Tensor& idx, const PoolArgs& p, Tensor& gx) {
  const char* op = p.mode == PoolMode::max ? "max_pool2d backward" : "avg_pool2d backward";
  check_plane_tensor(gy, op, "grad_output");
  check_plane_tensor(gx, op, "grad_input");
  check_geometry(gx, p, gy, op);
  SL_CHECK(gx.dtype() == gy.dtype(), ValueError, op, ": dtypes differ (", gx.str(), ", ", gy.str(), ")");
  if (p.mode == PoolMode::max) {
    check_plane_tensor(idx, op, "indices");
    SL_CHECK(idx.dtype() == DType::i32 && idx.shape() == gy.shape(), ValueError, op, ": indices ", idx.str(),
             " must be int32 of grad_output's shape");
  }
  const int64_t planes = gx.size(0) * gx.size(1), H = gx.size(2), W = gx.size(3), OH = gy.size(2), OW = gy.size(3);
  int bad = 0;
  dispatch_float(gy, op, [&](auto t) {
    using T = decltype(t);
    const T* pg = gy.data<T>();
    T* px = gx.data<T>();
    const int32_t* pi = p.mode == PoolMode::max ? idx.data<int32_t>() : nullptr;
#pragma omp parallel for schedule(static) reduction(| : bad) if (planes * H * W > kParallelGrain && !omp_in_parallel())
    for (int64_t pl = 0; pl < planes; ++pl)
      bad |= !backward_plane(pg + pl * OH * OW, pi ? pi + pl * OH * OW : nullptr, H, W, p, OH, OW, px + pl * H * W);
  });
  SL_CHECK(!bad, ValueError, op, ": indices out of range for grad_input ", gx.str());
}

}  // namespace sl::cpu
