// The tensor-core variant of the implicit-GEMM engine (kernels/cuda/igemm.cuh): the same problems (plain
// matrices, im2col views), C = A . B in float32 storage, products on the tensor cores with mma.sync m16n8k8 TF32.
//
//   tf32     each operand rounded to TF32 (10-bit mantissa) once: one mma per product term; error ~ 1e-3 relative.
//   3xtf32   each operand split x = big + small (big = tf32(x), small = tf32(x - big)); a b ~ a_s b_b + a_b b_s +
//            a_b b_b (the small x small term, ~2^-22 relative, is dropped): three mmas, float32-level accuracy.
//
// Loads: every element of the A and B slices is copied global -> shared with a 4-byte cp.async (zero-filled for
// padding taps and out-of-range rows/columns), STAGES slices deep, so the im2col address arithmetic is the only
// per-element work and the copies of the next slices overlap the current slice's mmas; one barrier per slice.
// Shared rows are padded to a pitch of 8 (mod 32) words, so the fragment reads (lane g = lane/4 walks rows,
// t = lane%4 walks k) touch 32 distinct banks.
// Fragments (PTX ISA, mma.m16n8k8 .tf32): A 16x8 row-major a0 (g, t) a1 (g+8, t) a2 (g, t+4) a3 (g+8, t+4);
// B 8x8 col-major b0 (k=t, n=g) b1 (k=t+4, n=g); C 16x8 c0 (g, 2t) c1 (g, 2t+1) c2 (g+8, 2t) c3 (g+8, 2t+1).
//
// A problem P used here also provides, besides the value readers of igemm.cuh:
//   __device__ const float* a_src(int m, int k, bool& ok) const;   address of A(m, k), or any valid address and
//   __device__ const float* b_src(int k, int n, bool& ok) const;   ok = false where the element is a zero tap.
// A "staged" problem (kStagedB = true, with kBContigN) instead describes B column by column and slice by slice,
// so that per element only an add remains (used for convolutions whose K runs tap-major, conv2d.cu):
//   struct BCol;  __device__ BCol b_col(int n) const;                 once per thread (its column n is fixed)
//   __device__ const float* b_slice(const BCol&, int k0, bool& ok) const;   once per BK-slice (one filter tap)
//   int b_kstride;                                                    element kk of the slice: base + kk * b_kstride
#pragma once
#include <cstdint>

