// Direct stride-1 convolution for layers with few output channels (LeNet's, the image layer's backward-data),
// where an implicit GEMM with M = output channels would leave most of every tile empty.
//
// One thread computes TH consecutive output rows of one output column for COT output channels (TH x COT
// accumulators); the lanes of a warp take consecutive columns, so every input load of a warp reads one
// contiguous row segment. The block's COT output channels' weights sit in shared memory as
// [Cin][KS][KS][COT]: a thread reads the COT weights of one tap with COT/4 16-byte loads that every lane shares
// (broadcast) and uses each for TH multiply-adds; per input channel it loads the (TH + KS - 1) x KS input window
// of its column once into registers.
//
// The same kernel runs conv2d's backward-data: gx = correlation of gy with the weights flipped in both spatial
// directions and the channel roles swapped, padding KS - 1 - pad (stride 1 only). kBwdData selects how the
// shared weights are gathered from w [Co, C, KS, KS]:
//   forward       in = x  [N, C, H, W],   out = y  [N, Co, OH, OW]:  sw[ci][kh][kw][c] = w[co0 + c, ci, kh, kw]
//   backward-data in = gy [N, Co, OH, OW], out = gx [N, C, H, W]:    sw[co][kh][kw][c] = w[co, c0 + c, KS-1-kh,
//   KS-1-kw]
// Every output element is written by one thread in a fixed order (input channel, kernel row, kernel column):
// deterministic.
//
// kPool (forward only): ReLU then a 2 x 2 / stride-2 max pool in the epilogue (conv2d_relu_pool_forward): a
// thread's row pairs and the column pair of two neighbouring lanes (OW even: lane ^ 1 holds column ow ^ 1 of
// the same rows) form the windows; the even lane writes the pooled value and its flat index in the conv output
// plane, taking window positions in max_pool2d_forward's order (first of ties). The full-size output is never
// written.
#pragma once
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "kernels/cuda/conv_raw.cuh"

