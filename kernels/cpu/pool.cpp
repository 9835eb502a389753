// Max pooling on the CPU (NCHW, k x k windows, stride s, no padding):
//
//   y[n, c, oh, ow]   = max_{kh, kw < k} x[n, c, oh*s + kh, ow*s + kw]      OH = (H - k) / s + 1
//   idx[n, c, oh, ow] = (oh*s + kh*) * W + (ow*s + kw*)  at the maximum (the first one in row-major window order
//                       on ties; a NaN wins, as the max of anything with NaN is NaN)
//   gx[n, c, :] = 0, then gx[n, c, idx[n, c, o]] += gy[n, c, o]  for every output o (overlapping windows add up)
//
// Planes (n, c) are independent and are spread over the OpenMP threads. The 2x2 / stride-2 pool of both target
// models has its own path: AVX2 over 8 outputs at a time (float) forward, and a backward that writes each
// window once instead of zeroing the plane and scattering into it.
#include <omp.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <climits>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/threads.h"

namespace sl::cpu {

namespace {

// Pools over fewer input elements than this run on the calling thread alone.
constexpr int64_t kPoolParallelElements = int64_t(1) << 18;

void check_pool_tensor(const Tensor& t, const char* op, const char* name) {
  SL_CHECK(t.defined(), ValueError, op, ": ", name, " is undefined");
  SL_CHECK(t.device().is_cpu(), DeviceError, op, ": ", name, " ", t.str(), " is not on the CPU");
  SL_CHECK(t.dim() == 4, ShapeError, op, ": ", name, " must be 4-d, got ", t.str());
  SL_CHECK(t.is_contiguous(), ValueError, op, ": ", name, " must be contiguous");
}

// v replaces the running maximum when larger, or when it is the first NaN.
template <class T>
inline bool pool_takes(T v, T best) {
  return v > best || (v != v && best == best);
}

// Outputs [0, n) of one output row of a 2x2 / stride-2 pool (input rows r0, r1 of width W) into y, idx (the
// flat offsets are `base` + position in the plane). Returns how many it did; the caller does the rest.
template <class T>
int64_t pool2x2_row_simd(const T*, const T*, int64_t, int64_t, int32_t, T*, int32_t*) {
  return 0;
}
#if defined(__AVX2__)
template <>
int64_t pool2x2_row_simd<float>(const float* r0, const float* r1, int64_t W, int64_t n, int32_t base, float* y,
                                int32_t* idx) {
  auto even = [](__m256 lo, __m256 hi) {  // elements 0, 2, .., 14 of lo:hi
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))),
                                                  _MM_SHUFFLE(3, 1, 2, 0)));
  };
  auto odd = [](__m256 lo, __m256 hi) {  // elements 1, 3, .., 15
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))),
                                                  _MM_SHUFFLE(3, 1, 2, 0)));
  };
  const __m256 off1 = _mm256_castsi256_ps(_mm256_set1_epi32(1)), offw = _mm256_castsi256_ps(_mm256_set1_epi32(int(W))),
               offw1 = _mm256_castsi256_ps(_mm256_set1_epi32(int(W + 1)));
  const __m256i step = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  int64_t o = 0;
  for (; o + 8 <= n; o += 8) {
    const float* p0 = r0 + 2 * o;
    const float* p1 = r1 + 2 * o;
    const __m256 l0 = _mm256_loadu_ps(p0), h0 = _mm256_loadu_ps(p0 + 8), l1 = _mm256_loadu_ps(p1),
                 h1 = _mm256_loadu_ps(p1 + 8);
    __m256 best = even(l0, h0), off = _mm256_setzero_ps();
    auto take = [&](__m256 v, __m256 code) {
      const __m256 m =
          _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ),
                       _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(best, best, _CMP_ORD_Q)));
      best = _mm256_blendv_ps(best, v, m);
      off = _mm256_blendv_ps(off, code, m);
    };
    take(odd(l0, h0), off1);
    take(even(l1, h1), offw);
    take(odd(l1, h1), offw1);
    _mm256_storeu_ps(y + o, best);
    const __m256i pos = _mm256_add_epi32(_mm256_set1_epi32(int32_t(base + 2 * o)), step);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + o), _mm256_add_epi32(pos, _mm256_castps_si256(off)));
  }
  return o;
}
#endif