namespace sl::cuda::igemm {

template <int BM_, int BN_, int WM_, int WN_, int STAGES_, int MINB_>
struct MmaCfg {
  static constexpr int BM = BM_, BN = BN_, BK = 16, WM = WM_, WN = WN_, STAGES = STAGES_, MINB = MINB_;
  static constexpr int NT = WM * WN * 32;
  static constexpr int WTM = BM / WM, WTN = BN / WN;  // warp tile
  static constexpr int MI = WTM / 16, NI = WTN / 8;   // m16 and n8 tiles per warp
  static constexpr int LDA = BM + 8, LDB = BN + 8;    // row pitch = 8 (mod 32) words
  static constexpr int STAGE_FLOATS = BK * (LDA + LDB);
  static constexpr size_t SMEM = size_t(STAGES) * STAGE_FLOATS * sizeof(float);
  static_assert(WTM % 16 == 0 && WTN % 8 == 0, "warp tiles are whole m16 x n8 tiles");
  static_assert(NT % BM == 0 && NT % BN == 0 && NT % BK == 0, "loads tile the slices in whole rows");
  static_assert((BM * BK) % NT == 0 && (BN * BK) % NT == 0, "each thread loads whole elements");
};

//                         BM   BN  WM WN STAGES MINB   threads  warp tile
using MmaBig = MmaCfg<128, 128, 2, 4, 4, 2>;  //  256      64 x 32
using MmaWide = MmaCfg<64, 128, 2, 2, 4, 2>;  //  128      32 x 64   (M around 64)

__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// 4-byte asynchronous copy global -> shared; with ok == false nothing is read and the word is zero-filled.
__device__ __forceinline__ void cp_async4(float* dst, const float* src, bool ok) {
  const unsigned d = unsigned(__cvta_generic_to_shared(dst));
  const int n = ok ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// kSplit: 1 = tf32, 3 = 3xtf32. ws as in igemm_kernel (split-K partial tiles, or null: store through p.store).
template <class C, class P, int kSplit>
__global__ void __launch_bounds__(C::NT, C::MINB)
    igemm_mma_kernel(const P p, int M, int N, int K, int kchunk, float* ws) {
  constexpr int BM = C::BM, BN = C::BN, BK = C::BK, NT = C::NT, LDA = C::LDA, LDB = C::LDB;
  constexpr int MI = C::MI, NI = C::NI, STAGES = C::STAGES;
  constexpr int A_PER = BM * BK / NT, B_PER = BN * BK / NT;
  extern __shared__ __align__(16) float smem[];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp % C::WM, wn = warp / C::WM;
  const int g = lane >> 2, t = lane & 3;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int kbeg = blockIdx.z * kchunk, kend = min(K, kbeg + kchunk);
  const int ksteps = kend > kbeg ? (kend - kbeg + BK - 1) / BK : 0;

  bool dummy;
  const float* safe = p.a_src(0, 0, dummy);  // a valid address for the zero-filled copies
  using Staged = StagedSetup<P, B_PER, BK, BN, NT>;
  constexpr bool kStaged = Staged::kB, kStagedK = Staged::kK;
  const int my_n = n0 + tid % BN;  // staged B: the one column this thread loads
  const Staged st(p, tid, n0, N);

  // Same element -> thread mapping as igemm_kernel (a_slot / b_slot): consecutive threads take adjacent memory.
  auto issue = [&](int step, int buf) {
    const int k0 = kbeg + step * BK;
    float* as = smem + buf * C::STAGE_FLOATS;
    float* bs = as + BK * LDA;
    if constexpr (kStagedK) {
      const int kk = tid % BK, k = k0 + kk;
      const bool kok = k < kend;
      typename KTypes<P, true>::KPos kp{};
      if (kok) kp = p.k_pos(k);
#pragma unroll
      for (int j = 0; j < A_PER; ++j) {
        int mm, kk_;
        a_slot<P, BM, BK, NT>(tid, j, mm, kk_);
        const int m = m0 + mm;
        const bool ok = kok && m < M;
        cp_async4(&as[kk * LDA + mm], ok ? p.a_at(kp, m) : safe, ok);
      }
#pragma unroll
      for (int j = 0; j < B_PER; ++j) {
        int kk_, nn;
        b_slot<P, BN, BK, NT>(tid, j, kk_, nn);
        const int n = n0 + nn;
        bool ok = kok && n < N;
        const float* src = safe;
        if (ok) src = p.b_at(kp, st.ncol[j], ok);
        cp_async4(&bs[kk * LDB + nn], ok ? src : safe, ok);
      }
    } else {
#pragma unroll
      for (int j = 0; j < A_PER; ++j) {
        int mm, kk;
        a_slot<P, BM, BK, NT>(tid, j, mm, kk);
        const int m = m0 + mm, k = k0 + kk;
        bool ok = m < M && k < kend;
        const float* src = safe;
        if (ok) src = p.a_src(m, k, ok);
        cp_async4(&as[kk * LDA + mm], src, ok);
      }
      if constexpr (kStaged) {
        bool sok = my_n < N;
        const float* base = safe;
        if (sok) base = p.b_slice(st.bcol, k0, sok);
#pragma unroll
        for (int j = 0; j < B_PER; ++j) {
          int kk, nn;
          b_slot<P, BN, BK, NT>(tid, j, kk, nn);
          const bool ok = sok && k0 + kk < kend;
          cp_async4(&bs[kk * LDB + nn], ok ? base + kk * p.b_kstride : safe, ok);
        }
      } else {
#pragma unroll
        for (int j = 0; j < B_PER; ++j) {
          int kk, nn;
          b_slot<P, BN, BK, NT>(tid, j, kk, nn);
          const int n = n0 + nn, k = k0 + kk;
          bool ok = n < N && k < kend;
          const float* src = safe;
          if (ok) src = p.b_src(k, n, ok);
          cp_async4(&bs[kk * LDB + nn], src, ok);
        }
      }
    }
  };

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ksteps) issue(s, s);
    cp_async_commit();
  }
  for (int it = 0; it < ksteps; ++it) {
    cp_async_wait<STAGES - 2>();  // this thread's copies of slice `it` have landed
    __syncthreads();              // everyone's have; and everyone is done reading slice it - 1's buffer
    {
      const int next = it + STAGES - 1;
      if (next < ksteps) issue(next, next % STAGES);
      cp_async_commit();
    }
    const float* as = smem + (it % STAGES) * C::STAGE_FLOATS;
    const float* bs = as + BK * LDA;
#pragma unroll
    for (int kb = 0; kb < BK; kb += 8) {
      uint32_t ab[MI][4], bb[NI][2];
      uint32_t asml[kSplit == 3 ? MI : 1][4], bsml[kSplit == 3 ? NI : 1][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        const int mrow = wm * C::WTM + i * 16 + g;
        const float x[4] = {as[(kb + t) * LDA + mrow], as[(kb + t) * LDA + mrow + 8], as[(kb + t + 4) * LDA + mrow],
                            as[(kb + t + 4) * LDA + mrow + 8]};
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          ab[i][q] = to_tf32(x[q]);
          if constexpr (kSplit == 3) asml[i][q] = to_tf32(x[q] - __uint_as_float(ab[i][q]));
        }
      }
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        const int ncol = wn * C::WTN + j * 8 + g;
        const float y[2] = {bs[(kb + t) * LDB + ncol], bs[(kb + t + 4) * LDB + ncol]};
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          bb[j][q] = to_tf32(y[q]);
          if constexpr (kSplit == 3) bsml[j][q] = to_tf32(y[q] - __uint_as_float(bb[j][q]));
        }
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) {
          if constexpr (kSplit == 3) {  // small terms first, then the big product
            mma_tf32(acc[i][j], asml[i], bb[j]);
            mma_tf32(acc[i][j], ab[i], bsml[j]);
          }
          mma_tf32(acc[i][j], ab[i], bb[j]);
        }
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int i = 0; i < MI; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int m = m0 + wm * C::WTM + i * 16 + g + 8 * h;
      if (m >= M) continue;
