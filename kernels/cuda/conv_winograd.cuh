// 3x3 stride-1 convolutions through Winograd's F(4x4, 3x3) (kernels/winograd_f43.h): FP32 arithmetic with 36
// multiplications per 4x4 output tile and channel pair instead of 144. Three passes:
//
//   1. transform: every 6x6 input tile (stride 4, zero outside the image) of every channel -> V[36][C][P]
//      (P = N x tiles per image; one thread per channel and tile), the filters -> U[36][Co][C];
//   2. 36 GEMMs in one launch (igemm::run_batched, the FFMA tiles): M[k] = U[k] . V[k], [Co x C] . [C x P];
//   3. inverse transform: every M tile (36 values of one output channel and tile) -> the 4x4 output tile, bias
//      and ReLU applied, clipped at the image border.
//
// Backward data is the same pass over gy with the flipped filters, channel roles swapped (as conv_direct.cuh).
// Backward weight: V from x, Gy[36][Co][P'] = A gy A^T per tile, then per point k the GEMM
// dU[k] = Gy[k] . V[k]^T ([Co x P'] . [P' x C]), split over P' into slices (more blocks: these GEMMs are small
// and long), and the filter-gradient transform G^T (sum of the slices in order) G -> gw. Every sum has a fixed
// order: deterministic. The transforms cost extra memory traffic (V and M are 36/16 the size of the
// activations), which the 4x fewer multiply-adds repay on layers with many channels; the rounding differs from a
// direct sum (the transforms scale by up to 8): tests/test_cuda.cpp states the tolerance.
#pragma once
#include <cstdint>
#include <cstdlib>

#include "kernels/cuda/conv_direct.cuh"
#include "kernels/cuda/igemm.cuh"
#include "kernels/winograd_f43.h"

namespace sl::cuda::conv::wino {

using direct::Shape;
namespace wf = sl::winograd;

// Test hook (sl::cuda::debug_force_conv_winograd): -1 the choice below, 0 never, 1 wherever it applies.
inline int g_forced = -1;
// SPLITLEAK_CONV_WINOGRAD=0 never, 1 wherever it applies (A/B runs); unset: the choice below. The hook wins.
inline int mode() {
  if (g_forced >= 0) return g_forced;
  static const int env = [] {
    const char* v = std::getenv("SPLITLEAK_CONV_WINOGRAD");
    return v && (v[0] == '0' || v[0] == '1') && v[1] == 0 ? v[0] - '0' : -1;
  }();
  return env;
}

struct Tiles {
  int th, tw, per_image, P;
};
// Tile p of the batch: image n, tile row ty, tile column tx.
struct TilePos {
  int n, ty, tx;
};
__device__ __forceinline__ TilePos tile_pos(const Tiles& t, int p) {
  const int n = p / t.per_image, q = p - n * t.per_image, ty = q / t.tw;
  return {n, ty, q - ty * t.tw};
}

inline Tiles tiles_of(const Shape& s) {
  Tiles t{(s.OH + 3) / 4, (s.OW + 3) / 4, 0, 0};
  t.per_image = t.th * t.tw;
  t.P = s.N * t.per_image;
  return t;
}

// Whether the transform path runs: a 3x3 stride-1 layer (the caller checks), float32 math, and by default only
// layers with >= 32 channels on both sides and >= 512 tiles (CIFAR10CNN's conv12..conv32 at batch >= 32):
// with fewer channels the GEMMs are too short to repay the transforms' traffic.
inline bool wanted(const Shape& s) {
  const int m = mode();
  if (m == 0 || s.OH <= 0 || s.OW <= 0 || s.N <= 0 || s.Cin <= 0 || s.Cout <= 0) return false;
  const Tiles t = tiles_of(s);
  if (int64_t(wf::kPoints) * std::max(s.Cin, s.Cout) * t.P >= (int64_t(1) << 31)) return false;
  if (m == 1) return true;
  return s.Cin >= 32 && s.Cout >= 32 && t.P >= 512;
}

// The 36 values of one tile (or filter) to dst[k * plane], k = 0..35.
__device__ __forceinline__ void store_points(const float (&v)[wf::kIn][wf::kIn], float* dst, int64_t plane) {
#pragma unroll
  for (int k = 0; k < wf::kPoints; ++k) dst[k * plane] = v[k / wf::kIn][k % wf::kIn];
}

// U[k][r][c] for output channel r < R and input channel c < Kc. Forward: g = w[r][c] (w [R][Kc][3][3]).
// Backward data: g = w[c][r] flipped in both directions (w [Kc][R][3][3], the forward layer's weight).
__global__ void filter_transform(const float* __restrict__ w, float* __restrict__ U, int R, int Kc, bool bwd) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= R * Kc) return;
  const int r = i / Kc, c = i - r * Kc;
  float g[3][3], u[wf::kIn][wf::kIn];
  const float* src = w + (bwd ? int64_t(c) * R + r : int64_t(r) * Kc + c) * 9;
