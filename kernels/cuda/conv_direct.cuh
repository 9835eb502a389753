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
//   backward-data in = gy [N, Co, OH, OW], out = gx [N, C, H, W]:    sw[co][kh][kw][c] = w[co, c0 + c, KS-1-kh, KS-1-kw]
// Every output element is written by one thread in a fixed order (input channel, kernel row, kernel column):
// deterministic.
#pragma once
#include <cstdlib>

#include "kernels/cuda/conv_raw.cuh"

namespace sl::cuda::conv::direct {

struct Shape {  // the direct view: in [N, Cin, H, W] -> out [N, Cout, OH, OW], stride 1, zero padding pad
  int N, Cin, H, W, Cout, OH, OW, pad;
  bool relu = false;  // ReLU in the epilogue (max(v, 0), NaN -> 0)
};

template <int KS, int COT, int TH, bool kBwdData>
__global__ void __launch_bounds__(128) direct_conv_kernel(const float* __restrict__ in, const float* __restrict__ w,
                                                          const float* __restrict__ bias, float* __restrict__ out,
                                                          Shape s) {
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
      if (kBwdData) v = __ldg(w + (int64_t(ci) * s.Cout + co) * KK + (KK - 1 - tap));
      else v = __ldg(w + (int64_t(co) * s.Cin + ci) * KK + tap);
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
            wr[c] = q.x; wr[c + 1] = q.y; wr[c + 2] = q.z; wr[c + 3] = q.w;
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

// Test hook (sl::cuda::debug_force_conv_direct): -1 the choice below, 0 off, 1..5 the blocks of kBlocks.
inline int g_forced = -1;

// SPLITLEAK_CONV_DIRECT=0 turns the direct path off (every conv through the implicit GEMM), 1..5 forces a block
// of kBlocks wherever the kernel applies: for A/B runs. The test hook takes precedence.
inline int mode() {
  if (g_forced >= 0) return g_forced;
  static const int env = [] {
    const char* v = std::getenv("SPLITLEAK_CONV_DIRECT");
    return v && v[0] >= '0' && v[0] <= '5' && v[1] == 0 ? v[0] - '0' : -1;
  }();
  return env;
}
inline bool enabled() { return mode() != 0; }

// The register block: COT output channels x TH output rows per thread.
struct Block {
  int cot, th;
};
inline constexpr Block kBlocks[5] = {{1, 8}, {4, 1}, {4, 4}, {8, 4}, {8, 8}};
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
inline Block choose(const Shape& s, int sms) {
  if (mode() > 0) return kBlocks[mode() - 1];
  const int64_t want = int64_t(sms) * 32 * target_warps();
  const Block order[] = {{8, 8}, {8, 4}, {4, 4}, {4, 1}};
  const Block* pick = nullptr;
  if (s.Cout <= 2) {
    if (threads_of(s, kBlocks[0]) >= want) return kBlocks[0];
  } else {
    for (const Block& b : order) {
      if (b.cot > 4 && b.cot / 2 >= s.Cout) continue;  // do not pad the channels beyond the next power of two
      if (threads_of(s, b) >= want) {
        pick = &b;
        break;
      }
    }
    if (pick) return *pick;
  }
  return {0, 0};
}

template <int KS, int COT, int TH, bool kBwd>
void launch_one(const float* in, const float* w, const float* bias, float* out, const Shape& s, cudaStream_t st) {
  const int64_t threads = int64_t(s.N) * ((s.OH + TH - 1) / TH) * s.OW;
  const dim3 grid(unsigned((threads + 127) / 128), unsigned((s.Cout + COT - 1) / COT));
  const size_t smem = size_t(s.Cin) * KS * KS * COT * sizeof(float);
  direct_conv_kernel<KS, COT, TH, kBwd><<<grid, 128, smem, st>>>(in, w, bias, out, s);
}

template <int KS, bool kBwd>
void launch_ks(const Block& b, const float* in, const float* w, const float* bias, float* out, const Shape& s,
               cudaStream_t st) {
  if (b.cot == 1) launch_one<KS, 1, 8, kBwd>(in, w, bias, out, s, st);
  else if (b.cot == 8 && b.th == 8) launch_one<KS, 8, 8, kBwd>(in, w, bias, out, s, st);
  else if (b.cot == 8) launch_one<KS, 8, 4, kBwd>(in, w, bias, out, s, st);
  else if (b.th == 4) launch_one<KS, 4, 4, kBwd>(in, w, bias, out, s, st);
  else launch_one<KS, 4, 1, kBwd>(in, w, bias, out, s, st);
}

// Runs the direct kernel when it applies (stride 1, kernel 3 or 5, at most 16 output channels, the weights of
// one block within 48 KB of shared memory); false otherwise.
inline bool run(const Shape& s, int KS, bool bwd_data, const float* in, const float* w, const float* bias, float* out,
                const Tensor& on, const char* name) {
  if (!enabled() || (KS != 3 && KS != 5) || s.Cout > 16 || s.pad < 0 || s.pad > KS - 1) return false;
  const Block b = choose(s, cuda_rt::sm_count(on.device()));
  if (b.cot == 0 || size_t(s.Cin) * KS * KS * b.cot * sizeof(float) > 48 * 1024) return false;
  check_int32(int64_t(s.N) * s.Cin * s.H * s.W, name);
  check_int32(int64_t(s.N) * s.Cout * s.OH * s.OW, name);
  if (int64_t(s.N) * s.OH * s.OW == 0) return true;
  cudaStream_t st = stream_of(on);
  if (KS == 3) {
    if (bwd_data) launch_ks<3, true>(b, in, w, bias, out, s, st);
    else launch_ks<3, false>(b, in, w, bias, out, s, st);
  } else {
    if (bwd_data) launch_ks<5, true>(b, in, w, bias, out, s, st);
    else launch_ks<5, false>(b, in, w, bias, out, s, st);
  }
  SL_CUDA_LAUNCH(name);
  return true;
}

}  // namespace sl::cuda::conv::direct
