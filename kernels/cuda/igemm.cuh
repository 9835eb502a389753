// The tiled, register-blocked (implicit) GEMM engine behind gemm.cu, conv2d.cu and conv_transpose2d.cu.
//
//   C[M x N] = A[M x K] . B[K x N]    where a "problem" says how to read A(m, k) and B(k, n) from memory (a plain
//                                     matrix, or an im2col view of an image computed on the fly) and where C goes.
//
// A block computes a BM x BN tile of C with NT = (BM/TM)(BN/TN) threads, each holding a TM x TN sub-tile in
// registers. K is walked in steps of BK: the next A and B slices are fetched from global memory into registers
// while the current ones (double-buffered in shared memory) feed the outer products, so one __syncthreads per
// step suffices. A thread's rows are TM/4 groups of 4 (spaced BM/(TM/4) apart) and likewise its columns, so the
// fragments are read as 16-byte vectors without bank conflicts and the epilogue writes contiguous runs.
// Small problems split K over blockIdx.z (split-K): each slice writes a partial tile to a workspace, and a second
// kernel adds the slices in a fixed order and applies the problem's epilogue, so results are deterministic.
// (Finishing in the last block to arrive at a tile saves that launch but serialises the sum over slices in one
// block: measured 2-5x slower on the project's split shapes, so the second kernel stays; docs/cuda-kernels.md.)
//
// A problem P provides, for T = float or double:
//   static constexpr bool kAContigK;          A(m, k) and A(m, k+1) adjacent in memory (else A(m+1, k) is)
//   static constexpr bool kBContigN;          B(k, n) and B(k, n+1) adjacent in memory (else B(k+1, n) is)
//   __device__ T a(int m, int k) const;       only called for m < M, k < K
//   __device__ T b(int k, int n) const;       only called for k < K, n < N (returns 0 for padding taps)
//   __device__ void store(int m, int n, T v) const;   the final value of C(m, n) (alpha, beta, bias applied there)
#pragma once
#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <utility>

#include "kernels/cuda/common.cuh"

