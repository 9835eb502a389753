// Convolution lowered onto the GEMM (internal to kernels/cpu: conv2d.cpp and conv_transpose2d.cpp).
//
// A conv of an image x [C, H, W] with a kh x kw kernel (strides sh, sw, padding pt at the top and pl at the left,
// dilations dh, dw) producing [OH, OW] reads, for output position j = oh * OW + ow and row r = (c * kh + i) * kw + j'
// of the "column" matrix,
//   col[r][j] = x[c][oh * sh - pt + i * dh][ow * sw - pl + j' * dw]   (0 outside the image)
// so with the weights as a matrix Wm [M, C kh kw]:
//   forward          y[n]  = Wm . col(x[n])                          (conv2d fwd, conv_transpose2d bwd-data)
//   data gradient    x[n]  = col2im(Wm^T . g[n])                     (conv2d bwd-data, conv_transpose2d fwd)
//   weight gradient  gWm   = sum_n g[n] . col(x[n])^T                (both bwd-weight)
// The column matrix is built for a block of output positions at a time, so it stays in L2, from a zero-bordered
// copy of the image (so building it is plain row copies, with no bounds tests); the weights are packed for the
// GEMM once per call and shared by all threads. Images are spread over the OpenMP threads
// (each with its own column scratch) when the batch allows, else the GEMM itself runs in parallel.
// Results do not depend on the thread count (fixed blocks, fixed chunking and reduction order).
// With channel groups, group g of an image (channels g C .. g C + C - 1) meets rows g M/G .. of Wm only: each
// (image, group) pair is one lowering of its own.
#pragma once
#include <omp.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/gemm.h"

namespace sl::cpu::conv {

struct Geom {
  int64_t C = 0, H = 0, W = 0;  // the image side of the lowering (conv input; C: the channels of one group)
  int kh = 1, kw = 1, sh = 1, sw = 1, pt = 0, pl = 0, dh = 1, dw = 1;
  int groups = 1;
  int64_t OH = 0, OW = 0;  // the output side
  int64_t Hp = 0, Wp = 0;  // the zero-bordered image every tap reads from (set by finish())
  int64_t rows() const { return C * kh * kw; }
  int64_t cols() const { return OH * OW; }
  int64_t image_size() const { return C * H * W; }  // one group's channels
  // Sets Hp, Wp: the image at offset (pt, pl) plus what the last window reaches below and right of it.
  void finish() {
    Hp = std::max<int64_t>(H + pt, (OH - 1) * sh + int64_t(kh - 1) * dh + 1);
    Wp = std::max<int64_t>(W + pl, (OW - 1) * sw + int64_t(kw - 1) * dw + 1);
  }
  bool padded() const { return pt != 0 || pl != 0 || Hp != H || Wp != W; }
  // 1x1, stride 1, no padding: the column matrix is the image itself.
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && !padded() && OH == H && OW == W; }
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

// The image with its zero border: [C, Hp, Wp], the image at (pt, pl). With it, every read of the lowering is in
// bounds.
template <class T>
void pad_image(const T* x, const Geom& g, T* xp) {
  const int64_t pt = g.pt, pl = g.pl, Hp = g.Hp, Wp = g.Wp;
  for (int64_t c = 0; c < g.C; ++c) {
    T* dc = xp + c * Hp * Wp;
    std::fill(dc, dc + pt * Wp, T(0));
    for (int64_t h = 0; h < g.H; ++h) {
      T* dr = dc + (h + pt) * Wp;
      std::fill(dr, dr + pl, T(0));
      copy_row(dr + pl, x + (c * g.H + h) * g.W, g.W);
      std::fill(dr + pl + g.W, dr + Wp, T(0));
    }
    std::fill(dc + (pt + g.H) * Wp, dc + Hp * Wp, T(0));
  }
}

// x = the interior of the padded xp (the adjoint of pad_image: the border is dropped).
template <class T>
void unpad_image(const T* xp, const Geom& g, T* x) {
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t h = 0; h < g.H; ++h) copy_row(x + (c * g.H + h) * g.W, xp + (c * g.Hp + h + g.pt) * g.Wp + g.pl, g.W);
}

// col [rows][ncols] (row stride ncols) = columns j0 .. j0 + ncols of the column matrix, read from the padded
// image xp ([C, Hp, Wp]; the image itself when there is no padding).
template <class T>
void im2col_range(const T* xp, int64_t Hp, int64_t Wp, const Geom& g, int64_t j0, int64_t ncols, T* col) {
  const int sw = g.sw;
  const int64_t j1 = j0 + ncols;
  for (int64_t c = 0; c < g.C; ++c)
    for (int kh = 0; kh < g.kh; ++kh)
      for (int kw = 0; kw < g.kw; ++kw) {
        T* drow = col + ((c * g.kh + kh) * g.kw + kw) * ncols;
        const T* base = xp + (c * Hp + int64_t(kh) * g.dh) * Wp + int64_t(kw) * g.dw;
        int64_t oh = j0 / g.OW, ow0 = j0 - oh * g.OW;
        for (int64_t j = j0; j < j1; ++oh, ow0 = 0) {  // one output row (or part of one) at a time
          const int64_t len = std::min(g.OW - ow0, j1 - j);
          const T* src = base + oh * g.sh * Wp + ow0 * sw;
          T* d = drow + (j - j0);
          if (sw == 1)
            copy_row(d, src, len);
          else
            for (int64_t q = 0; q < len; ++q) d[q] = src[q * sw];
          j += len;
        }
      }
}

