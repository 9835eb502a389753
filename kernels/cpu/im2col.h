// Convolution lowered onto the GEMM (internal to kernels/cpu: conv2d.cpp and conv_transpose2d.cpp).
//
// A conv of an image x [C, H, W] with a k x k kernel (stride s, padding p) producing [OH, OW] reads, for output
// position j = oh * OW + ow and row r = (c * k + kh) * k + kw of the "column" matrix,
//   col[r][j] = x[c][oh * s - p + kh][ow * s - p + kw]   (0 outside the image)
// so with the weights as a matrix Wm [M, C k k]:
//   forward          y[n]  = Wm . col(x[n])                          (conv2d fwd, conv_transpose2d bwd-data)
//   data gradient    x[n]  = col2im(Wm^T . g[n])                     (conv2d bwd-data, conv_transpose2d fwd)
//   weight gradient  gWm   = sum_n g[n] . col(x[n])^T                (both bwd-weight)
// The column matrix is built for a block of output positions at a time, so it stays in L2, from a zero-bordered
// copy of the image (so building it is plain row copies, with no bounds tests); the weights are packed for the
// GEMM once per call and shared by all threads. Images are spread over the OpenMP threads
// (each with its own column scratch) when the batch allows, else the GEMM itself runs in parallel.
// Results do not depend on the thread count (fixed blocks, fixed chunking and reduction order).
#pragma once
#include <omp.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/threads.h"

namespace sl::cpu::conv {

struct Geom {
  int64_t C = 0, H = 0, W = 0;  // the image side of the lowering (conv input)
  int k = 1, stride = 1, pad = 0;
  int64_t OH = 0, OW = 0;  // the output side
  int64_t rows() const { return C * k * k; }
  int64_t cols() const { return OH * OW; }
  int64_t image_size() const { return C * H * W; }
  // 1x1, stride 1, no padding: the column matrix is the image itself.
  bool pointwise() const { return k == 1 && stride == 1 && pad == 0 && OH == H && OW == W; }
};

// Output positions per column block: the block (rows x nb) is kept near 512 KiB.
template <class T>
int64_t col_block(const Geom& g) {
  const int64_t target = int64_t(512 * 1024 / sizeof(T));
  int64_t nb = target / std::max<int64_t>(1, g.rows());
  nb = std::max<int64_t>(16, nb / 16 * 16);
  return std::min(nb, g.cols());
}

// d[0:n] = s[0:n] and d[0:n] += s[0:n] for short rows (vector loads plus one masked tail, inlined). The empty
// asm makes each loaded vector opaque, so GCC does not turn the copy loop back into a memcpy call (a call per
// row segment costs more than the copy itself for the 8..32-wide rows of small images).
#if defined(__GNUC__)
#define SL_OPAQUE(v) __asm__("" : "+x"(v))
#else
#define SL_OPAQUE(v) (void)0
#endif
#if defined(__AVX2__)
inline void copy_row(float* __restrict d, const float* __restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(s + i);
    SL_OPAQUE(v);
    _mm256_storeu_ps(d + i, v);
  }
  if (i < n) {
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(d + i, m, _mm256_maskload_ps(s + i, m));
  }
}
inline void add_row(float* __restrict d, const float* __restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_add_ps(_mm256_loadu_ps(d + i), _mm256_loadu_ps(s + i)));
  if (i < n) {
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(d + i, m, _mm256_add_ps(_mm256_maskload_ps(d + i, m), _mm256_maskload_ps(s + i, m)));
  }
}
inline void copy_row(double* __restrict d, const double* __restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m256d v = _mm256_loadu_pd(s + i);
    SL_OPAQUE(v);
    _mm256_storeu_pd(d + i, v);
  }
  for (; i < n; ++i) d[i] = s[i];
}
inline void add_row(double* __restrict d, const double* __restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(d + i, _mm256_add_pd(_mm256_loadu_pd(d + i), _mm256_loadu_pd(s + i)));
  for (; i < n; ++i) d[i] += s[i];
}
#else
template <class T>
inline void copy_row(T* __restrict d, const T* __restrict s, int64_t n) {
  std::memcpy(d, s, size_t(n) * sizeof(T));
}
template <class T>
inline void add_row(T* __restrict d, const T* __restrict s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] += s[i];
}
#endif