namespace sl::cuda::conv::direct {

struct Shape {  // the direct view: in [N, Cin, H, W] -> out [N, Cout, OH, OW], stride 1, zero padding pad
  int N, Cin, H, W, Cout, OH, OW, pad;
  bool relu = false;  // ReLU in the epilogue (max(v, 0), NaN -> 0)
};

template <int KS, int COT, int TH, bool kBwdData, bool kPool = false>
__global__ void __launch_bounds__(128)
    direct_conv_kernel(const float* __restrict__ in, const float* __restrict__ w, const float* __restrict__ bias,
                       float* __restrict__ out, int32_t* __restrict__ pool_idx, Shape s) {
  static_assert(!kPool || (!kBwdData && TH % 2 == 0), "the pooled epilogue needs the forward and row pairs");
  constexpr int KK = KS * KS, RH = TH + KS - 1;
  extern __shared__ float4 smem4[];
  float* sw = reinterpret_cast<float*>(smem4);
  const int co0 = blockIdx.y * COT;
  const int wcount = s.Cin * KK * COT;
  for (int i = threadIdx.x; i < wcount; i += blockDim.x) {
    const int c = i % COT, tap = (i / COT) % KK, ci = i / (COT * KK);
    const int co = co0 + c;
    float v = 0.f;
    if (co < s.Cout) {
      if (kBwdData)
        v = __ldg(w + (int64_t(ci) * s.Cout + co) * KK + (KK - 1 - tap));
      else
        v = __ldg(w + (int64_t(co) * s.Cin + ci) * KK + tap);
    }
    sw[i] = v;
  }
  __syncthreads();

  const int ohg = (s.OH + TH - 1) / TH;
  const int64_t total = int64_t(s.N) * ohg * s.OW;
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  const int ow = int(e % s.OW);
  const int64_t r = e / s.OW;
  const int g = int(r % ohg), n = int(r / ohg);
  const int oh0 = g * TH, ih0 = oh0 - s.pad, iw0 = ow - s.pad;

  float acc[TH][COT];
#pragma unroll
  for (int t = 0; t < TH; ++t)
#pragma unroll
    for (int c = 0; c < COT; ++c) acc[t][c] = 0.f;

  bool col_ok[KS];
#pragma unroll
  for (int kw = 0; kw < KS; ++kw) col_ok[kw] = unsigned(iw0 + kw) < unsigned(s.W);
  const float* img = in + int64_t(n) * s.Cin * s.H * s.W;
  for (int ci = 0; ci < s.Cin; ++ci) {
    const float* plane = img + int64_t(ci) * s.H * s.W;
    float v[RH][KS];
#pragma unroll
    for (int rr = 0; rr < RH; ++rr) {
      const int ih = ih0 + rr;
      const bool row_ok = unsigned(ih) < unsigned(s.H);
      const float* row = plane + (row_ok ? ih : 0) * s.W + iw0;
#pragma unroll
      for (int kw = 0; kw < KS; ++kw) v[rr][kw] = row_ok && col_ok[kw] ? __ldg(row + kw) : 0.f;
    }
    const float* wci = sw + ci * KK * COT;
#pragma unroll
    for (int kh = 0; kh < KS; ++kh)
#pragma unroll
      for (int kw = 0; kw < KS; ++kw) {
        const float* wv = wci + (kh * KS + kw) * COT;
        float wr[COT];
        if constexpr (COT % 4 == 0) {
#pragma unroll
          for (int c = 0; c < COT; c += 4) {
            const float4 q = *reinterpret_cast<const float4*>(wv + c);
            wr[c] = q.x;
            wr[c + 1] = q.y;
            wr[c + 2] = q.z;
            wr[c + 3] = q.w;
          }
        } else {
#pragma unroll
          for (int c = 0; c < COT; ++c) wr[c] = wv[c];
        }
#pragma unroll
        for (int t = 0; t < TH; ++t)
#pragma unroll
          for (int c = 0; c < COT; ++c) acc[t][c] = fmaf(v[t + kh][kw], wr[c], acc[t][c]);
      }
  }
  if constexpr (kPool) {
    const int POH = s.OH / 2, POW = s.OW / 2, pw = ow >> 1;
    const unsigned pair = 3u << (threadIdx.x & 30);  // this lane and its neighbour (same rows, column ow ^ 1)
    const bool even = (ow & 1) == 0;
#pragma unroll
    for (int c = 0; c < COT; ++c) {
      const int co = co0 + c;  // uniform over the pair
      const float b = bias && co < s.Cout ? bias[co] : 0.f;
#pragma unroll
      for (int t = 0; t < TH; t += 2) {
        float v0 = acc[t][c] + b, v1 = acc[t + 1][c] + b;
        if (!(v0 > 0.f)) v0 = 0.f;
        if (!(v1 > 0.f)) v1 = 0.f;
        const float o0 = __shfl_xor_sync(pair, v0, 1), o1 = __shfl_xor_sync(pair, v1, 1);
        // window order: (r0, even col), (r0, odd col), (r1, even col), (r1, odd col)
        const float a00 = even ? v0 : o0, a01 = even ? o0 : v0, a10 = even ? v1 : o1, a11 = even ? o1 : v1;
        float best = a00;
        int off = 0;
        if (a01 > best) best = a01, off = 1;
        if (a10 > best) best = a10, off = s.OW;
        if (a11 > best) best = a11, off = s.OW + 1;
        const int ph = (oh0 + t) >> 1;
        if (even && co < s.Cout && oh0 + t + 1 < s.OH) {
          const int64_t o = ((int64_t(n) * s.Cout + co) * POH + ph) * POW + pw;
          out[o] = best;
          pool_idx[o] = 2 * ph * s.OW + 2 * pw + off;
        }
      }
    }
  } else {
#pragma unroll
    for (int c = 0; c < COT; ++c) {
      const int co = co0 + c;
      if (co >= s.Cout) break;
      const float b = bias ? bias[co] : 0.f;
      float* op = out + (int64_t(n) * s.Cout + co) * s.OH * s.OW + ow;
#pragma unroll
      for (int t = 0; t < TH; ++t) {
        float v = acc[t][c] + b;
        if (s.relu && !(v > 0.f)) v = 0.f;
        if (oh0 + t < s.OH) op[(oh0 + t) * s.OW] = v;
      }
    }
  }
}

// The register blocks: COT output channels x TH output rows per thread. Which one runs fastest depends on the
// shape and the GPU in ways a formula misses (registers decide the blocks per SM, and a grid just over a whole
// number of waves runs its last blocks alone: LeNet's conv2 backward-data at 1000 images had 564 blocks of
// {4, 4} for 528 slots), so the first call of a shape times the candidates (tuned_block below).
struct Block {
  int cot, th;
};
inline constexpr Block kBlocks[] = {{1, 8}, {4, 1}, {4, 4}, {8, 4}, {8, 8}, {4, 2},
                                    {4, 6}, {8, 2}, {8, 6}, {1, 4}, {1, 7}};
inline constexpr int kNumBlocks = int(sizeof(kBlocks) / sizeof(kBlocks[0]));

// Test hook (sl::cuda::debug_force_conv_direct): -1 the choice below, 0 off, 1..kNumBlocks the blocks of kBlocks.
inline int g_forced = -1;

// SPLITLEAK_CONV_DIRECT=0 turns the direct path off (every conv through the implicit GEMM), 1..kNumBlocks forces
// a block of kBlocks wherever the kernel applies: for A/B runs. The test hook takes precedence.
inline int mode() {
  if (g_forced >= 0) return g_forced;
  static const int env = [] {
    const char* v = std::getenv("SPLITLEAK_CONV_DIRECT");
    if (!v || !*v) return -1;
    char* end = nullptr;
    const long m = std::strtol(v, &end, 10);
    return *end == 0 && m >= 0 && m <= kNumBlocks ? int(m) : -1;
  }();
  return env;
}
inline bool enabled() { return mode() != 0; }

// Threads a block choice gives.
inline int64_t threads_of(const Shape& s, const Block& b) {
  return int64_t(s.N) * ((s.OH + b.th - 1) / b.th) * s.OW * ((s.Cout + b.cot - 1) / b.cot);
}
// The largest block that still gives every SM about 12 warps; {0, 0} when even the smallest leaves the GPU
// mostly idle (small batches: the implicit GEMM with split-K does better there).
// SPLITLEAK_CONV_DIRECT_WARPS: the warps per SM the choice aims at (default 12), for tuning runs.
inline int target_warps() {
  static const int w = [] {
    const char* v = std::getenv("SPLITLEAK_CONV_DIRECT_WARPS");
    const int x = v ? std::atoi(v) : 0;
    return x > 0 && x <= 64 ? x : 12;
  }();
  return w;
}
// Whether block b suits the shape: row pairs (an even TH) for the pooled epilogue, and no more than twice the
// channels needed (a 4- or 8-channel block for 1 or 2 channels would mostly compute padding).
inline bool usable(const Block& b, const Shape& s, int KS, bool pool) {
  if (pool && b.th % 2) return false;
  if (b.cot > 1 && b.cot / 2 >= s.Cout) return false;
  return size_t(s.Cin) * KS * KS * b.cot * sizeof(float) <= 48 * 1024;
}

// The gate and the untimed choice: the largest block that still gives every SM about 12 warps; {0, 0} when even
// the smallest leaves the GPU mostly idle (small batches: the implicit GEMM with split-K does better there).
inline Block choose(const Shape& s, int KS, int sms, bool pool = false) {
  if (mode() > 0) return usable(kBlocks[mode() - 1], s, KS, pool) ? kBlocks[mode() - 1] : Block{0, 0};
  const int64_t want = int64_t(sms) * 32 * target_warps();
  const Block order[] = {{8, 8}, {8, 4}, {4, 4}, {4, 2}, {1, 8}, {1, 4}};
  for (const Block& b : order)
    if (usable(b, s, KS, pool) && threads_of(s, b) >= want) return b;
  return {0, 0};
}

template <int KS, int COT, int TH, bool kBwd, bool kPool>
void launch_one(const float* in, const float* w, const float* bias, float* out, int32_t* idx, const Shape& s,
                cudaStream_t st) {
  const int64_t threads = int64_t(s.N) * ((s.OH + TH - 1) / TH) * s.OW;
  const dim3 grid(unsigned((threads + 127) / 128), unsigned((s.Cout + COT - 1) / COT));
  const size_t smem = size_t(s.Cin) * KS * KS * COT * sizeof(float);
  if constexpr (kPool && TH % 2 == 0)
    direct_conv_kernel<KS, COT, TH, false, true><<<grid, 128, smem, st>>>(in, w, bias, out, idx, s);
  else if constexpr (!kPool)
    direct_conv_kernel<KS, COT, TH, kBwd><<<grid, 128, smem, st>>>(in, w, bias, out, nullptr, s);
}

// Launches block kBlocks[i] (i < kNumBlocks).
template <int KS, bool kBwd, bool kPool, int I = 0>
void launch_block(int i, const float* in, const float* w, const float* bias, float* out, int32_t* idx, const Shape& s,
                  cudaStream_t st) {
  if constexpr (I < kNumBlocks) {
    if (i == I)
      launch_one<KS, kBlocks[I].cot, kBlocks[I].th, kBwd, kPool>(in, w, bias, out, idx, s, st);
    else
      launch_block<KS, kBwd, kPool, I + 1>(i, in, w, bias, out, idx, s, st);
  }
}

inline int index_of(const Block& b) {
  for (int i = 0; i < kNumBlocks; ++i)
    if (kBlocks[i].cot == b.cot && kBlocks[i].th == b.th) return i;
  return -1;
}

// SPLITLEAK_CONV_DIRECT_TUNE=0: no timing, the untimed choice everywhere (for A/B runs); =v: time and print
// each tuned shape's table on stderr.
inline int tuning_mode() {
  static const int m = [] {
    const char* v = std::getenv("SPLITLEAK_CONV_DIRECT_TUNE");
    if (v && v[0] == '0' && v[1] == 0) return 0;
    if (v && v[0] == 'v' && v[1] == 0) return 2;
    return 1;
  }();
  return m;
}

// The block for this shape: on its first call outside a graph capture, the usable blocks are timed and the
// fastest is kept for the process. The process's first tuning runs the untimed choice for ~kTuneWarmMs (clocks
// rise from idle), then kTuneRounds rounds time every candidate over kTuneReps back-to-back launches (a first launch
// keeps the stream busy while the timed ones queue behind it, so the events see kernels, not the host's launch
// latency); a candidate's time is its best round. Each output element sums its terms in the same order whatever
// the block, so the choice never changes a result's bits. While capturing (no timing possible) an untuned
// shape takes the untimed choice.
constexpr int kTuneReps = 4, kTuneRounds = 2;
constexpr float kTuneWarmMs = 5.f;
template <class Launch>
int tuned_block(const Shape& s, int KS, bool bwd, bool pool, Block fallback, cudaStream_t st, int device,
                Launch launch) {
  if (tuning_mode() == 0 || mode() > 0) return index_of(fallback);
  using Key = std::array<int, 12>;
  static std::mutex mu;
  static std::map<Key, int> best;
  const Key key{s.N, s.Cin, s.H, s.W, s.Cout, s.OH, s.OW, s.pad, int(s.relu), KS, int(bwd) + 2 * int(pool), device};
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = best.find(key); it != best.end()) return it->second;
  }
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  SL_CUDA_CHECK(cudaStreamIsCapturing(st, &cap));
  if (cap != cudaStreamCaptureStatusNone) return index_of(fallback);
  cudaEvent_t e0, e1;
  SL_CUDA_CHECK(cudaEventCreate(&e0));
  SL_CUDA_CHECK(cudaEventCreate(&e1));
  auto time_of = [&](int i, int reps) {
    launch(i);
    SL_CUDA_CHECK(cudaEventRecord(e0, st));
    for (int r = 0; r < reps; ++r) launch(i);
    SL_CUDA_CHECK(cudaEventRecord(e1, st));
    SL_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    SL_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    return ms / float(reps);
  };
  const int first = index_of(fallback);
  static std::atomic<bool> warmed{false};  // once per process (two racing threads both warming only cost time)
  if (!warmed.exchange(true))
    for (float warm = 0; warm < kTuneWarmMs;) warm += time_of(first, 16) * 16;
  float ms[kNumBlocks];
  for (int i = 0; i < kNumBlocks; ++i) ms[i] = 1e30f;
  for (int round = 0; round < kTuneRounds; ++round)
    for (int i = 0; i < kNumBlocks; ++i)
      if (usable(kBlocks[i], s, KS, pool)) ms[i] = std::min(ms[i], time_of(i, kTuneReps));
  SL_CUDA_CHECK(cudaEventDestroy(e0));
  SL_CUDA_CHECK(cudaEventDestroy(e1));
  int pick = first;
  for (int i = 0; i < kNumBlocks; ++i)
    if (ms[i] < ms[pick]) pick = i;
  if (tuning_mode() == 2) {
    std::string line = "direct conv " +
                       std::string(bwd    ? "bwd-data"
                                   : pool ? "fwd+pool"
                                          : "fwd") +
                       " N" + std::to_string(s.N) + " " + std::to_string(s.Cin) + "->" + std::to_string(s.Cout) + " " +
                       std::to_string(s.OH) + "x" + std::to_string(s.OW) + " k" + std::to_string(KS) + ":";
    for (int i = 0; i < kNumBlocks; ++i)
      if (ms[i] < 1e30f)
        line += " " + std::to_string(kBlocks[i].cot) + "x" + std::to_string(kBlocks[i].th) + (i == pick ? "* " : " ") +
                std::to_string(int(ms[i] * 1000.f + 0.5f)) + "us";
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::lock_guard<std::mutex> lock(mu);
  best[key] = pick;
  return pick;
}

