// Dense matrix products on the CPU: a blocked, packed GEMM written from scratch, and the linear layer on top.
//
//   C = alpha * op(A) op(B) + beta * C,   op(A) m x k, op(B) k x n, all row-major.
//
// Structure (the classic five-loop GEMM):
//   for jc over n in steps of NC            B block of KC x NC lives in L2/L3
//     for pc over k in steps of KC          pack op(B)[pc:pc+KC, jc:jc+NC] into NR-wide panels
//       for ic over m in steps of MC        pack op(A)[ic:ic+MC, pc:pc+KC] into MR-tall panels (L2)
//         for jr over the block in NR       one B panel (KC x NR) stays in L1
//           for ir over the block in MR     micro-kernel: an MR x NR tile of C kept in registers
// The float micro-kernel is 6 x 16 (12 ymm accumulators, 2 B loads and 6 broadcasts per 12 FMAs); double
// uses 6 x 8 with the same code. Ragged edges: rows through a micro-kernel instantiated for 1..6 rows,
// columns through masked loads/stores; packed B panels are zero-padded.
// Threads: C is cut into one rectangular tile per OpenMP thread (rows in multiples of MR, columns in
// multiples of NR, the split chosen by a small cost model), each tile run by the serial algorithm above
// with that thread's own packing buffers. Each C element is summed in the same order whatever the split,
// so results are bitwise the same for any thread count.
#include "kernels/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SL_GEMM_AVX2 1
#else
#define SL_GEMM_AVX2 0
#endif

namespace sl::cpu {

// ---- scratch memory -------------------------------------------------------------------------------------
AlignedBuffer::~AlignedBuffer() { std::free(p_); }

void* AlignedBuffer::reserve(size_t bytes) {
  if (bytes <= cap_ && p_) return p_;
  std::free(p_);
  p_ = nullptr;
  cap_ = 0;
  size_t want = (std::max<size_t>(bytes, 64) + 63) / 64 * 64;
  p_ = std::aligned_alloc(64, want);
  if (!p_) throw std::bad_alloc();
  cap_ = want;
  return p_;
}

void* thread_scratch(int slot, size_t bytes) {
  thread_local AlignedBuffer bufs[kScratchSlots];
  return bufs[slot].reserve(bytes);
}

namespace {

// ---- block sizes ------------------------------------------------------------------------------------------
// L1 holds one KC x NR panel of B (16 KiB for float) plus an MR x KC sliver of A; L2 holds the MC x KC block of A.
template <class T>
struct Blocking;
template <>
struct Blocking<float> {
  static constexpr int MR = 6, NR = 16;
  static constexpr int64_t KC = 256, MC = 144, NC = 2048;
};
template <>
struct Blocking<double> {
  static constexpr int MR = 6, NR = 8;
  static constexpr int64_t KC = 256, MC = 96, NC = 1024;
};

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
inline int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// ---- micro-kernels ----------------------------------------------------------------------------------------
// c[0:R, 0:nr] = alpha * (a_panel . b_panel) + beta * c   (beta == 0: c is not read); alpha_beta = {alpha, beta}
// (passed through memory so that no vector register is tied up across the k loop).
// a: MR-strided packed panel (only its first R rows are read); b: NR-wide packed, zero-padded panel.
#if SL_GEMM_AVX2
template <class T>
struct Simd;
template <>
struct Simd<float> {
  using V = __m256;
  static constexpr int W = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_load_ps(p); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V maskload(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
  static void maskstore(float* p, __m256i m, V v) { _mm256_maskstore_ps(p, m, v); }
};
template <>
struct Simd<double> {
  using V = __m256d;
  static constexpr int W = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const double* p) { return _mm256_load_pd(p); }
  static V loadu(const double* p) { return _mm256_loadu_pd(p); }
  static V bcast(const double* p) { return _mm256_broadcast_sd(p); }
  static V set1(double x) { return _mm256_set1_pd(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static void storeu(double* p, V v) { _mm256_storeu_pd(p, v); }
  static __m256i mask(int n) { return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3)); }
  static V maskload(const double* p, __m256i m) { return _mm256_maskload_pd(p, m); }
  static void maskstore(double* p, __m256i m, V v) { _mm256_maskstore_pd(p, m, v); }
};

template <class T, int R>
void micro_kernel(int64_t kc, const T* __restrict a, const T* __restrict b, T* __restrict c, int64_t ldc, int nr,
                  const T* alpha_beta) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::W, MR = Blocking<T>::MR;
  static_assert(Blocking<T>::NR == 2 * W, "the micro-kernel covers two vectors per row");
  // Named accumulators (not an array): GCC keeps them in registers without shadow stores.
  V c00 = S::zero(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00, c40 = c00, c41 = c00,
    c50 = c00, c51 = c00;
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 2 * W - 1), _MM_HINT_T0);
  }