template <class T>
void pool_forward(const T* x, int64_t planes, int64_t H, int64_t W, int k, int s, int64_t OH, int64_t OW, T* y,
                  int32_t* idx) {
#pragma omp parallel for num_threads(region_threads()) \
    schedule(static) if (planes * H * W > kPoolParallelElements && !omp_in_parallel())
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * H * W;
    T* yp = y + pl * OH * OW;
    int32_t* ip = idx + pl * OH * OW;
    if (k == 2 && s == 2) {
      for (int64_t oh = 0; oh < OH; ++oh) {
        const T* r0 = xp + 2 * oh * W;
        const T* r1 = r0 + W;
        T* yr = yp + oh * OW;
        int32_t* ir = ip + oh * OW;
        const int32_t base = int32_t(2 * oh * W);
        for (int64_t ow = pool2x2_row_simd<T>(r0, r1, W, OW, base, yr, ir); ow < OW; ++ow) {
          T best = r0[2 * ow];
          int32_t off = 0;
          if (pool_takes(r0[2 * ow + 1], best)) best = r0[2 * ow + 1], off = 1;
          if (pool_takes(r1[2 * ow], best)) best = r1[2 * ow], off = int32_t(W);
          if (pool_takes(r1[2 * ow + 1], best)) best = r1[2 * ow + 1], off = int32_t(W + 1);
          yr[ow] = best;
          ir[ow] = base + int32_t(2 * ow) + off;
        }
      }
      continue;
    }
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t best_i = oh * s * W + ow * s;
        T best = xp[best_i];
        for (int kh = 0; kh < k; ++kh) {
          const int64_t row = (oh * s + kh) * W + ow * s;
          for (int kw = 0; kw < k; ++kw) {
            const T v = xp[row + kw];
            if (pool_takes(v, best)) {
              best = v;
              best_i = row + kw;
            }
          }
        }
        yp[oh * OW + ow] = best;
        ip[oh * OW + ow] = int32_t(best_i);
      }
  }
}

// gx plane = 0, then gx[idx[o]] += gy[o]. Returns false (skipping it) when an index lies outside the plane.
template <class T>
bool scatter_plane(const T* gyp, const int32_t* ip, int64_t in_plane, int64_t out_plane, T* gp) {
  std::fill(gp, gp + in_plane, T(0));
  bool ok = true;
  for (int64_t o = 0; o < out_plane; ++o) {
    const int64_t i = ip[o];
    if (i < 0 || i >= in_plane) {
      ok = false;
      continue;
    }
    gp[i] += gyp[o];
  }
  return ok;
}

// The plane of a 2x2 / stride-2 pool written window by window (each input element once). Returns false, having
// written garbage, when some index is not inside its own 2x2 window (indices of another pooling): the caller
// then redoes the plane with scatter_plane.
template <class T>
bool windows_2x2_plane(const T* gyp, const int32_t* ip, int64_t H, int64_t W, int64_t OH, int64_t OW, T* gp) {
  bool ok = true;
  for (int64_t oh = 0; oh < OH; ++oh) {
    T* r0 = gp + 2 * oh * W;
    T* r1 = r0 + W;
    for (int64_t ow = 0; ow < OW; ++ow) {
      const T g = gyp[oh * OW + ow];
      const int64_t off = int64_t(ip[oh * OW + ow]) - (2 * oh * W + 2 * ow);
      ok &= off == 0 || off == 1 || off == W || off == W + 1;
      r0[2 * ow] = off == 0 ? g : T(0);
      r0[2 * ow + 1] = off == 1 ? g : T(0);
      r1[2 * ow] = off == W ? g : T(0);
      r1[2 * ow + 1] = off == W + 1 ? g : T(0);
    }
    if (W > 2 * OW) r0[W - 1] = r1[W - 1] = T(0);  // odd width: the last column is in no window
  }
  std::fill(gp + 2 * OH * W, gp + H * W, T(0));  // odd height: the last row
  return ok;
}

// Returns false when some index lies outside its plane (those are skipped).
template <class T>
bool pool_backward(const T* gy, const int32_t* idx, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                   T* gx) {
  const int64_t in_plane = H * W, out_plane = OH * OW;
  // Shapes that a 2x2 / stride-2 pool gives; the windows are confirmed from the indices themselves.
  const bool maybe_2x2 = OH == H / 2 && OW == W / 2 && OH > 0 && OW > 0;
  int bad = 0;
#pragma omp parallel for num_threads(region_threads()) schedule(static) \
    reduction(|                                                         \
              : bad) if (planes * in_plane > kPoolParallelElements && !omp_in_parallel())
  for (int64_t pl = 0; pl < planes; ++pl) {
    T* gp = gx + pl * in_plane;
    const T* gyp = gy + pl * out_plane;
    const int32_t* ip = idx + pl * out_plane;
    if (maybe_2x2 && windows_2x2_plane(gyp, ip, H, W, OH, OW, gp)) continue;
    if (!scatter_plane(gyp, ip, in_plane, out_plane, gp)) bad = 1;
  }
  return bad == 0;
}

}  // namespace