// xp += the column block scattered back (the adjoint of im2col_range), into the padded layout.
template <class T>
void col2im_range_add(const T* col, int64_t Hp, int64_t Wp, const Geom& g, int64_t j0, int64_t ncols, T* xp) {
  const int sw = g.sw;
  const int64_t j1 = j0 + ncols;
  for (int64_t c = 0; c < g.C; ++c)
    for (int kh = 0; kh < g.kh; ++kh)
      for (int kw = 0; kw < g.kw; ++kw) {
        const T* srow = col + ((c * g.kh + kh) * g.kw + kw) * ncols;
        T* base = xp + (c * Hp + int64_t(kh) * g.dh) * Wp + int64_t(kw) * g.dw;
        int64_t oh = j0 / g.OW, ow0 = j0 - oh * g.OW;
        for (int64_t j = j0; j < j1; ++oh, ow0 = 0) {
          const int64_t len = std::min(g.OW - ow0, j1 - j);
          T* dst = base + oh * g.sh * Wp + ow0 * sw;
          const T* sp = srow + (j - j0);
          if (sw == 1)
            add_row(dst, sp, len);
          else
            for (int64_t q = 0; q < len; ++q) dst[q * sw] += sp[q];
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
  if (!g.padded()) return {x, g.H, g.W};
  T* xp = static_cast<T*>(thread_scratch(kScratchConvAux, size_t(g.C * g.Hp * g.Wp) * sizeof(T)));
  pad_image(x, g, xp);
  return {xp, g.Hp, g.Wp};
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
  const int nt = omp_in_parallel() || flops < kSerialFlops ? 1 : omp_get_max_threads();
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
#pragma omp parallel for schedule(static) if (N * C * len > kParallelElements && !omp_in_parallel())
  for (int64_t c = 0; c < C; ++c) {
    T s = T(0);
    for (int64_t n = 0; n < N; ++n) s += sum_contig(t + (n * C + c) * len, len);
    out[c] = s;
  }
}

// Wm's rows packed per group (each pack 64-byte aligned); op(A) = Wm_g (M/G x K), or Wm_g^T (K x M/G) when trans.
template <class T>
struct GroupPacks {
  AlignedBuffer buf;
  size_t stride = 0;  // elements per group, rounded to 64 bytes
  const T* at(int64_t g) const { return buf.as<T>() + size_t(g) * stride; }
  GroupPacks(const T* wm, int64_t M, int64_t K, int64_t G, bool trans) {
    const int64_t Mg = M / G;
    const size_t per = size_t(trans ? packed_a_size<T>(K, Mg) : packed_a_size<T>(Mg, K));
    const size_t align = 64 / sizeof(T);
    stride = (per + align - 1) / align * align;
    buf.reserve(stride * size_t(G) * sizeof(T));
    for (int64_t g = 0; g < G; ++g) {
      T* dst = buf.as<T>() + size_t(g) * stride;
      if (trans)
        pack_a<T>(true, K, Mg, wm + g * Mg * K, K, dst);
      else
        pack_a<T>(false, Mg, K, wm + g * Mg * K, K, dst);
    }
  }
};

// out [N, M, OH*OW] = Wm [M, C kh kw] . col(img[n]) (+ bias[m]); img is [N, G C, H, W] (per group as above).
template <class T>
void lowered_forward(const T* img, int64_t N, const Geom& g, const T* wm, int64_t M, const T* bias, T* out) {
  const int64_t K = g.rows(), S = g.cols(), G = g.groups, Mg = M / G;
  const GroupPacks<T> packs(wm, M, K, G, false);
  const int64_t nb = col_block<T>(g);
  for_each_item(N * G, 2.0 * double(N) * double(M) * double(K) * double(S), [&](int64_t item, bool par) {
    const int64_t n = item / G, gi = item % G;
    const T* pa = packs.at(gi);
    const T* x = img + item * g.image_size();
    T* y = out + (n * M + gi * Mg) * S;
    if (g.pointwise()) {
      gemm_packed_a<T>(Mg, S, K, T(1), pa, false, x, S, T(0), y, S, par);
    } else {
      const PaddedSource<T> src = padded_source(x, g);
      T* col = static_cast<T*>(thread_scratch(kScratchConvCol, size_t(K * nb) * sizeof(T)));
      for (int64_t j0 = 0; j0 < S; j0 += nb) {
        const int64_t w = std::min(nb, S - j0);
        im2col_range(src.p, src.Hp, src.Wp, g, j0, w, col);
        gemm_packed_a<T>(Mg, w, K, T(1), pa, false, col, w, T(0), y + j0, S, par);
      }
    }
    if (bias) add_channel_bias(y, Mg, S, bias + gi * Mg);
  });
}

// img [N, G C, H, W] = col2im(Wm^T . gout[n]) (+ bias[c]); gout is [N, M, OH*OW], Wm is [M, C kh kw].
template <class T>
void lowered_backward_data(const T* gout, int64_t N, const Geom& g, const T* wm, int64_t M, const T* bias, T* img) {
  const int64_t K = g.rows(), S = g.cols(), G = g.groups, Mg = M / G;
  const GroupPacks<T> packs(wm, M, K, G, true);  // op(A) = Wm_g^T, K x M/G
  const int64_t nb = col_block<T>(g);
  for_each_item(N * G, 2.0 * double(N) * double(M) * double(K) * double(S), [&](int64_t item, bool par) {
    const int64_t n = item / G, gi = item % G;
    const T* pa = packs.at(gi);
    const T* gy = gout + (n * M + gi * Mg) * S;
    T* x = img + item * g.image_size();
    if (g.pointwise()) {
      gemm_packed_a<T>(K, S, Mg, T(1), pa, false, gy, S, T(0), x, S, par);
    } else {
      // accumulate into the padded layout (the image itself when there is no padding), then drop the border
      const int64_t Hp = g.Hp, Wp = g.Wp;
      T* xp = !g.padded() ? x : static_cast<T*>(thread_scratch(kScratchConvAux, size_t(g.C * Hp * Wp) * sizeof(T)));
      std::fill(xp, xp + g.C * Hp * Wp, T(0));
      T* col = static_cast<T*>(thread_scratch(kScratchConvCol, size_t(K * nb) * sizeof(T)));
      for (int64_t j0 = 0; j0 < S; j0 += nb) {
        const int64_t w = std::min(nb, S - j0);
        gemm_packed_a<T>(K, w, Mg, T(1), pa, false, gy + j0, S, T(0), col, w, par);
        col2im_range_add(col, Hp, Wp, g, j0, w, xp);
      }
      if (g.padded()) unpad_image(xp, g, x);
    }
    if (bias) add_channel_bias(x, g.C, g.H * g.W, bias + gi * g.C);
  });
}

// gw [M, C kh kw] = sum_n p[n] . col(img[n])^T per group, p is [N, M, OH*OW], img [N, G C, H, W] (gw overwritten).
// The batch is cut into at most kWeightGradChunks chunks (a number depending on N only); chunk 0 sums into gw,
// the others into partials, which are then added to gw in chunk order: the same bits for any thread count.
constexpr int64_t kWeightGradChunks = 4;

template <class T>
void lowered_weight_grad(const T* p, const T* img, int64_t N, const Geom& g, int64_t M, T* gw) {
  const int64_t K = g.rows(), S = g.cols(), total = M * K, G = g.groups, Mg = M / G;
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
    for (int64_t gi = 0; gi < G; ++gi) {
      T* dst = (ch == 0 ? gw : parts + (ch - 1) * total) + gi * Mg * K;
      T beta = T(0);
      for (int64_t n = n0; n < n1; ++n) {
        const T* pn = p + (n * M + gi * Mg) * S;
        const T* x = img + (n * G + gi) * g.image_size();
        if (g.pointwise()) {
          gemm_raw<T>(false, true, Mg, K, S, T(1), pn, S, x, S, beta, dst, K, par);
          beta = T(1);
        } else {
          const PaddedSource<T> src = padded_source(x, g);
          T* col = static_cast<T*>(thread_scratch(kScratchConvCol, size_t(K * nb) * sizeof(T)));
          for (int64_t j0 = 0; j0 < S; j0 += nb) {
            const int64_t w = std::min(nb, S - j0);
            im2col_range(src.p, src.Hp, src.Wp, g, j0, w, col);
            gemm_raw<T>(false, true, Mg, K, w, T(1), pn + j0, S, col, w, beta, dst, K, par);
            beta = T(1);
          }
        }
      }
    }
  });
  if (chunks > 1) {
#pragma omp parallel for schedule(static) if (total * chunks > kParallelElements && !omp_in_parallel())
    for (int64_t i = 0; i < total; ++i) {
      T s = gw[i];
      for (int64_t ch = 1; ch < chunks; ++ch) s += parts[(ch - 1) * total + i];
      gw[i] = s;
    }
  }
}

}  // namespace sl::cpu::conv