namespace sl::cuda::igemm {

template <int BM_, int BN_, int BK_, int TM_, int TN_, int MINB_>
struct Cfg {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int MINB = MINB_;  // blocks per SM the register budget is capped for (__launch_bounds__)
  static constexpr int NT = (BM / TM) * (BN / TN);
  static constexpr int PAD = 4;  // keeps rows 16-byte aligned and the transposing stores conflict-free
  static_assert(TM % 4 == 0 && TN % 4 == 0, "fragments are read 4 at a time");
  static_assert((BM * BK) % NT == 0 && (BN * BK) % NT == 0, "each thread loads whole elements");
  static_assert(NT % BM == 0 && NT % BN == 0 && NT % BK == 0, "loads tile the slices in whole rows");
};

// Four consecutive T from shared memory (16-byte aligned): one LDS.128 for float, two for double.
template <class T>
__device__ __forceinline__ void ld4(const T* s, T* d) {
#pragma unroll
  for (int i = 0; i < 4; ++i) d[i] = s[i];
}
template <>
__device__ __forceinline__ void ld4<float>(const float* s, float* d) {
  float4 v = *reinterpret_cast<const float4*>(s);
  d[0] = v.x;
  d[1] = v.y;
  d[2] = v.z;
  d[3] = v.w;
}

// Staged B (a problem with kStagedB = true, see igemm_mma.cuh): the thread's column is described once (b_col), each
// BK-slice once (b_slice: its base address, one filter tap), and element kk of the slice is base + kk * b_kstride.
template <class P, bool kStaged>
struct BColOf {
  struct type {};
};
template <class P>
struct BColOf<P, true> {
  using type = typename P::BCol;
};
// Staged K (kStagedK = true, with kAContigK and !kBContigN: the weight gradient, K = image positions): a thread
// loads one k per slice (kk = tid % BK) for all its A rows and B columns, so the position is decomposed once per
// slice (k_pos), each B column once per thread (n_col), and an element is an add and a bounds check:
//   struct KPos;  __device__ KPos k_pos(int k) const;
//   __device__ const T* a_at(const KPos&, int m) const;                    address of A(m, k)
//   struct NCol;  __device__ NCol n_col(int n) const;
//   __device__ const T* b_at(const KPos&, const NCol&, bool& ok) const;    address of B(k, n); ok = false: zero
template <class P, class = void>
struct is_staged_k : std::false_type {};
template <class P>
struct is_staged_k<P, std::void_t<decltype(P::kStagedK)>> : std::bool_constant<P::kStagedK> {};
template <class P, bool kStaged>
struct KTypes {
  struct KPos {};
  struct NCol {};
};
template <class P>
struct KTypes<P, true> {
  using KPos = typename P::KPos;
  using NCol = typename P::NCol;
};

template <class P, class = void>
struct is_staged_b : std::false_type {};
template <class P>
struct is_staged_b<P, std::void_t<decltype(P::kStagedB)>> : std::bool_constant<P::kStagedB> {};

// Which element of the A and B slices load j of thread tid fetches, in both engines and every loader (plain,
// staged B, staged K): consecutive threads take adjacent memory (along K where the operand is contiguous along K,
// else along M resp. N), so the coordinate along the contiguous direction does not depend on j and whatever a
// problem derives from it (an image position, say) is computed once per thread, outside the K loop.
template <class P, int BM, int BK, int NT>
__device__ __forceinline__ void a_slot(int tid, int j, int& mm, int& kk) {
  if constexpr (P::kAContigK) {
    mm = tid / BK + j * (NT / BK);
    kk = tid % BK;
  } else {
    kk = tid / BM + j * (NT / BM);
    mm = tid % BM;
  }
}
template <class P, int BN, int BK, int NT>
__device__ __forceinline__ void b_slot(int tid, int j, int& kk, int& nn) {
  if constexpr (P::kBContigN) {
    kk = tid / BN + j * (NT / BN);
    nn = tid % BN;
  } else {
    nn = tid / BK + j * (NT / BK);
    kk = tid % BK;
  }
}

// A thread's staged-loader state, set up once before the K loop (both engines, the same element -> thread map):
// its B column (staged B) or its B_PER columns (staged K).
template <class P, int B_PER, int BK, int BN, int NT>
struct StagedSetup {
  static constexpr bool kB = is_staged_b<P>::value, kK = is_staged_k<P>::value;
  static_assert(!kB || P::kBContigN, "staged B columns are fixed per thread");
  static_assert(!kK || (P::kAContigK && !P::kBContigN), "staged K: one k per thread and slice");
  typename BColOf<P, kB>::type bcol{};
  typename KTypes<P, kK>::NCol ncol[kK ? B_PER : 1];
  __device__ StagedSetup(const P& p, int tid, int n0, int N) {
    if constexpr (kB) {
      if (n0 + tid % BN < N) bcol = p.b_col(n0 + tid % BN);
    }
    if constexpr (kK) {
#pragma unroll
      for (int j = 0; j < B_PER; ++j) {
        int kk, nn;
        b_slot<P, BN, BK, NT>(tid, j, kk, nn);
        if (n0 + nn < N) ncol[j] = p.n_col(n0 + nn);
      }
    }
  }
};

// ws == nullptr: C is stored through p.store. Otherwise slice z = blockIdx.z writes its partial tile to
// ws[(z * M + m) * N + n] and splitk_finish applies the epilogue.
// Batched problems (kBatched = true, `__device__ P batch(int z) const`: the problem of batch z): blockIdx.z
// is the batch (no split-K); every batch has the same M, N and K.
template <class P, class = void>
struct is_batched : std::false_type {};
template <class P>
struct is_batched<P, std::void_t<decltype(P::kBatched)>> : std::bool_constant<P::kBatched> {};

template <class T, class C, class P>
__device__ __forceinline__ void igemm_tile(const P& p, int M, int N, int K, int kbeg, int kend, T* ws);

template <class T, class C, class P>
__global__ void __launch_bounds__(C::NT, C::MINB) igemm_kernel(const P p, int M, int N, int K, int kchunk, T* ws) {
  if constexpr (is_batched<P>::value) {
    igemm_tile<T, C>(p.batch(int(blockIdx.z)), M, N, K, 0, K, ws);
  } else {
    const int kbeg = blockIdx.z * kchunk;
    igemm_tile<T, C>(p, M, N, K, kbeg, min(K, kbeg + kchunk), ws);
  }
}

template <class T, class C, class P>
__device__ __forceinline__ void igemm_tile(const P& p, int M, int N, int K, int kbeg, int kend, T* ws) {
  constexpr int BM = C::BM, BN = C::BN, BK = C::BK, TM = C::TM, TN = C::TN, NT = C::NT, PAD = C::PAD;
  constexpr int A_PER = BM * BK / NT, B_PER = BN * BK / NT;
  constexpr int TX = BN / TN;              // threads along n
  constexpr int MG = TM / 4, NG = TN / 4;  // row / column groups of 4 per thread
  constexpr int MSTEP = BM / MG, NSTEP = BN / NG;
  __shared__ __align__(16) T As[2][BK][BM + PAD];
  __shared__ __align__(16) T Bs[2][BK][BN + PAD];

  const int tid = threadIdx.x;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

  T ra[A_PER], rb[B_PER];
  using Staged = StagedSetup<P, B_PER, BK, BN, NT>;
  constexpr bool kStaged = Staged::kB, kStagedK = Staged::kK;
  static_assert(!kStaged || std::is_same_v<T, float>, "staged B: float only");
  const int my_n = n0 + tid % BN;  // staged B: the one column this thread loads
  const Staged st(p, tid, n0, N);
  auto a_coord = [&](int j, int& mm, int& kk) { a_slot<P, BM, BK, NT>(tid, j, mm, kk); };
  auto b_coord = [&](int j, int& kk, int& nn) { b_slot<P, BN, BK, NT>(tid, j, kk, nn); };
  auto fetch = [&](int k0) {
    if constexpr (kStagedK) {
      const int k = k0 + tid % BK;  // the one k of this thread (a_slot / b_slot: kk = tid % BK here)
      const bool kok = k < kend;
      typename KTypes<P, true>::KPos kp{};
      if (kok) kp = p.k_pos(k);
#pragma unroll
      for (int j = 0; j < A_PER; ++j) {
        int mm, kk;
        a_coord(j, mm, kk);
        const int m = m0 + mm;
        ra[j] = kok && m < M ? *p.a_at(kp, m) : T(0);
      }
#pragma unroll
      for (int j = 0; j < B_PER; ++j) {
        int kk, nn;
        b_coord(j, kk, nn);
        const int n = n0 + nn;
        bool ok = kok && n < N;
        const T* src = nullptr;
        if (ok) src = p.b_at(kp, st.ncol[j], ok);
        rb[j] = ok ? *src : T(0);
      }
    } else {
#pragma unroll
      for (int j = 0; j < A_PER; ++j) {
        int mm, kk;
        a_coord(j, mm, kk);
        const int m = m0 + mm, k = k0 + kk;
        ra[j] = (m < M && k < kend) ? p.a(m, k) : T(0);
      }
      if constexpr (kStaged) {
        bool sok = my_n < N;
        const T* base = nullptr;
        if (sok) base = p.b_slice(st.bcol, k0, sok);
#pragma unroll
        for (int j = 0; j < B_PER; ++j) {
          int kk, nn;
          b_coord(j, kk, nn);
          rb[j] = sok && k0 + kk < kend ? base[kk * p.b_kstride] : T(0);
        }
      } else {
#pragma unroll
        for (int j = 0; j < B_PER; ++j) {
          int kk, nn;
          b_coord(j, kk, nn);
          const int n = n0 + nn, k = k0 + kk;
          rb[j] = (n < N && k < kend) ? p.b(k, n) : T(0);
        }
      }
    }
  };
  auto stash = [&](int buf) {
#pragma unroll
    for (int j = 0; j < A_PER; ++j) {
      int mm, kk;
      a_coord(j, mm, kk);
      As[buf][kk][mm] = ra[j];
    }
#pragma unroll
    for (int j = 0; j < B_PER; ++j) {
      int kk, nn;
      b_coord(j, kk, nn);
      Bs[buf][kk][nn] = rb[j];
    }
  };

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  const int tx = tid % TX, ty = tid / TX;
  if (kbeg < kend) {
    fetch(kbeg);
    stash(0);
    __syncthreads();
    int buf = 0;
    for (int k0 = kbeg; k0 < kend; k0 += BK) {
      const bool more = k0 + BK < kend;
      if (more) fetch(k0 + BK);  // global loads in flight while this step computes
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        T af[TM], bf[TN];
#pragma unroll
        for (int g = 0; g < MG; ++g) ld4(&As[buf][kk][g * MSTEP + ty * 4], af + 4 * g);
#pragma unroll
        for (int g = 0; g < NG; ++g) ld4(&Bs[buf][kk][g * NSTEP + tx * 4], bf + 4 * g);
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] = fma(af[i], bf[j], acc[i][j]);
      }
      if (more) {
        stash(buf ^ 1);  // the other buffer was last read before the previous barrier
        __syncthreads();
        buf ^= 1;
      }
    }
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int m = m0 + (i / 4) * MSTEP + ty * 4 + (i % 4);
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + (j / 4) * NSTEP + tx * 4 + (j % 4);
      if (n >= N) continue;
      if (ws)
        ws[(int64_t(blockIdx.z) * M + m) * N + n] = acc[i][j];
      else
        p.store(m, n, acc[i][j]);
    }
  }
}