#pragma unroll
  for (int a = 0; a < 3; ++a)
#pragma unroll
    for (int b = 0; b < 3; ++b) g[a][b] = bwd ? src[(2 - a) * 3 + (2 - b)] : src[a * 3 + b];
  wf::filter_2d(g, u);
  store_points(u, U + i, int64_t(R) * Kc);
}

// V[k][c][p] (rows of length ld >= P, zero for P <= p < ld) from the 6x6 tiles of in [N][C][H][W], tile (ty, tx)
// of an image reading rows 4 ty - pad .. 4 ty - pad + 5 (zero outside). One thread per (c, p), p fastest.
__global__ void input_transform(const float* __restrict__ in, float* __restrict__ V, int C, int H, int W, int pad,
                                Tiles t, int ld) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= C * ld) return;
  const int c = i / ld, p = i - c * ld;
  float v[wf::kIn][wf::kIn] = {};  // zero rows past P
  if (p < t.P) {
    const auto [n, ty, tx] = tile_pos(t, p);
    const int h0 = ty * 4 - pad, w0 = tx * 4 - pad;
    const float* src = in + (int64_t(n) * C + c) * H * W;
    float d[wf::kIn][wf::kIn];
#pragma unroll
    for (int a = 0; a < wf::kIn; ++a) {
      const int h = h0 + a;
      const bool hok = h >= 0 && h < H;
#pragma unroll
      for (int b = 0; b < wf::kIn; ++b) {
        const int x = w0 + b;
        d[a][b] = hok && x >= 0 && x < W ? __ldg(src + h * W + x) : 0.f;
      }
    }
    wf::input_2d(d, v);
  }
  store_points(v, V + i, int64_t(C) * ld);
}

// out [N][Co][OH][OW] from M[k][co][p]: A^T m A, + bias[co], ReLU; one thread per (co, p).
__global__ void output_transform(const float* __restrict__ M, const float* __restrict__ bias, float* __restrict__ out,
                                 int Co, int OH, int OW, Tiles t, bool relu, bool vec) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= Co * t.P) return;
  const int co = i / t.P, p = i - co * t.P;
  const int64_t plane = int64_t(Co) * t.P;
  float m[wf::kIn][wf::kIn], y[wf::kTile][wf::kTile];
#pragma unroll
  for (int k = 0; k < wf::kPoints; ++k) m[k / wf::kIn][k % wf::kIn] = __ldg(M + k * plane + i);
  wf::output_2d(m, y);
  const auto [n, ty, tx] = tile_pos(t, p);
  const float b = bias ? __ldg(bias + co) : 0.f;
  float* dst = out + (int64_t(n) * Co + co) * OH * OW;
#pragma unroll
  for (int a = 0; a < wf::kTile; ++a)
#pragma unroll
    for (int c = 0; c < wf::kTile; ++c) {
      y[a][c] += b;
      if (relu && !(y[a][c] > 0.f)) y[a][c] = 0.f;
    }
  if (vec && ty * 4 + 3 < OH) {  // whole tile inside, rows 16-byte aligned: one vector store per row
#pragma unroll
    for (int a = 0; a < wf::kTile; ++a)
      *reinterpret_cast<float4*>(dst + (ty * 4 + a) * OW + tx * 4) = make_float4(y[a][0], y[a][1], y[a][2], y[a][3]);
    return;
  }
#pragma unroll
  for (int a = 0; a < wf::kTile; ++a) {
    const int h = ty * 4 + a;
    if (h >= OH) break;
#pragma unroll
    for (int c = 0; c < wf::kTile; ++c)
      if (tx * 4 + c < OW) dst[h * OW + tx * 4 + c] = y[a][c];
  }
}