#pragma unroll
      for (int j = 0; j < NI; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int n = n0 + wn * C::WTN + j * 8 + 2 * t + e;
          if (n >= N) continue;
          const float v = acc[i][j][2 * h + e];
          if (ws)
            ws[(int64_t(blockIdx.z) * M + m) * N + n] = v;
          else
            p.store(m, n, v);
        }
      }
    }
  }
}

// The tensor-core plan: tile shape (Big 128x128 or Wide 64x128) and split-K, by the same kind of cost model as
// igemm::plan: the busiest SM's share of blocks x tile work, at an equal per-SM rate for both tiles (Big runs
// one 8-warp block per SM, Wide two 4-warp blocks), plus the split's workspace traffic.
struct MmaPlan {
  int cfg = 0;  // 0 Big, 1 Wide
  int slices = 1;
  int kchunk = 0;
};
inline MmaPlan mma_plan(int M, int N, int K, int sms) {
  struct Opt {
    int bm, bn, per_sm;
  };
  const Opt opts[2] = {{MmaBig::BM, MmaBig::BN, 2}, {MmaWide::BM, MmaWide::BN, 4}};
  constexpr int BK = 16;
  MmaPlan best;
  double best_cost = 1e300;
  for (int c = 0; c < 2; ++c) {
    const Opt& o = opts[c];
    const int64_t tiles = int64_t((M + o.bm - 1) / o.bm) * ((N + o.bn - 1) / o.bn);
    const int ksteps = std::max(1, (K + BK - 1) / BK);
    const int max_s = std::max(1, std::min(ksteps / 8, 128));  // at least 8 slices of K per split
    for (int s = 1; s <= max_s; s *= 2) {
      const int steps = (ksteps + s - 1) / s;
      const int slices = (ksteps + steps - 1) / steps;
      const int64_t blocks = tiles * slices;
      const int64_t waves = (blocks + int64_t(sms) * o.per_sm - 1) / (int64_t(sms) * o.per_sm);
      // per-SM work of one wave: per_sm blocks of bm x bn x (steps x BK) at ~3e5 TF32 MACs per microsecond
      double cost = double(waves) * o.per_sm * o.bm * o.bn * double(steps) * BK / 3.0e5;
      if (slices > 1) cost += (slices + 1.0) * M * N * 4 / 3e6 + 4.0;
      if (cost < best_cost - 1e-9) {
        best_cost = cost;
        best.cfg = c;
        best.slices = slices;
        best.kchunk = steps * BK;
      }
    }
  }
  return best;
}