void max_pool2d_forward(const Tensor& x, int k, int stride, Tensor& y, Tensor& idx) {
  const char* op = "max_pool2d";
  check_pool_tensor(x, op, "input");
  check_pool_tensor(y, op, "output");
  check_pool_tensor(idx, op, "indices");
  SL_CHECK(k >= 1 && stride >= 1, ValueError, op, ": kernel and stride must be >= 1 (got ", k, ", ", stride, ")");
  SL_CHECK(x.dtype() == y.dtype(), ValueError, op, ": input ", x.str(), " and output ", y.str(), " differ in dtype");
  SL_CHECK(idx.dtype() == DType::i32, ValueError, op, ": indices must be int32, got ", idx.str());
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  SL_CHECK(H >= k && W >= k, ShapeError, op, ": window ", k, " larger than input ", x.str());
  SL_CHECK(H * W <= INT32_MAX, ShapeError, op, ": plane of ", x.str(), " too large for int32 indices");
  const Shape ys{N, C, (H - k) / stride + 1, (W - k) / stride + 1};
  check_shape(y, ys, "max_pool2d output");
  check_shape(idx, ys, "max_pool2d indices");
  if (x.dtype() == DType::f32)
    pool_forward(x.data<float>(), N * C, H, W, k, stride, ys[2], ys[3], y.data<float>(), idx.data<int32_t>());
  else
    pool_forward(x.data<double>(), N * C, H, W, k, stride, ys[2], ys[3], y.data<double>(), idx.data<int32_t>());
}

void max_pool2d_backward(const Tensor& gy, const Tensor& idx, int k, int stride, Tensor& gx) {
  const char* op = "max_pool2d backward";
  SL_CHECK(k > 0 && stride > 0, ValueError, op, ": kernel ", k, " and stride ", stride, " must be positive");
  check_pool_tensor(gy, op, "grad_out");
  check_pool_tensor(idx, op, "indices");
  check_pool_tensor(gx, op, "grad_input");
  SL_CHECK(idx.dtype() == DType::i32, ValueError, op, ": indices must be int32, got ", idx.str());
  SL_CHECK(gy.dtype() == gx.dtype(), ValueError, op, ": grad_out ", gy.str(), " and grad_input ", gx.str(),
           " differ in dtype");
  check_shape(idx, gy.shape(), "max_pool2d backward indices");
  SL_CHECK(gx.size(0) == gy.size(0) && gx.size(1) == gy.size(1), ShapeError, op, ": grad_input ", gx.str(),
           " does not match grad_out ", gy.str());
  const int64_t planes = gy.size(0) * gy.size(1);
  // Indices come from max_pool2d_forward; one out of its plane (a corrupt tensor) is reported, not written.
  const int32_t* ip = idx.data<int32_t>();
  const bool ok = gy.dtype() == DType::f32 ? pool_backward(gy.data<float>(), ip, planes, gx.size(2), gx.size(3),
                                                           gy.size(2), gy.size(3), gx.data<float>())
                                           : pool_backward(gy.data<double>(), ip, planes, gx.size(2), gx.size(3),
                                                           gy.size(2), gy.size(3), gx.data<double>());
  SL_CHECK(ok, ValueError, op, ": indices out of range for grad_input ", gx.str());
}

}  // namespace sl::cpu

namespace sl::cpu {

// Composites of the kernels above (kernels/backend_api.inc): the CPU keeps no fused loop for them.
void conv2d_relu_pool_forward(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, int k, int stride,
                              Tensor& y, Tensor& idx) {
  SL_CHECK(x.dim() == 4 && w.dim() == 4, ShapeError, "conv2d_relu_pool: input ", x.str(), " and weight ", w.str(),
           " must be 4-d");
  a.relu = true;
  const int kk = int(w.size(2));
  Tensor c = Tensor::empty(Shape{x.size(0), w.size(0), conv_out_size(x.size(2), kk, a.stride, a.pad),
                                 conv_out_size(x.size(3), kk, a.stride, a.pad)},
                           x.dtype(), x.device());
  conv2d_forward(x, w, b, a, c);
  max_pool2d_forward(c, k, stride, y, idx);
}

void max_pool2d_relu_backward(const Tensor& gy, const Tensor& y, const Tensor& idx, int k, int stride, Tensor& gx) {
  check_pool_tensor(y, "max_pool2d_relu backward", "pooled output");
  Tensor g = Tensor::empty(gy.shape(), gy.dtype(), gy.device());
  relu_backward(y, gy, g);
  max_pool2d_backward(g, idx, k, stride, gx);
}

}  // namespace sl::cpu