// G[k][co][p] = (A gy A^T)[k] for the 4x4 tiles of gy [N][Co][OH][OW] (zero outside), rows of length ld.
__global__ void grad_transform(const float* __restrict__ gy, float* __restrict__ G, int Co, int OH, int OW, Tiles t,
                               int ld, bool vec) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= Co * ld) return;
  const int co = i / ld, p = i - co * ld;
  float m[wf::kIn][wf::kIn] = {};  // zero rows past P
  if (p < t.P) {
    const auto [n, ty, tx] = tile_pos(t, p);
    const float* src = gy + (int64_t(n) * Co + co) * OH * OW;
    float y[wf::kTile][wf::kTile];
    if (vec && ty * 4 + 3 < OH) {  // whole tile inside, rows 16-byte aligned: one vector load per row
#pragma unroll
      for (int a = 0; a < wf::kTile; ++a) {
        const float4 r = __ldg(reinterpret_cast<const float4*>(src + (ty * 4 + a) * OW + tx * 4));
        y[a][0] = r.x;
        y[a][1] = r.y;
        y[a][2] = r.z;
        y[a][3] = r.w;
      }
    } else {
#pragma unroll
      for (int a = 0; a < wf::kTile; ++a) {
        const int h = ty * 4 + a;
#pragma unroll
        for (int c = 0; c < wf::kTile; ++c) {
          const int x = tx * 4 + c;
          y[a][c] = h < OH && x < OW ? __ldg(src + h * OW + x) : 0.f;
        }
      }
    }
    wf::grad_2d(y, m);
  }
  store_points(m, G + i, int64_t(Co) * ld);
}

// gw [Co][C][3][3] = G^T (sum over the slices s = 0 .. S-1, in order, of dU[k * S + s][co][c]) G.
__global__ void filter_grad_transform(const float* __restrict__ dU, float* __restrict__ gw, int Co, int C, int S) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= Co * C) return;
  const int64_t plane = int64_t(Co) * C;
  float u[wf::kIn][wf::kIn], g[3][3];
#pragma unroll
  for (int k = 0; k < wf::kPoints; ++k) u[k / wf::kIn][k % wf::kIn] = 0.f;
  // slice-major: the 36 loads of a slice are independent (in flight together); each point's sum stays in order
  for (int s = 0; s < S; ++s) {
    const float* src = dU + int64_t(s) * plane + i;
#pragma unroll
    for (int k = 0; k < wf::kPoints; ++k) u[k / wf::kIn][k % wf::kIn] += __ldg(src + int64_t(k) * S * plane);
  }
  wf::filter_grad_2d(u, g);
#pragma unroll
  for (int a = 0; a < 3; ++a)
#pragma unroll
    for (int b = 0; b < 3; ++b) gw[int64_t(i) * 9 + a * 3 + b] = g[a][b];
}

// The 36 (x slices) GEMMs: batch z = point k * split + slice s; C_z = A_z [M x K] . B_z [K x N], row-major,
// A contiguous along K; B along N (kTransB = false) or along K (true).
template <bool kTransB>
struct PointGemm {
  static constexpr bool kAContigK = true, kBContigN = !kTransB, kBatched = true;
  const float* A;
  const float* B;
  float* C;
  int lda, ldb, ldc, split;
  int64_t a_point, b_point, c_batch;
  int a_slice, b_slice;  // element offsets of slice s's K range in A and B
  __device__ PointGemm batch(int z) const {
    PointGemm q = *this;
    const int k = z / split, s = z - k * split;
    q.A += k * a_point + int64_t(s) * a_slice;
    q.B += k * b_point + int64_t(s) * b_slice;
    q.C += z * c_batch;
    return q;
  }
  __device__ float a(int m, int k) const { return A[int64_t(m) * lda + k]; }
  __device__ float b(int k, int n) const { return kTransB ? B[int64_t(n) * ldb + k] : B[int64_t(k) * ldb + n]; }
  __device__ void store(int m, int n, float v) const { C[int64_t(m) * ldc + n] = v; }
};

// igemm configurations (kernels/cuda/igemm.cuh: kCfgs) the GEMMs use: 64 x 64 and 64 x 256 tiles.
constexpr int kSmallTiles = 2, kLongTiles = 7;