// The image with its zero border: [C, H + 2p, W + 2p]. With it, every read of the lowering is in bounds.
template <class T>
void pad_image(const T* x, const Geom& g, T* xp) {
  const int64_t p = g.pad, Hp = g.H + 2 * p, Wp = g.W + 2 * p;
  for (int64_t c = 0; c < g.C; ++c) {
    T* dc = xp + c * Hp * Wp;
    std::fill(dc, dc + p * Wp, T(0));
    for (int64_t h = 0; h < g.H; ++h) {
      T* dr = dc + (h + p) * Wp;
      std::fill(dr, dr + p, T(0));
      copy_row(dr + p, x + (c * g.H + h) * g.W, g.W);
      std::fill(dr + p + g.W, dr + Wp, T(0));
    }
    std::fill(dc + (p + g.H) * Wp, dc + Hp * Wp, T(0));
  }
}

// x = the interior of the padded xp (the adjoint of pad_image: the border is dropped).
template <class T>
void unpad_image(const T* xp, const Geom& g, T* x) {
  const int64_t p = g.pad, Hp = g.H + 2 * p, Wp = g.W + 2 * p;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t h = 0; h < g.H; ++h) copy_row(x + (c * g.H + h) * g.W, xp + (c * Hp + h + p) * Wp + p, g.W);
}

// col [rows][ncols] (row stride ncols) = columns j0 .. j0 + ncols of the column matrix, read from the padded
// image xp ([C, Hp, Wp]; the image itself when there is no padding).
template <class T>
void im2col_range(const T* xp, int64_t Hp, int64_t Wp, const Geom& g, int64_t j0, int64_t ncols, T* col) {
  const int k = g.k, s = g.stride;
  const int64_t j1 = j0 + ncols;
  for (int64_t c = 0; c < g.C; ++c)
    for (int kh = 0; kh < k; ++kh)
      for (int kw = 0; kw < k; ++kw) {
        T* drow = col + ((c * k + kh) * k + kw) * ncols;
        const T* base = xp + (c * Hp + kh) * Wp + kw;
        int64_t oh = j0 / g.OW, ow0 = j0 - oh * g.OW;
        for (int64_t j = j0; j < j1; ++oh, ow0 = 0) {  // one output row (or part of one) at a time
          const int64_t len = std::min(g.OW - ow0, j1 - j);
          const T* src = base + oh * s * Wp + ow0 * s;
          T* d = drow + (j - j0);
          if (s == 1)
            copy_row(d, src, len);
          else
            for (int64_t q = 0; q < len; ++q) d[q] = src[q * s];
          j += len;
        }
      }
}

// xp += the column block scattered back (the adjoint of im2col_range), into the padded layout.
template <class T>
void col2im_range_add(const T* col, int64_t Hp, int64_t Wp, const Geom& g, int64_t j0, int64_t ncols, T* xp) {
  const int k = g.k, s = g.stride;
  const int64_t j1 = j0 + ncols;
  for (int64_t c = 0; c < g.C; ++c)
    for (int kh = 0; kh < k; ++kh)
      for (int kw = 0; kw < k; ++kw) {
        const T* srow = col + ((c * k + kh) * k + kw) * ncols;
        T* base = xp + (c * Hp + kh) * Wp + kw;
        int64_t oh = j0 / g.OW, ow0 = j0 - oh * g.OW;
        for (int64_t j = j0; j < j1; ++oh, ow0 = 0) {
          const int64_t len = std::min(g.OW - ow0, j1 - j);
          T* dst = base + oh * s * Wp + ow0 * s;
          const T* sp = srow + (j - j0);
          if (s == 1)
            add_row(dst, sp, len);
          else
            for (int64_t q = 0; q < len; ++q) dst[q * s] += sp[q];
          j += len;
        }
      }
}

// The source of the lowering for one image: the image itself, or its padded copy in per-thread scratch.
template <class T>
struct PaddedSource {
  const T* p;
  int64_t Hp, Wp;
};
template <class T>
PaddedSource<T> padded_source(const T* x, const Geom& g) {
  if (g.pad == 0) return {x, g.H, g.W};
  const int64_t Hp = g.H + 2 * g.pad, Wp = g.W + 2 * g.pad;
  T* xp = static_cast<T*>(thread_scratch(kScratchConvAux, size_t(g.C * Hp * Wp) * sizeof(T)));
  pad_image(x, g, xp);
  return {xp, Hp, Wp};
}