#define SL_GEMM_ROW(r)                 \
  if constexpr (R > r) {               \
    const V ar = S::bcast(a + r);      \
    c##r##0 = S::fma(ar, b0, c##r##0); \
    c##r##1 = S::fma(ar, b1, c##r##1); \
  }
  for (int64_t p = 0; p < kc; ++p) {
    const V b0 = S::load(b), b1 = S::load(b + W);
    SL_GEMM_ROW(0)
    SL_GEMM_ROW(1)
    SL_GEMM_ROW(2)
    SL_GEMM_ROW(3)
    SL_GEMM_ROW(4)
    SL_GEMM_ROW(5)
    a += MR;
    b += 2 * W;
  }
#undef SL_GEMM_ROW
  const V acc0[6] = {c00, c10, c20, c30, c40, c50}, acc1[6] = {c01, c11, c21, c31, c41, c51};
  const T alpha = alpha_beta[0], beta = alpha_beta[1];
  const V va = S::set1(alpha);
  if (nr == 2 * W) {
    if (beta == T(0)) {
#pragma GCC unroll 6
      for (int r = 0; r < R; ++r) {
        S::storeu(c + r * ldc, S::mul(va, acc0[r]));
        S::storeu(c + r * ldc + W, S::mul(va, acc1[r]));
      }
    } else {
      const V vb = S::set1(beta);
#pragma GCC unroll 6
      for (int r = 0; r < R; ++r) {
        T* cr = c + r * ldc;
        S::storeu(cr, S::fma(vb, S::loadu(cr), S::mul(va, acc0[r])));
        S::storeu(cr + W, S::fma(vb, S::loadu(cr + W), S::mul(va, acc1[r])));
      }
    }
  } else {
    const __m256i m0 = S::mask(nr), m1 = S::mask(nr - W);
    if (beta == T(0)) {
      for (int r = 0; r < R; ++r) {
        S::maskstore(c + r * ldc, m0, S::mul(va, acc0[r]));
        S::maskstore(c + r * ldc + W, m1, S::mul(va, acc1[r]));
      }
    } else {
      const V vb = S::set1(beta);
      for (int r = 0; r < R; ++r) {
        T* cr = c + r * ldc;
        S::maskstore(cr, m0, S::fma(vb, S::maskload(cr, m0), S::mul(va, acc0[r])));
        S::maskstore(cr + W, m1, S::fma(vb, S::maskload(cr + W, m1), S::mul(va, acc1[r])));
      }
    }
  }
}
#else  // portable fallback with the same packed layout
template <class T, int R>
void micro_kernel(int64_t kc, const T* __restrict a, const T* __restrict b, T* __restrict c, int64_t ldc, int nr,
                  const T* alpha_beta) {
  constexpr int MR = Blocking<T>::MR, NR = Blocking<T>::NR;
  const T alpha = alpha_beta[0], beta = alpha_beta[1];
  T acc[R][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < NR; ++j) acc[r][j] += a[r] * b[j];
    a += MR;
    b += NR;
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < nr; ++j) {
      T* cij = c + r * ldc + j;
      *cij = beta == T(0) ? alpha * acc[r][j] : alpha * acc[r][j] + beta * *cij;
    }
}
#endif

template <class T>
using MicroKernel = void (*)(int64_t, const T*, const T*, T*, int64_t, int, const T*);

template <class T>
constexpr MicroKernel<T> kMicroKernels[7] = {nullptr,
                                             &micro_kernel<T, 1>,
                                             &micro_kernel<T, 2>,
                                             &micro_kernel<T, 3>,
                                             &micro_kernel<T, 4>,
                                             &micro_kernel<T, 5>,
                                             &micro_kernel<T, 6>};