// C(m, n) = sum over the slices, in slice order, then the problem's epilogue.
template <class T, class P>
__global__ void splitk_finish(const P p, int M, int N, int slices, const T* ws) {
  const int64_t mn = int64_t(M) * N;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < mn; i += int64_t(gridDim.x) * blockDim.x) {
    T s = ws[i];
    for (int z = 1; z < slices; ++z) s += ws[z * mn + i];
    const int m = int(i / N), n = int(i - int64_t(m) * N);
    p.store(m, n, s);
  }
}
// Many slices (>= kWarpFinishSlices): one warp per element, lane l adds slices l, l + 32, ... in order and the
// warp tree adds the lanes (a fixed order: deterministic). The 32 lanes' loads are in flight at once, where a
// thread per element would wait for `slices` dependent loads (tiny problems with long K: LeNet's weight grads).
constexpr int kWarpFinishSlices = 16;
constexpr int64_t kWarpFinishMaxElems = 16384;
template <class T, class P>
__global__ void splitk_finish_warp(const P p, int M, int N, int slices, const T* ws) {
  const int64_t mn = int64_t(M) * N;
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t i = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); i < mn; i += warps) {
    T s = T(0);
    for (int z = lane; z < slices; z += 32) s += ws[z * mn + i];
    s = warp_sum(s);
    if (lane == 0) {
      const int m = int(i / N), n = int(i - int64_t(m) * N);
      p.store(m, n, s);
    }
  }
}
// Launches the finishing kernel that suits the split.
template <class T, class P>
void launch_splitk_finish(const P& p, int M, int N, int slices, const T* ws, Device dev, cudaStream_t s,
                          const char* name) {
  const int64_t mn = int64_t(M) * N;
  const int64_t cap = int64_t(cuda_rt::sm_count(dev)) * 8;
  // The warp finish suits tiny outputs with many slices (one long dependent chain per thread otherwise); for
  // large outputs the thread finish reads each slice as one coalesced line and is faster (docs/cuda-kernels.md).
  if (slices >= kWarpFinishSlices && mn <= kWarpFinishMaxElems) {
    const int blocks = int(std::min<int64_t>((mn + 7) / 8, cap));  // 8 warps (elements) per block
    splitk_finish_warp<T, P><<<blocks, 256, 0, s>>>(p, M, N, slices, ws);
  } else {
    const int blocks = int(std::min<int64_t>((mn + 255) / 256, cap));
    splitk_finish<T, P><<<blocks, 256, 0, s>>>(p, M, N, slices, ws);
  }
  SL_CUDA_LAUNCH(name);
}