// Runs f(i, gemm_parallel) for i in [0, count): across the threads (f runs its GEMMs serially) when there are
// enough items to balance, else one after another with a parallel GEMM inside. `flops` is the whole job's. Items are
// handed out dynamically (a thread slowed by other work takes fewer); what an item computes does not depend on the
// thread. Small convolutions (under kSerialFlops in all) run on the calling thread alone, and so do memory-bound loops
// over fewer than kParallelElements elements: waking the other threads would cost more than it saves.
constexpr double kSerialFlops = 4e6;
constexpr int64_t kParallelElements = int64_t(1) << 18;

template <class F>
void for_each_item(int64_t count, double flops, F&& f) {
  const int nt = omp_in_parallel() || flops < kSerialFlops ? 1 : region_threads();
  if (nt <= 1) {
    for (int64_t i = 0; i < count; ++i) f(i, false);
  } else if (count >= nt && (count % nt == 0 || count >= 4 * nt)) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t i = 0; i < count; ++i) f(i, false);
  } else {
    for (int64_t i = 0; i < count; ++i) f(i, true);
  }
}

// out [channels, len] += bias[channel] (one image).
template <class T>
void add_channel_bias(T* out, int64_t channels, int64_t len, const T* bias) {
  for (int64_t c = 0; c < channels; ++c) {
    T* r = out + c * len;
    const T v = bias[c];
    for (int64_t q = 0; q < len; ++q) r[q] += v;
  }
}

// Sum of n contiguous values with 32 independent partial sums (vectorisable, fixed order).
template <class T>
T sum_contig(const T* p, int64_t n) {
  constexpr int L = 32;
  T acc[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int l = 0; l < L; ++l) acc[l] += p[i + l];
  T tail = T(0);
  for (; i < n; ++i) tail += p[i];
  for (int w = L / 2; w > 0; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0] + tail;
}

// out[c] = sum over n and positions of t[n][c][:]  (t is [N, C, len]); the bias gradient.
template <class T>
void channel_sums(const T* t, int64_t N, int64_t C, int64_t len, T* out) {
#pragma omp parallel for num_threads(region_threads()) \
    schedule(static) if (N * C * len > kParallelElements && !omp_in_parallel())
  for (int64_t c = 0; c < C; ++c) {
    T s = T(0);
    for (int64_t n = 0; n < N; ++n) s += sum_contig(t + (n * C + c) * len, len);
    out[c] = s;
  }
}

// out [N, M, OH*OW] = Wm [M, C k k] . col(img[n]) (+ bias[m]); img is [N, C, H, W].
template <class T>
void lowered_forward(const T* img, int64_t N, const Geom& g, const T* wm, int64_t M, const T* bias, T* out) {
  const int64_t K = g.rows(), S = g.cols();
  AlignedBuffer packed(size_t(packed_a_size<T>(M, K)) * sizeof(T));
  const T* pa = packed.as<T>();
  pack_a<T>(false, M, K, wm, K, packed.as<T>());
  const int64_t nb = col_block<T>(g);
  for_each_item(N, 2.0 * double(N) * double(M) * double(K) * double(S), [&](int64_t n, bool par) {
    const T* x = img + n * g.image_size();
    T* y = out + n * M * S;
    if (g.pointwise()) {
      gemm_packed_a<T>(M, S, K, T(1), pa, false, x, S, T(0), y, S, par);
    } else {
      const PaddedSource<T> src = padded_source(x, g);
      T* col = static_cast<T*>(thread_scratch(kScratchConvCol, size_t(K * nb) * sizeof(T)));
      for (int64_t j0 = 0; j0 < S; j0 += nb) {
        const int64_t w = std::min(nb, S - j0);
        im2col_range(src.p, src.Hp, src.Wp, g, j0, w, col);
        gemm_packed_a<T>(M, w, K, T(1), pa, false, col, w, T(0), y + j0, S, par);
      }
    }
    if (bias) add_channel_bias(y, M, S, bias);
  });
}