// ---- packing ----------------------------------------------------------------------------------------------
// A block (mc x kc of op(A), rows from i0, columns from p0) -> panels of MR rows: panel at ir holds
// element (ir + i, p) at dst[ir * kc + p * MR + i]. Rows past mc in the last panel are left unwritten
// (the row-specialised micro-kernel never reads them).
template <class T>
void pack_a_block(bool trans, const T* a, int64_t lda, int64_t i0, int64_t mc, int64_t p0, int64_t kc, T* dst) {
  constexpr int MR = Blocking<T>::MR;
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int mr = int(std::min<int64_t>(MR, mc - ir));
    T* d = dst + ir * kc;
    if (!trans) {
      const T* rows[MR];
      for (int i = 0; i < mr; ++i) rows[i] = a + (i0 + ir + i) * lda + p0;
      if (mr == MR) {
        for (int64_t p = 0; p < kc; ++p)
          for (int i = 0; i < MR; ++i) d[p * MR + i] = rows[i][p];
      } else {
        for (int64_t p = 0; p < kc; ++p)
          for (int i = 0; i < mr; ++i) d[p * MR + i] = rows[i][p];
      }
    } else {
      for (int64_t p = 0; p < kc; ++p) {
        const T* s = a + (p0 + p) * lda + i0 + ir;
        for (int i = 0; i < mr; ++i) d[p * MR + i] = s[i];
      }
    }
  }
}

#if SL_GEMM_AVX2
// Transposes 8 rows of 8 floats (src rows at stride ld) into 8 rows written at dst + q * dst_ld.
inline void transpose8x8(const float* src, int64_t ld, float* dst, int64_t dst_ld) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // rows 0-3 (h = 0) and 4-7 (h = 1)
    __m256 lo = t[4 * h], hi = t[4 * h + 1], lo2 = t[4 * h + 2], hi2 = t[4 * h + 3];
    u[4 * h + 0] = _mm256_shuffle_ps(lo, lo2, _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 1] = _mm256_shuffle_ps(lo, lo2, _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * h + 2] = _mm256_shuffle_ps(hi, hi2, _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 3] = _mm256_shuffle_ps(hi, hi2, _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int q = 0; q < 4; ++q) {
    _mm256_storeu_ps(dst + q * dst_ld, _mm256_permute2f128_ps(u[q], u[4 + q], 0x20));
    _mm256_storeu_ps(dst + (q + 4) * dst_ld, _mm256_permute2f128_ps(u[q], u[4 + q], 0x31));
  }
}
inline void transpose4x4(const double* src, int64_t ld, double* dst, int64_t dst_ld) {
  __m256d r0 = _mm256_loadu_pd(src), r1 = _mm256_loadu_pd(src + ld), r2 = _mm256_loadu_pd(src + 2 * ld),
          r3 = _mm256_loadu_pd(src + 3 * ld);
  __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(dst + dst_ld, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(dst + 2 * dst_ld, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(dst + 3 * dst_ld, _mm256_permute2f128_pd(t1, t3, 0x31));
}
// Columns [0, 8 * halves) (float; [0, 4 * halves) for double) of a panel of a transposed B, whose column j
// starts at s + j * ldb: writes d[p * NR + j] for p in [0, returned count), a multiple of the vector width.
inline int64_t pack_b_panel_trans_simd(const float* s, int64_t ldb, int64_t kc, int halves, float* d) {
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8)
    for (int h = 0; h < halves; ++h) transpose8x8(s + 8 * h * ldb + p, ldb, d + p * 16 + 8 * h, 16);
  return p;
}
inline int64_t pack_b_panel_trans_simd(const double* s, int64_t ldb, int64_t kc, int halves, double* d) {
  int64_t p = 0;
  for (; p + 4 <= kc; p += 4)
    for (int h = 0; h < halves; ++h) transpose4x4(s + 4 * h * ldb + p, ldb, d + p * 8 + 4 * h, 8);
  return p;
}
#endif

// B block (kc x nc of op(B), rows from p0, columns from j0) -> panels of NR columns: panel at jr holds
// element (p, jr + j) at dst[jr * kc + p * NR + j]; columns past nc are zero.
template <class T>
void pack_b_block(bool trans, const T* b, int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc, T* dst) {
  constexpr int NR = Blocking<T>::NR;
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int nr = int(std::min<int64_t>(NR, nc - jr));
    T* d = dst + jr * kc;
    if (nr < NR) std::fill(d, d + kc * NR, T(0));  // a ragged last panel: zero padding first
    if (!trans) {
      const T* s = b + p0 * ldb + j0 + jr;
      if (nr == NR) {
        for (int64_t p = 0; p < kc; ++p)
          for (int j = 0; j < NR; ++j) d[p * NR + j] = s[p * ldb + j];
      } else {
        for (int64_t p = 0; p < kc; ++p)
          for (int j = 0; j < nr; ++j) d[p * NR + j] = s[p * ldb + j];
      }
    } else {  // op(B)(p, j) = b[j * ldb + p]: transposed in vector-sized squares, the rest element by element
      const T* s = b + (j0 + jr) * ldb + p0;
      int64_t p_done = 0;
      int j_done = 0;
#if SL_GEMM_AVX2
      constexpr int kHalf = NR / 2;
      const int halves = nr / kHalf;
      if (halves > 0) {
        p_done = pack_b_panel_trans_simd(s, ldb, kc, halves, d);
        j_done = halves * kHalf;
      }
#endif
      for (int j = 0; j < nr; ++j)
        for (int64_t p = j < j_done ? p_done : 0; p < kc; ++p) d[p * NR + j] = s[j * ldb + p];
    }
  }
}