// ---- the configurations and the choice between them ---------------------------------------------------------
//           BM   BN  BK TM TN MINB    threads
using Big = Cfg<128, 128, 8, 8, 8, 2>;     // 256   <= 128 registers (a few hoisted addresses spill)
using Wide = Cfg<64, 128, 8, 8, 8, 3>;     // 128   M around 64 (conv channels); <= 168 registers
using Small = Cfg<64, 64, 8, 4, 4, 4>;     // 256   more, smaller tiles
using Thin = Cfg<32, 128, 8, 4, 8, 4>;     // 128   M <= 32 (small channel counts, small batches)
using Narrow = Cfg<64, 32, 8, 4, 4, 4>;    // 128   N <= 32 (weight gradients of thin layers)
using Big16 = Cfg<128, 128, 16, 8, 8, 2>;  // 256   Big with twice the K per step (half the barriers)
using Wide16 = Cfg<64, 128, 16, 8, 8, 2>;  // 128
using Long = Cfg<64, 256, 8, 8, 8, 2>;     // 256   M around 64 with Big's 8x8 thread tile (conv12's 64 channels)
using Small32 = Cfg<64, 64, 32, 4, 4, 2>;  // 256   Small with K steps of 32: short-K GEMMs with large outputs
using SmallF64 = Cfg<64, 64, 8, 4, 4, 2>;  // the float64 path (Small's tile)
constexpr int kNumCfgs = 9, kSmallCfg = 2;
static_assert(kNumCfgs == kGemmConfigs, "kernels/cuda/cuda.h lists as many configurations");