// img [N, C, H, W] = col2im(Wm^T . gout[n]) (+ bias[c]); gout is [N, M, OH*OW], Wm is [M, C k k].
template <class T>
void lowered_backward_data(const T* gout, int64_t N, const Geom& g, const T* wm, int64_t M, const T* bias, T* img) {
  const int64_t K = g.rows(), S = g.cols();
  AlignedBuffer packed(size_t(packed_a_size<T>(K, M)) * sizeof(T));
  const T* pa = packed.as<T>();
  pack_a<T>(true, K, M, wm, K, packed.as<T>());  // op(A) = Wm^T, K x M
  const int64_t nb = col_block<T>(g);
  for_each_item(N, 2.0 * double(N) * double(M) * double(K) * double(S), [&](int64_t n, bool par) {
    const T* gy = gout + n * M * S;
    T* x = img + n * g.image_size();
    if (g.pointwise()) {
      gemm_packed_a<T>(K, S, M, T(1), pa, false, gy, S, T(0), x, S, par);
    } else {
      // accumulate into the padded layout (the image itself when there is no padding), then drop the border
      const int64_t Hp = g.H + 2 * g.pad, Wp = g.W + 2 * g.pad;
      T* xp = g.pad == 0 ? x : static_cast<T*>(thread_scratch(kScratchConvAux, size_t(g.C * Hp * Wp) * sizeof(T)));
      std::fill(xp, xp + g.C * Hp * Wp, T(0));
      T* col = static_cast<T*>(thread_scratch(kScratchConvCol, size_t(K * nb) * sizeof(T)));
      for (int64_t j0 = 0; j0 < S; j0 += nb) {
        const int64_t w = std::min(nb, S - j0);
        gemm_packed_a<T>(K, w, M, T(1), pa, false, gy + j0, S, T(0), col, w, par);
        col2im_range_add(col, Hp, Wp, g, j0, w, xp);
      }
      if (g.pad != 0) unpad_image(xp, g, x);
    }
    if (bias) add_channel_bias(x, g.C, g.H * g.W, bias);
  });
}

// gw [M, C k k] = sum_n p[n] . col(img[n])^T, p is [N, M, OH*OW], img [N, C, H, W] (gw overwritten).
// The batch is cut into at most kWeightGradChunks chunks (a number depending on N only); chunk 0 sums into gw,
// the others into partials, which are then added to gw in chunk order: the same bits for any thread count.
constexpr int64_t kWeightGradChunks = 4;

template <class T>
void lowered_weight_grad(const T* p, const T* img, int64_t N, const Geom& g, int64_t M, T* gw) {
  const int64_t K = g.rows(), S = g.cols(), total = M * K;
  if (N == 0) {
    std::fill(gw, gw + total, T(0));
    return;
  }
  const int64_t chunks = std::min<int64_t>(N, kWeightGradChunks);
  T* parts = chunks > 1 ? static_cast<T*>(thread_scratch(kScratchConvParts, size_t((chunks - 1) * total) * sizeof(T)))
                        : nullptr;
  const int64_t nb = col_block<T>(g);
  for_each_item(chunks, 2.0 * double(N) * double(M) * double(K) * double(S), [&](int64_t ch, bool par) {
    const int64_t n0 = ch * N / chunks, n1 = (ch + 1) * N / chunks;
    T* dst = ch == 0 ? gw : parts + (ch - 1) * total;
    T beta = T(0);
    for (int64_t n = n0; n < n1; ++n) {
      const T* pn = p + n * M * S;
      const T* x = img + n * g.image_size();
      if (g.pointwise()) {
        gemm_raw<T>(false, true, M, K, S, T(1), pn, S, x, S, beta, dst, K, par);
        beta = T(1);
      } else {
        const PaddedSource<T> src = padded_source(x, g);
        T* col = static_cast<T*>(thread_scratch(kScratchConvCol, size_t(K * nb) * sizeof(T)));
        for (int64_t j0 = 0; j0 < S; j0 += nb) {
          const int64_t w = std::min(nb, S - j0);
          im2col_range(src.p, src.Hp, src.Wp, g, j0, w, col);
          gemm_raw<T>(false, true, M, K, w, T(1), pn + j0, S, col, w, beta, dst, K, par);
          beta = T(1);
        }
      }
    }
  });
  if (chunks > 1) {
#pragma omp parallel for num_threads(region_threads()) \
    schedule(static) if (total * chunks > kParallelElements && !omp_in_parallel())
    for (int64_t i = 0; i < total; ++i) {
      T s = gw[i];
      for (int64_t ch = 1; ch < chunks; ++ch) s += parts[(ch - 1) * total + i];
      gw[i] = s;
    }
  }
}

}  // namespace sl::cpu::conv