// ---- the blocked algorithm on one tile of C ---------------------------------------------------------------
template <class T>
struct ASource {
  bool trans = false;
  const T* a = nullptr;  // unpacked matrix (when packed == nullptr)
  int64_t lda = 0;
  const T* packed = nullptr;  // pre-packed by pack_a: block (pc, rows i..) at packed + pc * m_round + i * kc
  int64_t m_round = 0;
};
template <class T>
struct BSource {
  bool trans = false;
  const T* b = nullptr;
  int64_t ldb = 0;
};

template <class T>
void macro_kernel(int64_t mc, int64_t nc, int64_t kc, T alpha, const T* pa, const T* pb, T beta, T* c, int64_t ldc) {
  constexpr int MR = Blocking<T>::MR, NR = Blocking<T>::NR;
  const T alpha_beta[2] = {alpha, beta};
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int nr = int(std::min<int64_t>(NR, nc - jr));
    const T* bp = pb + jr * kc;
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const int mr = int(std::min<int64_t>(MR, mc - ir));
      kMicroKernels<T>[mr](kc, pa + ir * kc, bp, c + ir * ldc + jr, ldc, nr, alpha_beta);
    }
  }
}

// C tile (m x n at c) = alpha * op(A)[i_off:, :] op(B)[:, j_off:] + beta * C tile, on the calling thread.
template <class T>
void gemm_tile(int64_t m, int64_t n, int64_t k, T alpha, const ASource<T>& A, int64_t i_off, const BSource<T>& B,
               int64_t j_off, T beta, T* c, int64_t ldc) {
  using Bk = Blocking<T>;
  T* buf_b = static_cast<T*>(thread_scratch(
      kScratchPackB,
      size_t(std::min<int64_t>(Bk::KC, k) * round_up(std::min<int64_t>(Bk::NC, n), Bk::NR)) * sizeof(T)));
  T* buf_a =
      A.packed
          ? nullptr
          : static_cast<T*>(thread_scratch(
                kScratchPackA,
                size_t(std::min<int64_t>(Bk::KC, k) * round_up(std::min<int64_t>(Bk::MC, m), Bk::MR)) * sizeof(T)));
  for (int64_t jc = 0; jc < n; jc += Bk::NC) {
    const int64_t nc = std::min<int64_t>(Bk::NC, n - jc);
    for (int64_t pc = 0; pc < k; pc += Bk::KC) {
      const int64_t kc = std::min<int64_t>(Bk::KC, k - pc);
      const T bet = pc == 0 ? beta : T(1);
      pack_b_block(B.trans, B.b, B.ldb, pc, kc, j_off + jc, nc, buf_b);
      for (int64_t ic = 0; ic < m; ic += Bk::MC) {
        const int64_t mc = std::min<int64_t>(Bk::MC, m - ic);
        const T* pa;
        if (A.packed) {
          pa = A.packed + pc * A.m_round + (i_off + ic) * kc;
        } else {
          pack_a_block(A.trans, A.a, A.lda, i_off + ic, mc, pc, kc, buf_a);
          pa = buf_a;
        }
        macro_kernel(mc, nc, kc, alpha, pa, buf_b, bet, c + ic * ldc + jc, ldc);
      }
    }
  }
}

template <class T>
void scale_c(int64_t m, int64_t n, T beta, T* c, int64_t ldc) {
  if (beta == T(1)) return;
  for (int64_t i = 0; i < m; ++i) {
    T* r = c + i * ldc;
    if (beta == T(0))
      std::fill(r, r + n, T(0));
    else
      for (int64_t j = 0; j < n; ++j) r[j] *= beta;
  }
}