struct Plan {
  int cfg = 0;     // index into kCfgs
  int slices = 1;  // split-K factor
  int kchunk = 0;  // K per slice, a multiple of BK
};

// Test hook (sl::cuda::debug_force_gemm_plan): a forced configuration / split factor for the float path.
inline int g_forced_cfg = -1, g_forced_slices = 0;
// SPLITLEAK_GEMM_PLAN="cfg[,slices]" forces the same for every float GEMM of the process (tuning runs).
inline void env_plan(int& cfg, int& slices) {
  static const std::pair<int, int> forced = [] {
    const char* v = std::getenv("SPLITLEAK_GEMM_PLAN");
    int c = -1, sl = 0;
    if (v && std::sscanf(v, "%d,%d", &c, &sl) < 1) c = -1;
    return std::pair<int, int>{c >= 0 && c < kNumCfgs ? c : -1, sl > 0 ? sl : 0};
  }();
  if (forced.first >= 0) {
    cfg = forced.first;
    slices = forced.second;
  }
}

struct CfgInfo {
  int bm, bn, bk;
  double rate;  // measured throughput of an SM running this configuration (relative units; H200, docs/cuda-kernels.md)
  int threads, minb;        // threads per block; blocks per SM at which `rate` was measured
  int min_k = 0;            // the cost model leaves the configuration out for shorter K,
  int max_k = 0;            // for longer K (0: no limit)
  int64_t min_outputs = 0;  // and for fewer than this many outputs M x N
  bool tap_safe = true;     // BK <= 16: a K slice stays inside one filter tap of the staged (tap-major) problems
};
// Long only for K >= 128: conv11 forward (K = 27) ran 38 -> 49 us with it. Small32 (K steps of 32) only for short
// K with large outputs, where 8-deep steps leave each step waiting on its loads: CIFAR fc1's weight gradient
// (512 x 2048, K = 128) 15.5 us on Small, 13.4 on Small32 (rate 2.36 x 15.5 / 13.4); measured elsewhere it loses
// (fc1 backward-data, K = 512, unsplit: 29.9 against 19.3 us).
inline constexpr CfgInfo kCfgs[kNumCfgs] = {{128, 128, 8, 3.2, 256, 2},
                                            {64, 128, 8, 2.3, 128, 3},
                                            {64, 64, 8, 2.36, 256, 4},
                                            {32, 128, 8, 1.8, 128, 4},
                                            {64, 32, 8, 2.2, 128, 4},
                                            {128, 128, 16, 3.25, 256, 2},
                                            {64, 128, 16, 2.3, 128, 2},
                                            {64, 256, 8, 3.0, 256, 2, 128},
                                            {64, 64, 32, 2.73, 256, 2, 64, 512, int64_t(1) << 18, false}};

// An SM reaches its rate only with enough warps to hide latency (~16, i.e. 512 threads); fewer resident
// threads run proportionally slower. Relative to the occupancy at which the rate was measured.
// SPLITLEAK_GEMM_COST=flat turns the term off (the model before the term), for A/B measurements.
inline bool occupancy_term_on() {
  static const bool on = [] {
    const char* v = std::getenv("SPLITLEAK_GEMM_COST");
    return !(v && std::string(v) == "flat");
  }();
  return on;
}
inline double occupancy_factor(const CfgInfo& ci, int64_t blocks_per_sm) {
  if (!occupancy_term_on()) return 1.0;
  auto busy = [&](int64_t b) { return std::min(1.0, double(b) * ci.threads / 512.0); };
  return busy(std::min<int64_t>(blocks_per_sm, ci.minb)) / busy(ci.minb);
}