// Runs the direct kernel when it applies (stride 1, kernel 3 or 5, at most 16 output channels, the weights of
// one block within 48 KB of shared memory); false otherwise. With pool_idx: ReLU + 2 x 2 / 2 max pool in the
// epilogue (out and pool_idx [N, Cout, OH / 2, OW / 2]; needs OH and OW even).
inline bool run(const Shape& s, int KS, bool bwd_data, const float* in, const float* w, const float* bias, float* out,
                const Tensor& on, const char* name, int32_t* pool_idx = nullptr) {
  if (!enabled() || (KS != 3 && KS != 5) || s.Cout > 16 || s.pad < 0 || s.pad > KS - 1) return false;
  const bool pool = pool_idx != nullptr;
  if (pool && (bwd_data || s.OH % 2 || s.OW % 2)) return false;
  const Block b = choose(s, KS, cuda_rt::sm_count(on.device()), pool);
  if (b.cot == 0) return false;
  check_int32(int64_t(s.N) * s.Cin * s.H * s.W, name);
  check_int32(int64_t(s.N) * s.Cout * s.OH * s.OW, name);
  if (int64_t(s.N) * s.OH * s.OW == 0) return true;
  cudaStream_t st = stream_of(on);
  auto launch = [&](int i) {
    if (KS == 3) {
      if (pool)
        launch_block<3, false, true>(i, in, w, bias, out, pool_idx, s, st);
      else if (bwd_data)
        launch_block<3, true, false>(i, in, w, bias, out, nullptr, s, st);
      else
        launch_block<3, false, false>(i, in, w, bias, out, nullptr, s, st);
    } else {
      if (pool)
        launch_block<5, false, true>(i, in, w, bias, out, pool_idx, s, st);
      else if (bwd_data)
        launch_block<5, true, false>(i, in, w, bias, out, nullptr, s, st);
      else
        launch_block<5, false, false>(i, in, w, bias, out, nullptr, s, st);
    }
    SL_CUDA_LAUNCH(name);
  };
  launch(tuned_block(s, KS, bwd_data, pool, b, st, on.device().index, launch));
  return true;
}

}  // namespace sl::cuda::conv::direct