// Splits C into a tm x tn grid of tiles, one per thread, and runs gemm_tile on each.
template <class T>
void gemm_driver(int64_t m, int64_t n, int64_t k, T alpha, const ASource<T>& A, const BSource<T>& B, T beta, T* c,
                 int64_t ldc, bool parallel) {
  using Bk = Blocking<T>;
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == T(0)) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  // Below ~2 MFLOP (tens of microseconds on one core) waking the other threads costs more than it saves,
  // and on a busy machine a parallel region can wait a whole scheduler slice for a thread.
  int threads = 1;
  if (parallel && !omp_in_parallel() && double(m) * double(n) * double(k) >= double(1 << 20))
    threads = region_threads();
  if (threads <= 1) {
    gemm_tile(m, n, k, alpha, A, 0, B, 0, beta, c, ldc);
    return;
  }
  // Cost per thread in units of k: compute ~ mt*nt/16 (FMA-bound), packing ~ nt (+ mt unless A is pre-packed).
  int64_t best_tm = 1, best_mt = m, best_nt = n;
  double best_cost = -1;
  for (int tm = 1; tm <= threads; ++tm) {
    if (threads % tm) continue;
    const int tn = threads / tm;
    const int64_t mt = round_up(ceil_div(m, tm), Bk::MR), nt = round_up(ceil_div(n, tn), Bk::NR);
    const double cost = double(mt) * double(nt) / 16.0 + double(nt) + (A.packed ? 0.0 : double(mt));
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best_tm = tm;
      best_mt = mt;
      best_nt = nt;
    }
  }
  const int64_t tn = threads / best_tm, mt = best_mt, ntile = best_nt;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int64_t i0 = (t / tn) * mt, j0 = (t % tn) * ntile;
    if (i0 < m && j0 < n)
      gemm_tile(std::min(mt, m - i0), std::min(ntile, n - j0), k, alpha, A, i0, B, j0, beta, c + i0 * ldc + j0, ldc);
  }
}

void check_matrix(const Tensor& t, const char* op, const char* name) {
  SL_CHECK(t.defined(), ValueError, op, ": ", name, " is undefined");
  SL_CHECK(t.dim() == 2, ShapeError, op, ": ", name, " must be 2-d, got ", t.str());
  SL_CHECK(t.is_contiguous(), ValueError, op, ": ", name, " must be contiguous");
  SL_CHECK(t.device().is_cpu(), DeviceError, op, ": ", name, " is not on the CPU");
}

}  // namespace

// ---- raw entry points ---------------------------------------------------------------------------------------
template <class T>
void gemm_raw(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
              int64_t ldb, T beta, T* c, int64_t ldc, bool parallel) {
  ASource<T> A;
  A.trans = trans_a;
  A.a = a;
  A.lda = lda;
  BSource<T> B{trans_b, b, ldb};
  gemm_driver(m, n, k, alpha, A, B, beta, c, ldc, parallel);
}

template <class T>
int64_t packed_a_size(int64_t m, int64_t k) {
  return round_up(std::max<int64_t>(m, 1), Blocking<T>::MR) * std::max<int64_t>(k, 1);
}

// Layout: K split into KC blocks; block pc occupies [pc * m_round, (pc + kc) * m_round) and holds the
// MR-row panels of rows 0..m, so any MR-aligned row range of any K block is a pack_a_block image.
template <class T>
void pack_a(bool trans_a, int64_t m, int64_t k, const T* a, int64_t lda, T* dst) {
  const int64_t m_round = round_up(m, Blocking<T>::MR);
  for (int64_t pc = 0; pc < k; pc += Blocking<T>::KC) {
    const int64_t kc = std::min<int64_t>(Blocking<T>::KC, k - pc);
    pack_a_block(trans_a, a, lda, 0, m, pc, kc, dst + pc * m_round);
  }
}

template <class T>
void gemm_packed_a(int64_t m, int64_t n, int64_t k, T alpha, const T* packed_a, bool trans_b, const T* b, int64_t ldb,
                   T beta, T* c, int64_t ldc, bool parallel) {
  ASource<T> A;
  A.packed = packed_a;
  A.m_round = round_up(m, Blocking<T>::MR);
  BSource<T> B{trans_b, b, ldb};
  gemm_driver(m, n, k, alpha, A, B, beta, c, ldc, parallel);
}

template void gemm_raw<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                              int64_t, float, float*, int64_t, bool);
template void gemm_raw<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                               int64_t, double, double*, int64_t, bool);
template int64_t packed_a_size<float>(int64_t, int64_t);
template int64_t packed_a_size<double>(int64_t, int64_t);
template void pack_a<float>(bool, int64_t, int64_t, const float*, int64_t, float*);
template void pack_a<double>(bool, int64_t, int64_t, const double*, int64_t, double*);
template void gemm_packed_a<float>(int64_t, int64_t, int64_t, float, const float*, bool, const float*, int64_t, float,
                                   float*, int64_t, bool);