// The cost model: the busiest SM runs ceil(blocks / SMs) blocks of bm x bn x kchunk multiply-adds at the
// configuration's rate; a split adds the workspace traffic (slices + 1 passes over M x N floats at ~3 TB/s) and
// a launch. Units: 35700 per microsecond, from the measured rate of the Big tiles.
// only_cfg >= 0 restricts the choice to that configuration; force_slices > 0 imposes the split.
// staged: the problem reads tap-major K slices (kStagedB / kStagedK); a forced configuration that is not tap_safe
// falls back to Small there.
inline Plan plan(int M, int N, int K, int sms, int only_cfg, int force_slices, int batches = 1, bool staged = false) {
  constexpr double kUnitsPerUs = 35700;
  if (staged && only_cfg >= 0 && !kCfgs[only_cfg].tap_safe) only_cfg = kSmallCfg;
  Plan best;
  double best_cost = 1e300;
  for (int c = 0; c < kNumCfgs; ++c) {
    if (only_cfg >= 0 && c != only_cfg) continue;
    const CfgInfo& ci = kCfgs[c];
    if (staged && !ci.tap_safe) continue;
    if (only_cfg < 0 && (K < ci.min_k || (ci.max_k > 0 && K > ci.max_k) || int64_t(M) * N < ci.min_outputs)) continue;
    const int64_t tiles = int64_t((M + ci.bm - 1) / ci.bm) * ((N + ci.bn - 1) / ci.bn) * batches;
    const int ksteps = std::max(1, (K + ci.bk - 1) / ci.bk);
    const int max_s = std::max(1, std::min<int>(ksteps / 4, 256));  // at least 4 steps per slice
    const int s_first = force_slices > 0 ? force_slices : 1, s_last = force_slices > 0 ? force_slices : max_s;
    for (int s = s_first; s <= s_last; s = s < 4 ? s + 1 : s * 2) {
      const int steps = (ksteps + s - 1) / s;
      const int slices = (ksteps + steps - 1) / steps;
      const int64_t blocks = tiles * slices;
      const int64_t per_sm = (blocks + sms - 1) / sms;
      double cost = double(per_sm) * double(ci.bm) * ci.bn * steps * ci.bk / (ci.rate * occupancy_factor(ci, per_sm));
      if (slices > 1) cost += ((slices + 1.0) * M * N * 4 / 3e6 + 4.0) * kUnitsPerUs;
      if (cost < best_cost) {
        best_cost = cost;
        best.cfg = c;
        best.slices = slices;
        best.kchunk = steps * ci.bk;
      }
    }
  }
  return best;
}

template <class T, class C, class P>
void launch_cfg(const P& p, int M, int N, int K, const Plan& pl, const Tensor& on, cudaStream_t s, const char* name,
                int batches = 1) {
  dim3 grid(unsigned((N + C::BN - 1) / C::BN), unsigned((M + C::BM - 1) / C::BM), unsigned(pl.slices * batches));
  SL_CHECK(grid.y <= 65535u && grid.z <= 65535u, ValueError, name, ": matrix of ", M, " rows is too large");
  if (pl.slices == 1 || is_batched<P>::value) {
    igemm_kernel<T, C, P><<<grid, C::NT, 0, s>>>(p, M, N, K, pl.kchunk, static_cast<T*>(nullptr));
    SL_CUDA_LAUNCH(name);
    return;
  }
  if constexpr (!is_batched<P>::value) {
    DeviceBuffer ws(on.device(), size_t(pl.slices) * size_t(M) * size_t(N) * sizeof(T));
    igemm_kernel<T, C, P><<<grid, C::NT, 0, s>>>(p, M, N, K, pl.kchunk, ws.as<T>());
    SL_CUDA_LAUNCH(name);
    launch_splitk_finish<T>(p, M, N, pl.slices, ws.as<T>(), on.device(), s, name);
  }
}

}  // namespace sl::cuda::igemm

#include "kernels/cuda/igemm_mma.cuh"