template <class C, class P, int kSplit>
void launch_mma_cfg(const P& p, int M, int N, int K, const MmaPlan& pl, const Tensor& on, cudaStream_t s,
                    const char* name) {
  static bool attr_set = false;  // once per instantiation (the dynamic shared memory exceeds 48 KB)
  if (!attr_set) {
    SL_CUDA_CHECK(cudaFuncSetAttribute(igemm_mma_kernel<C, P, kSplit>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(C::SMEM)));
    attr_set = true;
  }
  dim3 grid(unsigned((N + C::BN - 1) / C::BN), unsigned((M + C::BM - 1) / C::BM), unsigned(pl.slices));
  SL_CHECK(grid.y <= 65535u && grid.z <= 65535u, ValueError, name, ": matrix of ", M, " rows is too large");
  if (pl.slices == 1) {
    igemm_mma_kernel<C, P, kSplit><<<grid, C::NT, C::SMEM, s>>>(p, M, N, K, pl.kchunk, static_cast<float*>(nullptr));
    SL_CUDA_LAUNCH(name);
    return;
  }
  DeviceBuffer ws(on.device(), size_t(pl.slices) * size_t(M) * size_t(N) * sizeof(float));
  igemm_mma_kernel<C, P, kSplit><<<grid, C::NT, C::SMEM, s>>>(p, M, N, K, pl.kchunk, ws.as<float>());
  SL_CUDA_LAUNCH(name);
  launch_splitk_finish<float>(p, M, N, pl.slices, ws.as<float>(), on.device(), s, name);
}

// Test hook (sl::cuda::debug_force_mma_plan): a forced tile (0 Big, 1 Wide) and split for the tensor-core path.
inline int g_forced_mma_cfg = -1, g_forced_mma_slices = 0;
inline MmaPlan mma_plan_forced(int K, int cfg, int slices) {
  MmaPlan pl;
  pl.cfg = cfg;
  const int ksteps = std::max(1, (K + 15) / 16), s = slices > 0 ? slices : 1;
  const int steps = (ksteps + s - 1) / s;
  pl.slices = (ksteps + steps - 1) / steps;
  pl.kchunk = steps * 16;
  return pl;
}

template <class P>
void run_mma(const P& p, int M, int N, int K, const Tensor& on, const char* name, int split) {
  cudaStream_t s = stream_of(on);
  MmaPlan pl = mma_plan(M, N, K, cuda_rt::sm_count(on.device()));
  if (g_forced_mma_cfg >= 0) pl = mma_plan_forced(K, g_forced_mma_cfg, g_forced_mma_slices);
  if (pl.cfg == 0) {
    if (split == 3)
      launch_mma_cfg<MmaBig, P, 3>(p, M, N, K, pl, on, s, name);
    else
      launch_mma_cfg<MmaBig, P, 1>(p, M, N, K, pl, on, s, name);
  } else {
    if (split == 3)
      launch_mma_cfg<MmaWide, P, 3>(p, M, N, K, pl, on, s, name);
    else
      launch_mma_cfg<MmaWide, P, 1>(p, M, N, K, pl, on, s, name);
  }
}

}  // namespace sl::cuda::igemm