template void gemm_packed_a<double>(int64_t, int64_t, int64_t, double, const double*, bool, const double*, int64_t,
                                    double, double*, int64_t, bool);

// ---- tensor-level API (kernels/backend_api.inc) -------------------------------------------------------------
void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, double alpha, double beta) {
  check_matrix(a, "gemm", "A");
  check_matrix(b, "gemm", "B");
  check_matrix(c, "gemm", "C");
  SL_CHECK(a.dtype() == b.dtype() && a.dtype() == c.dtype(), ValueError, "gemm: dtypes differ (", a.str(), ", ",
           b.str(), ", ", c.str(), ")");
  const int64_t m = trans_a ? a.size(1) : a.size(0), k = trans_a ? a.size(0) : a.size(1);
  const int64_t kb = trans_b ? b.size(1) : b.size(0), n = trans_b ? b.size(0) : b.size(1);
  SL_CHECK(k == kb, ShapeError, "gemm: inner dimensions differ: op(A) is ", m, "x", k, ", op(B) is ", kb, "x", n);
  SL_CHECK(c.size(0) == m && c.size(1) == n, ShapeError, "gemm: C is ", c.shape().str(), ", expected [", m, ", ", n,
           "]");
  dispatch_float(a, "gemm", [&](auto tag) {
    using T = decltype(tag);
    gemm_raw<T>(trans_a, trans_b, m, n, k, T(alpha), a.data<T>(), a.size(1), b.data<T>(), b.size(1), T(beta),
                c.data<T>(), n, true);
  });
}

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, bool relu) {
  check_matrix(x, "linear", "x");
  check_matrix(w, "linear", "weight");
  check_matrix(y, "linear", "y");
  const int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  SL_CHECK(w.size(1) == in, ShapeError, "linear: x ", x.str(), " has ", in, " features but weight ", w.str(),
           " expects ", w.size(1));
  check_shape(y, Shape{n, out}, "linear output");
  if (b.defined()) check_shape(b, Shape{out}, "linear bias");
  dispatch_float(x, "linear", [&](auto tag) {
    using T = decltype(tag);
    T* py = y.data<T>();
    T beta = T(0);
    if (b.defined()) {  // y rows start as the bias, the product accumulates onto them
      const T* pb = b.data<T>();
      for (int64_t i = 0; i < n; ++i) std::memcpy(py + i * out, pb, size_t(out) * sizeof(T));
      beta = T(1);
    }
    gemm_raw<T>(false, true, n, out, in, T(1), x.data<T>(), in, w.data<T>(), in, beta, py, out, true);
    if (relu)
      for (int64_t i = 0; i < n * out; ++i) py[i] = py[i] > T(0) ? py[i] : T(0);
  });
}

void linear_backward(const Tensor& x, const Tensor& w, const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb) {
  check_matrix(x, "linear backward", "x");
  check_matrix(w, "linear backward", "weight");
  check_matrix(gy, "linear backward", "grad_out");
  const int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  check_shape(gy, Shape{n, out}, "linear backward grad_out");
  if (gx.defined()) check_shape(gx, Shape{n, in}, "linear backward grad_x");
  if (gw.defined()) check_shape(gw, Shape{out, in}, "linear backward grad_weight");
  if (gb.defined()) check_shape(gb, Shape{out}, "linear backward grad_bias");
  dispatch_float(x, "linear backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pgy = gy.data<T>();
    if (gx.defined())  // gx [n, in] = gy [n, out] . W [out, in]
      gemm_raw<T>(false, false, n, in, out, T(1), pgy, out, w.data<T>(), in, T(0), gx.data<T>(), in, true);
    if (gw.defined())  // gw [out, in] = gy^T [out, n] . x [n, in]
      gemm_raw<T>(true, false, out, in, n, T(1), pgy, out, x.data<T>(), in, T(0), gw.data<T>(), in, true);
    if (gb.defined()) {  // gb = column sums of gy, rows added in order
      T* pgb = gb.data<T>();
      std::fill(pgb, pgb + out, T(0));
      for (int64_t i = 0; i < n; ++i) {
        const T* r = pgy + i * out;
        for (int64_t j = 0; j < out; ++j) pgb[j] += r[j];
      }
    }
  });
}

}  // namespace sl::cpu