namespace sl::cuda::igemm {

// Problems that are convolutions say so (kConv = true): their precision is kern::cuda_matmul_precision().conv,
// the others' .gemm.
template <class P, class = void>
struct is_conv : std::false_type {};
template <class P>
struct is_conv<P, std::void_t<decltype(P::kConv)>> : std::bool_constant<P::kConv> {};

// Runs problem p (C is M x N, inner dimension K) on `on`'s device and stream. float: the tensor-core path
// (kernels/cuda/igemm_mma.cuh) when the precision asks for TF32 or 3xTF32, else the cost model picks the FFMA
// tile shape and split; double: the Small tiles only (a simple path, still split-K for long K).
template <class T, class P>
void run(const P& p, int M, int N, int K, const Tensor& on, const char* name) {
  if (M <= 0 || N <= 0) return;
  cudaStream_t s = stream_of(on);
  constexpr bool f32 = std::is_same_v<T, float>;
  [[maybe_unused]] constexpr bool conv = is_conv<P>::value;
  if constexpr (f32) {
    const MatmulPrecisions pr = kern::cuda_matmul_precision();
    const MatmulPrecision mine = conv ? pr.conv : pr.gemm;
    if (mine != MatmulPrecision::fp32 && K > 0)
      return run_mma(p, M, N, K, on, name, mine == MatmulPrecision::tf32x3 ? 3 : 1);
  }
  int only = f32 ? g_forced_cfg : kSmallCfg, force_slices = g_forced_slices;
  if (f32 && only < 0) env_plan(only, force_slices);
  const Plan pl = plan(M, N, K, cuda_rt::sm_count(on.device()), only, force_slices, 1,
                       is_staged_b<P>::value || is_staged_k<P>::value);
  if constexpr (f32) {
    switch (pl.cfg) {
      case 0:
        return launch_cfg<T, Big>(p, M, N, K, pl, on, s, name);
      case 1:
        return launch_cfg<T, Wide>(p, M, N, K, pl, on, s, name);
      case 3:
        return launch_cfg<T, Thin>(p, M, N, K, pl, on, s, name);
      case 4:
        return launch_cfg<T, Narrow>(p, M, N, K, pl, on, s, name);
      case 5:
        return launch_cfg<T, Big16>(p, M, N, K, pl, on, s, name);
      case 6:
        return launch_cfg<T, Wide16>(p, M, N, K, pl, on, s, name);
      case 7:
        return launch_cfg<T, Long>(p, M, N, K, pl, on, s, name);
      case 8:
        return launch_cfg<T, Small32>(p, M, N, K, pl, on, s, name);
      default:
        return launch_cfg<T, Small>(p, M, N, K, pl, on, s, name);
    }
  } else {
    launch_cfg<T, SmallF64>(p, M, N, K, pl, on, s, name);
  }
}

// Runs the `batches` problems p.batch(0 .. batches-1) (each M x N, inner dimension K) in one launch: float, FFMA
// tiles, no split-K (the caller splits K into batches where it needs more blocks). cfg >= 0: the caller's tile
// configuration (measured for its problems), unless a test hook or SPLITLEAK_GEMM_PLAN forces one.
template <class P>
void run_batched(const P& p, int batches, int M, int N, int K, const Tensor& on, const char* name, int cfg = -1) {
  static_assert(is_batched<P>::value, "run_batched needs a batched problem");
  if (M <= 0 || N <= 0 || batches <= 0) return;
  cudaStream_t s = stream_of(on);
  int only = g_forced_cfg, unused = 0;
  if (only < 0) env_plan(only, unused);
  if (only < 0) only = cfg;
  const Plan pl = plan(M, N, K, cuda_rt::sm_count(on.device()), only, 1, batches);
  switch (pl.cfg) {
    case 0:
      return launch_cfg<float, Big>(p, M, N, K, pl, on, s, name, batches);
    case 1:
      return launch_cfg<float, Wide>(p, M, N, K, pl, on, s, name, batches);
    case 3:
      return launch_cfg<float, Thin>(p, M, N, K, pl, on, s, name, batches);
    case 4:
      return launch_cfg<float, Narrow>(p, M, N, K, pl, on, s, name, batches);
    case 5:
      return launch_cfg<float, Big16>(p, M, N, K, pl, on, s, name, batches);
    case 6:
      return launch_cfg<float, Wide16>(p, M, N, K, pl, on, s, name, batches);
    case 7:
      return launch_cfg<float, Long>(p, M, N, K, pl, on, s, name, batches);
    case 8:
      return launch_cfg<float, Small32>(p, M, N, K, pl, on, s, name, batches);
    default:
      return launch_cfg<float, Small>(p, M, N, K, pl, on, s, name, batches);
  }
}

}  // namespace sl::cuda::igemm