inline unsigned blocks_for(int64_t threads) { return unsigned((threads + 255) / 256); }
// Rows of width w starting at p can be read / written as float4.
inline bool vec_rows(const float* p, int w) { return w % 4 == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// out = the correlation of `in` with the filters (bwd = false: w [Cout][Cin][3][3]; true: w [Cin][Cout][3][3]
// flipped, conv2d's backward data), bias and ReLU in the epilogue. False: not taken (the caller's path runs).
inline bool correlate(const Shape& s, bool bwd, const float* in, const float* w, const float* bias, float* out,
                      const Tensor& on, const char* name) {
  if (!wanted(s)) return false;
  const Tiles t = tiles_of(s);
  const Device dev = on.device();
  cudaStream_t st = stream_of(on);
  DeviceBuffer U(dev, size_t(wf::kPoints) * s.Cout * s.Cin * sizeof(float));
  DeviceBuffer V(dev, size_t(wf::kPoints) * s.Cin * t.P * sizeof(float));
  DeviceBuffer M(dev, size_t(wf::kPoints) * s.Cout * t.P * sizeof(float));
  filter_transform<<<blocks_for(int64_t(s.Cout) * s.Cin), 256, 0, st>>>(w, U.as<float>(), s.Cout, s.Cin, bwd);
  SL_CUDA_LAUNCH("conv_winograd_filter");
  input_transform<<<blocks_for(int64_t(s.Cin) * t.P), 256, 0, st>>>(in, V.as<float>(), s.Cin, s.H, s.W, s.pad, t, t.P);
  SL_CUDA_LAUNCH("conv_winograd_input");
  PointGemm<false> p{U.as<float>(),           V.as<float>(),        M.as<float>(),         s.Cin, t.P, t.P, 1,
                     int64_t(s.Cout) * s.Cin, int64_t(s.Cin) * t.P, int64_t(s.Cout) * t.P, 0,     0};
  // tiles measured on CIFAR10CNN's layers at batch 128 (docs/cuda-kernels.md): 64 x 256 where they give every SM
  // two blocks, else 64 x 64
  const int64_t long_tiles = int64_t((s.Cout + 63) / 64) * ((t.P + 255) / 256) * wf::kPoints;
  igemm::run_batched(p, wf::kPoints, s.Cout, t.P, s.Cin, on, name,
                     long_tiles >= 2 * cuda_rt::sm_count(dev) ? kLongTiles : kSmallTiles);
  output_transform<<<blocks_for(int64_t(s.Cout) * t.P), 256, 0, st>>>(M.as<float>(), bias, out, s.Cout, s.OH, s.OW, t,
                                                                      s.relu, vec_rows(out, s.OW));
  SL_CUDA_LAUNCH("conv_winograd_output");
  return true;
}

// gw [Cout][Cin][3][3] of the forward correlation s (x [N][Cin][H][W], gy [N][Cout][OH][OW]); no bias gradient.
inline bool weight_grad(const Shape& s, const float* x, const float* gy, float* gw, const Tensor& on,
                        const char* name) {
  if (!wanted(s)) return false;
  const Tiles t = tiles_of(s);
  const Device dev = on.device();
  cudaStream_t st = stream_of(on);
  const int sms = cuda_rt::sm_count(dev);
  // slices of at least 256 tiles, about three blocks (of 128 x 128 outputs) per SM in all
  const int64_t tiles_out = int64_t((s.Cout + 127) / 128) * ((s.Cin + 127) / 128) * wf::kPoints;
  int split = 1;
  while (split < 64 && tiles_out * split < 3 * sms && t.P / (split * 2) >= 256) split *= 2;
  static const int env_split = [] {  // SPLITLEAK_WINO_SPLIT=s: s slices (tuning runs)
    const char* v = std::getenv("SPLITLEAK_WINO_SPLIT");
    return v ? std::atoi(v) : 0;
  }();
  if (env_split > 0) split = std::min(env_split, t.P);
  const int kc = (t.P + split - 1) / split, chunk = (kc + 15) / 16 * 16, ld = chunk * split;
  DeviceBuffer V(dev, size_t(wf::kPoints) * s.Cin * ld * sizeof(float));
  DeviceBuffer G(dev, size_t(wf::kPoints) * s.Cout * ld * sizeof(float));
  DeviceBuffer dU(dev, size_t(wf::kPoints) * split * s.Cout * s.Cin * sizeof(float));
  input_transform<<<blocks_for(int64_t(s.Cin) * ld), 256, 0, st>>>(x, V.as<float>(), s.Cin, s.H, s.W, s.pad, t, ld);
  SL_CUDA_LAUNCH("conv_winograd_input");
  grad_transform<<<blocks_for(int64_t(s.Cout) * ld), 256, 0, st>>>(gy, G.as<float>(), s.Cout, s.OH, s.OW, t, ld,
                                                                   vec_rows(gy, s.OW));
  SL_CUDA_LAUNCH("conv_winograd_grad");
  PointGemm<true> p{G.as<float>(),        V.as<float>(),       dU.as<float>(),          ld,    ld,   s.Cin, split,
                    int64_t(s.Cout) * ld, int64_t(s.Cin) * ld, int64_t(s.Cout) * s.Cin, chunk, chunk};
  igemm::run_batched(p, wf::kPoints * split, s.Cout, s.Cin, chunk, on, name, kSmallTiles);
  filter_grad_transform<<<blocks_for(int64_t(s.Cout) * s.Cin), 256, 0, st>>>(dU.as<float>(), gw, s.Cout, s.Cin, split);
  SL_CUDA_LAUNCH("conv_winograd_filter_grad");
  return true;
}

}  // namespace sl::cuda::conv::wino
