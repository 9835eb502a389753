// conv2d on the GPU as three implicit GEMMs (kernels/cuda/igemm.cuh); the im2col matrix is never stored: each
// tile load computes its image coordinates on the fly (fast division by the run-time constants) and reads zero
// for padding taps. Layouts NCHW, weight [Co, C, k, k].
//
//   forward          y[n,co,oh,ow]  = b[co] + sum_{ci,kh,kw} w[co,ci,kh,kw] x[n,ci,oh*s-p+kh,ow*s-p+kw]
//                    GEMM  M = Co, N = batch*OH*OW, K = C*k*k;   A = w (as stored),  B = im2col(x)
//   backward data    gx[n,ci,ih,iw] = sum_{co,kh,kw} w[co,ci,kh,kw] gy[n,co,(ih+p-kh)/s,(iw+p-kw)/s]  (exact division
//   only)
//                    GEMM  M = C,  N = batch*H*W,   K = Co*k*k;  A = w regrouped, B = the scattered gy taps
//   backward weight  gw[co,ci,kh,kw] = sum_{n,oh,ow} gy[n,co,oh,ow] x[n,ci,oh*s-p+kh,ow*s-p+kw]
//                    GEMM  M = Co, N = C*k*k,       K = batch*OH*OW (long: split-K, slices added in order)
//   bias gradient    gb[co] = sum_{n,oh,ow} gy[n,co,oh,ow]  (blocks per channel slice, slices added in order, double)
// Stride-1 layers with at most 16 output channels (forward) or input channels (backward-data) run a direct
// kernel instead (kernels/cuda/conv_direct.cuh); backward data for C <= 4 input channels with a stride runs
// another direct kernel (one thread per gx element). 3x3 stride-1 layers with >= 32 channels on both sides run
// in FP32 through Winograd's F(4x4, 3x3) transforms (kernels/cuda/conv_winograd.cuh), all three passes.
// Every output element is written by exactly one thread, in a fixed summation order: deterministic, no atomics.
// Layers with another geometry (non-square kernels, per-axis strides, padding per side, dilation, groups: ConvArgs)
// run the plain direct kernels of kernels/cuda/conv_general.cu.
#include "kernels/cuda/conv_direct.cuh"
#include "kernels/cuda/conv_raw.cuh"
#include "kernels/cuda/conv_winograd.cuh"
#include "kernels/cuda/igemm.cuh"

namespace sl::cuda {

namespace conv {
namespace {

// Each problem reads A(m, k) and B(k, n) through *_src (the element's address, ok = false for a zero tap: the
// tensor-core path copies from there with cp.async) and a()/b() (the value, for the FFMA path).
template <class T>
struct Fwd {
  static constexpr bool kAContigK = true, kBContigN = true, kConv = true;
  const T* x;
  const T* w;
  const T* bias;
  T* y;
  int C, H, W, Co, OHW, K, stride, pad;
  FastDiv d_ohw, d_ow, d_kk, d_ks;
  bool relu;
  __device__ const T* a_src(int m, int k, bool& ok) const {
    ok = true;
    return w + m * K + k;
  }
  __device__ const T* b_src(int k, int n, bool& ok) const {
    uint32_t img, r, oh, ow, ci, rr, kh, kw;
    d_ohw.divmod(n, img, r);
    d_ow.divmod(r, oh, ow);
    d_kk.divmod(k, ci, rr);
    d_ks.divmod(rr, kh, kw);
    const int ih = int(oh) * stride - pad + int(kh), iw = int(ow) * stride - pad + int(kw);
    ok = unsigned(ih) < unsigned(H) && unsigned(iw) < unsigned(W);
    return ok ? x + ((int(img) * C + int(ci)) * H + ih) * W + iw : x;
  }
  __device__ T a(int m, int k) const { return w[m * K + k]; }
  __device__ T b(int k, int n) const {
    bool ok;
    const T* q = b_src(k, n, ok);
    return ok ? *q : T(0);
  }
  __device__ void store(int m, int n, T v) const {
    uint32_t img, r;
    d_ohw.divmod(n, img, r);
    if (bias) v += bias[m];
    if (relu && !(v > T(0))) v = T(0);
    y[(int(img) * Co + m) * OHW + int(r)] = v;
  }
};

template <class T>
struct BwdData {
  static constexpr bool kAContigK = true, kBContigN = true, kConv = true;
  const T* gy;
  const T* w;
  const T* bias;
  T* gx;
  int C, HW, Co, OH, OW, KK, stride, pad;
  FastDiv d_hw, d_w, d_kk, d_ks;
  __device__ const T* a_src(int m, int k, bool& ok) const {  // w[co, ci = m, kh, kw] with k = (co, kh, kw)
    uint32_t co, r;
    d_kk.divmod(k, co, r);
    ok = true;
    return w + (int(co) * C + m) * KK + int(r);
  }
  __device__ const T* b_src(int k, int n, bool& ok) const {
    uint32_t img, r, ih, iw, co, rr, kh, kw;
    d_hw.divmod(n, img, r);
    d_w.divmod(r, ih, iw);
    d_kk.divmod(k, co, rr);
    d_ks.divmod(rr, kh, kw);
    int th = int(ih) + pad - int(kh), tw = int(iw) + pad - int(kw);
    ok = th >= 0 && tw >= 0;
    if (stride != 1) {
      ok = ok && th % stride == 0 && tw % stride == 0;
      th /= stride;
      tw /= stride;
    }
    ok = ok && th < OH && tw < OW;
    return ok ? gy + ((int(img) * Co + int(co)) * OH + th) * OW + tw : gy;
  }
  __device__ T a(int m, int k) const {
    bool ok;
    return *a_src(m, k, ok);
  }
  __device__ T b(int k, int n) const {
    bool ok;
    const T* q = b_src(k, n, ok);
    return ok ? *q : T(0);
  }
  __device__ void store(int m, int n, T v) const {
    uint32_t img, r;
    d_hw.divmod(n, img, r);
    gx[(int(img) * C + m) * HW + int(r)] = bias ? v + bias[m] : v;
  }
};

// With gb, the GEMM has one column more (n = NCOL): B(k, NCOL) = 1, so that column of C is the bias gradient
// (the sum of gy over images and positions), finished and stored with the weights: no separate reduction.
// Loaded "staged along K" (igemm.cuh): a position k is decomposed once per slice (k_pos), a column n once per
// thread (n_col), so an element costs an add and a bounds check.
template <class T>
struct BwdWeight {
  static constexpr bool kAContigK = true, kBContigN = false, kConv = true, kStagedK = true;
  const T* x;
  const T* gy;
  T* gw;
  int C, H, W, Co, OHW, NCOL, stride, pad;
  FastDiv d_ohw, d_ow, d_kk, d_ks;
  T* gb;
  struct KPos {
    const T* gy_at;  // gy[img, 0, oh, ow]
    const T* x_at;   // x[img, 0, ih0, iw0] (an address only: may lie outside x)
    int ih0, iw0;    // the window's corner in x
  };
  __device__ KPos k_pos(int k) const {
    uint32_t img, r, oh, ow;
    d_ohw.divmod(uint32_t(k), img, r);
    d_ow.divmod(r, oh, ow);
    const int ih0 = int(oh) * stride - pad, iw0 = int(ow) * stride - pad;
    return {gy + int64_t(img) * Co * OHW + r, x + int64_t(img) * C * H * W + (ih0 * W + iw0), ih0, iw0};
  }
  __device__ const T* a_at(const KPos& kp, int m) const { return kp.gy_at + m * OHW; }
  struct NCol {
    int off, kh, kw;  // off = ci H W + kh W + kw; off < 0: the bias column
  };
  __device__ NCol n_col(int n) const {
    if (n >= NCOL) return {-1, 0, 0};
    uint32_t ci, rr, kh, kw;
    d_kk.divmod(uint32_t(n), ci, rr);
    d_ks.divmod(rr, kh, kw);
    return {(int(ci) * H + int(kh)) * W + int(kw), int(kh), int(kw)};
  }
  __device__ const T* b_at(const KPos& kp, const NCol& c, bool& ok) const {
    if (c.off < 0) {
      ok = true;
      return one_ptr<T>();
    }
    ok = unsigned(kp.ih0 + c.kh) < unsigned(H) && unsigned(kp.iw0 + c.kw) < unsigned(W);
    return kp.x_at + c.off;
  }
  __device__ const T* a_src(int m, int k, bool& ok) const {  // gy[img, co = m, r] with k = (img, r)
    uint32_t img, r;
    d_ohw.divmod(k, img, r);
    ok = true;
    return gy + (int(img) * Co + m) * OHW + int(r);
  }
  __device__ void store(int m, int n, T v) const {
    if (n < NCOL)
      gw[m * NCOL + n] = v;
    else
      gb[m] = v;
  }
};

// ---- tap-major problems for the tensor-core path (float) ------------------------------------------------------
// K ordered tap-major, k = tap * G + g (g: the summed channel, G = C for forward, Co for backward-data), with A the
// weights regrouped so that k is contiguous ([Co][KK][C], resp. [C][KK][Co], regroup_weights). With G % 16 == 0
// every 16-wide K slice is one filter tap and 16 consecutive channels: a thread's im2col arithmetic (image,
// position, tap, bounds) is done once per slice for its column, and the slice's elements are a channel plane
// apart (b_kstride). See kernels/cuda/igemm_mma.cuh (staged B).
struct FwdT {
  static constexpr bool kAContigK = true, kBContigN = true, kStagedB = true, kConv = true;
  const float* x;
  const float* wt;  // [Co][KK][C]
  const float* bias;
  float* y;
  int C, H, W, Co, OHW, K, stride, pad, b_kstride;  // K = KK * C, b_kstride = H * W
  FastDiv d_ohw, d_ow, d_c, d_ks;
  bool relu;
  struct BCol {
    const float* img;
    int ih0, iw0;
  };
  __device__ BCol b_col(int n) const {
    uint32_t img, r, oh, ow;
    d_ohw.divmod(uint32_t(n), img, r);
    d_ow.divmod(r, oh, ow);
    return {x + int64_t(img) * C * H * W, int(oh) * stride - pad, int(ow) * stride - pad};
  }
  __device__ const float* b_slice(const BCol& c, int k0, bool& ok) const {
    uint32_t tap, ci0, kh, kw;
    d_c.divmod(uint32_t(k0), tap, ci0);
    d_ks.divmod(tap, kh, kw);
    const int ih = c.ih0 + int(kh), iw = c.iw0 + int(kw);
    ok = unsigned(ih) < unsigned(H) && unsigned(iw) < unsigned(W);
    return ok ? c.img + (int(ci0) * H + ih) * W + iw : x;
  }
  __device__ const float* a_src(int m, int k, bool& ok) const {
    ok = true;
    return wt + m * K + k;
  }
  __device__ float a(int m, int k) const { return wt[m * K + k]; }
  __device__ void store(int m, int n, float v) const {
    uint32_t img, r;
    d_ohw.divmod(uint32_t(n), img, r);
    if (bias) v += bias[m];
    if (relu && !(v > 0.f)) v = 0.f;
    y[(int(img) * Co + m) * OHW + int(r)] = v;
  }
};

struct BwdDataT {  // stride 1
  static constexpr bool kAContigK = true, kBContigN = true, kStagedB = true, kConv = true;
  const float* gy;
  const float* wt;  // [C][KK][Co]
  const float* bias;
  float* gx;
  int C, HW, Co, OH, OW, K, pad, b_kstride;  // K = KK * Co, b_kstride = OH * OW
  FastDiv d_hw, d_w, d_co, d_ks;
  struct BCol {
    const float* img;
    int ih, iw;  // the gx position plus the padding
  };
  __device__ BCol b_col(int n) const {
    uint32_t img, r, ih, iw;
    d_hw.divmod(uint32_t(n), img, r);
    d_w.divmod(r, ih, iw);
    return {gy + int64_t(img) * Co * OH * OW, int(ih) + pad, int(iw) + pad};
  }
  __device__ const float* b_slice(const BCol& c, int k0, bool& ok) const {
    uint32_t tap, co0, kh, kw;
    d_co.divmod(uint32_t(k0), tap, co0);
    d_ks.divmod(tap, kh, kw);
    const int th = c.ih - int(kh), tw = c.iw - int(kw);
    ok = unsigned(th) < unsigned(OH) && unsigned(tw) < unsigned(OW);
    return ok ? c.img + (int(co0) * OH + th) * OW + tw : gy;
  }
  __device__ const float* a_src(int m, int k, bool& ok) const {
    ok = true;
    return wt + m * K + k;
  }
  __device__ float a(int m, int k) const { return wt[m * K + k]; }
  __device__ void store(int m, int n, float v) const {
    uint32_t img, r;
    d_hw.divmod(uint32_t(n), img, r);
    gx[(int(img) * C + m) * HW + int(r)] = bias ? v + bias[m] : v;
  }
};

// w [Co][C][KK] -> wt [Co][KK][C] (by_input = false, forward) or [C][KK][Co] (by_input = true, backward-data).
__global__ void regroup_weights(const float* w, float* wt, int Co, int C, int KK, bool by_input) {
  const int total = Co * C * KK;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const int co = i / (C * KK), rem = i - co * C * KK, ci = rem / KK, tap = rem - ci * KK;
    if (by_input)
      wt[(ci * KK + tap) * Co + co] = w[i];
    else
      wt[(co * KK + tap) * C + ci] = w[i];
  }
}

// SPLITLEAK_FFMA_TAPMAJOR=0: the FP32 (FFMA) path reads B element by element through the generic im2col view
// instead of tap-major slices (for A/B measurements).
bool ffma_tap_major() {
  static const bool on = [] {
    const char* v = std::getenv("SPLITLEAK_FFMA_TAPMAJOR");
    return !(v && v[0] == '0');
  }();
  return on;
}

// Whether convolutions run in FP32 (FFMA) arithmetic; the Winograd path is FP32 only.
bool fp32_convs() { return kern::cuda_matmul_precision().conv == MatmulPrecision::fp32; }

// Runs the regrouped-weight (tap-major) path: the tensor cores when the precision asks for TF32/3xTF32, else the
// FFMA tiles with staged B slices (igemm.cuh); false when it does not apply (channels not a multiple of 16, or
// backward-data with a stride).
bool forward_tap_major(const Geom& g, const float* x, const float* w, const float* bias, float* y, const Tensor& on) {
  const MatmulPrecision pr = kern::cuda_matmul_precision().conv;
  if (g.C % 16 != 0 || (pr == MatmulPrecision::fp32 && !ffma_tap_major())) return false;
  const int KK = g.KS * g.KS, K = KK * g.C, OHW = g.OH * g.OW;
  DeviceBuffer wt(on.device(), size_t(g.Co) * K * sizeof(float));
  cudaStream_t st = stream_of(on);
  regroup_weights<<<std::min((g.Co * K + 255) / 256, 1024), 256, 0, st>>>(w, wt.as<float>(), g.Co, g.C, KK, false);
  SL_CUDA_LAUNCH("conv2d_forward_regroup");
  FwdT p{x,
         wt.as<float>(),
         bias,
         y,
         g.C,
         g.H,
         g.W,
         g.Co,
         OHW,
         K,
         g.stride,
         g.pad,
         g.H * g.W,
         FastDiv(uint32_t(OHW)),
         FastDiv(uint32_t(g.OW)),
         FastDiv(uint32_t(g.C)),
         FastDiv(uint32_t(g.KS)),
         g.relu};
  if (pr == MatmulPrecision::fp32)
    igemm::run<float>(p, g.Co, g.N * OHW, K, on, "conv2d_forward_tapmajor");
  else
    igemm::run_mma(p, g.Co, g.N * OHW, K, on, "conv2d_forward_mma", pr == MatmulPrecision::tf32x3 ? 3 : 1);
  return true;
}

bool backward_data_tap_major(const Geom& g, const float* gy, const float* w, const float* bias, float* gx,
                             const Tensor& on) {
  const MatmulPrecision pr = kern::cuda_matmul_precision().conv;
  if (g.Co % 16 != 0 || g.stride != 1 || g.C <= 4 || (pr == MatmulPrecision::fp32 && !ffma_tap_major())) return false;
  const int KK = g.KS * g.KS, K = KK * g.Co, HW = g.H * g.W;
  DeviceBuffer wt(on.device(), size_t(g.C) * K * sizeof(float));
  cudaStream_t st = stream_of(on);
  regroup_weights<<<std::min((g.C * K + 255) / 256, 1024), 256, 0, st>>>(w, wt.as<float>(), g.Co, g.C, KK, true);
  SL_CUDA_LAUNCH("conv2d_backward_data_regroup");
  BwdDataT p{gy,
             wt.as<float>(),
             bias,
             gx,
             g.C,
             HW,
             g.Co,
             g.OH,
             g.OW,
             K,
             g.pad,
             g.OH * g.OW,
             FastDiv(uint32_t(HW)),
             FastDiv(uint32_t(g.W)),
             FastDiv(uint32_t(g.Co)),
             FastDiv(uint32_t(g.KS))};
  if (pr == MatmulPrecision::fp32)
    igemm::run<float>(p, g.C, g.N * HW, K, on, "conv2d_backward_data_tapmajor");
  else
    igemm::run_mma(p, g.C, g.N * HW, K, on, "conv2d_backward_data_mma", pr == MatmulPrecision::tf32x3 ? 3 : 1);
  return true;
}

// Bias gradients: slice s of channel c sums a fixed range of the channel's N*HW values (block c, s); the last
// slice block of a channel to finish (a ticket in cuda_rt::tile_counters) adds the channel's slices in order
// with one warp (as channel_sums_finish does when there are more channels than counters). The split depends on
// the shape only: deterministic. One slice: the block writes the channel's sum directly.
template <class T>
__global__ void channel_sums_partial(const T* t, int C, int HW, int total, int per_slice, FastDiv d_hw, double* partial,
                                     T* out, unsigned* counters) {
  const int c = blockIdx.x, sl = blockIdx.y;
  const int beg = sl * per_slice, end = min(total, beg + per_slice);
  double s = 0;
  for (int i = beg + int(threadIdx.x); i < end; i += blockDim.x) {
    uint32_t n, r;
    d_hw.divmod(uint32_t(i), n, r);
    s += double(t[(int64_t(n) * C + c) * HW + r]);
  }
  s = block_sum(s);
  if (gridDim.y == 1) {
    if (threadIdx.x == 0) out[c] = T(s);
    return;
  }
  if (threadIdx.x == 0) partial[c * gridDim.y + sl] = s;
  if (!counters) return;
  __shared__ unsigned s_last;
  if (threadIdx.x == 0) {
    __threadfence();
    s_last = atomicAdd(&counters[c], 1u) == gridDim.y - 1 ? 1u : 0u;
  }
  __syncthreads();
  if (!s_last || threadIdx.x >= 32) return;
  __threadfence();
  double v = 0;
  for (int i = int(threadIdx.x); i < int(gridDim.y); i += 32) v += __ldcg(&partial[c * gridDim.y + i]);
  v = warp_sum(v);
  if (threadIdx.x == 0) {
    out[c] = T(v);
    counters[c] = 0u;
  }
}
template <class T>
__global__ void channel_sums_finish(const double* partial, int C, int slices, T* out) {
  const int c = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (c >= C) return;
  double s = 0;
  for (int i = lane; i < slices; i += 32) s += partial[c * slices + i];
  s = warp_sum(s);
  if (lane == 0) out[c] = T(s);
}

// Backward data for very few input channels (the image layer: C = 1 or 3), where a GEMM with M = C would waste
// most of every tile: one thread per input pixel (n, ih, iw) sums the taps of all C <= 4 channels at once, so
// each gy value is read once for all of them (same math, another summation order). KS_ > 0: the kernel size as a
// compile-time constant (3 and 5 unroll), 0: read from g.
template <class T, bool kUnitStride, int KS_>
__global__ void bwd_data_direct_kernel(const T* __restrict__ gy, const T* __restrict__ w, const T* bias,
                                       T* __restrict__ gx, Geom g) {
  constexpr int kMaxC = 4;
  const int KS = KS_ > 0 ? KS_ : g.KS, KK = KS * KS;
  const int HW = g.H * g.W, OHW = g.OH * g.OW, C = g.C;
  const int64_t total = int64_t(g.N) * HW;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int img = int(e / HW), r = int(e - int64_t(img) * HW), ih = r / g.W, iw = r - ih * g.W;
    T acc[kMaxC] = {T(0), T(0), T(0), T(0)};
    for (int co = 0; co < g.Co; ++co) {
      const T* gyp = gy + (int64_t(img) * g.Co + co) * OHW;
      const T* wp = w + int64_t(co) * C * KK;
#pragma unroll
      for (int kh = 0; kh < KS; ++kh) {
        int oh = ih + g.pad - kh;
        if (oh < 0) continue;
        if (!kUnitStride) {
          if (oh % g.stride) continue;
          oh /= g.stride;
        }
        if (oh >= g.OH) continue;
#pragma unroll
        for (int kw = 0; kw < KS; ++kw) {
          int ow = iw + g.pad - kw;
          if (ow < 0) continue;
          if (!kUnitStride) {
            if (ow % g.stride) continue;
            ow /= g.stride;
          }
          if (ow >= g.OW) continue;
          const T v = gyp[oh * g.OW + ow];
#pragma unroll
          for (int ci = 0; ci < kMaxC; ++ci)
            if (ci < C) acc[ci] += wp[ci * KK + kh * KS + kw] * v;
        }
      }
    }
#pragma unroll
    for (int ci = 0; ci < kMaxC; ++ci)
      if (ci < C) gx[(int64_t(img) * C + ci) * HW + r] = bias ? acc[ci] + bias[ci] : acc[ci];
  }
}

template <class T, bool kUnitStride>
void launch_bwd_data_direct(const Geom& g, const T* gy, const T* w, const T* bias, T* gx, unsigned blocks,
                            cudaStream_t st) {
  if (g.KS == 3)
    bwd_data_direct_kernel<T, kUnitStride, 3><<<blocks, 256, 0, st>>>(gy, w, bias, gx, g);
  else if (g.KS == 5)
    bwd_data_direct_kernel<T, kUnitStride, 5><<<blocks, 256, 0, st>>>(gy, w, bias, gx, g);
  else
    bwd_data_direct_kernel<T, kUnitStride, 0><<<blocks, 256, 0, st>>>(gy, w, bias, gx, g);
}

void check_geom(const Geom& g, const char* op) {
  SL_CHECK(g.KS > 0 && g.stride > 0 && g.pad >= 0, ValueError, op, ": kernel ", g.KS, ", stride ", g.stride, ", pad ",
           g.pad, " not supported");
  check_int32(int64_t(g.N) * g.C * g.H * g.W, op);
  check_int32(int64_t(g.N) * g.Co * g.OH * g.OW, op);
  check_int32(int64_t(g.Co) * g.C * g.KS * g.KS, op);
}

}  // namespace

template <class T>
void forward(const Geom& g, const T* x, const T* w, const T* bias, T* y, const Tensor& on) {
  check_geom(g, "conv2d_forward");
  if constexpr (std::is_same_v<T, float>) {
    if (g.stride == 1 && direct::run({g.N, g.C, g.H, g.W, g.Co, g.OH, g.OW, g.pad, g.relu}, g.KS, false, x, w, bias, y,
                                     on, "conv2d_forward_direct"))
      return;
    if (g.stride == 1 && g.KS == 3 && fp32_convs() &&
        wino::correlate({g.N, g.C, g.H, g.W, g.Co, g.OH, g.OW, g.pad, g.relu}, false, x, w, bias, y, on,
                        "conv2d_forward_winograd"))
      return;
    if (forward_tap_major(g, x, w, bias, y, on)) return;
  }
  const int KK = g.KS * g.KS, OHW = g.OH * g.OW;
  Fwd<T> p{x,
           w,
           bias,
           y,
           g.C,
           g.H,
           g.W,
           g.Co,
           OHW,
           g.C * KK,
           g.stride,
           g.pad,
           FastDiv(uint32_t(OHW)),
           FastDiv(uint32_t(g.OW)),
           FastDiv(uint32_t(KK)),
           FastDiv(uint32_t(g.KS)),
           g.relu};
  igemm::run<T>(p, g.Co, g.N * OHW, g.C * KK, on, "conv2d_forward_igemm");
}

template <class T>
void backward_data(const Geom& g, const T* gy, const T* w, const T* bias, T* gx, const Tensor& on) {
  check_geom(g, "conv2d_backward_data");
  const int KK = g.KS * g.KS, HW = g.H * g.W;
  if constexpr (std::is_same_v<T, float>) {
    if (g.stride == 1 && direct::run({g.N, g.Co, g.OH, g.OW, g.C, g.H, g.W, g.KS - 1 - g.pad}, g.KS, true, gy, w, bias,
                                     gx, on, "conv2d_backward_data_direct"))
      return;
    if (g.stride == 1 && g.KS == 3 && fp32_convs() &&
        wino::correlate({g.N, g.Co, g.OH, g.OW, g.C, g.H, g.W, g.KS - 1 - g.pad}, true, gy, w, bias, gx, on,
                        "conv2d_backward_data_winograd"))
      return;
  }
  if (g.C <= 4) {
    const int64_t total = int64_t(g.N) * HW;  // one thread per input pixel
    if (total == 0 || g.C == 0) return;
    const unsigned blocks =
        unsigned(std::min<int64_t>((total + 255) / 256, int64_t(cuda_rt::sm_count(on.device())) * 16));
    if (g.stride == 1)
      launch_bwd_data_direct<T, true>(g, gy, w, bias, gx, blocks, stream_of(on));
    else
      launch_bwd_data_direct<T, false>(g, gy, w, bias, gx, blocks, stream_of(on));
    SL_CUDA_LAUNCH("conv2d_backward_data_direct");
    return;
  }
  if constexpr (std::is_same_v<T, float>)
    if (backward_data_tap_major(g, gy, w, bias, gx, on)) return;
  BwdData<T> p{gy,
               w,
               bias,
               gx,
               g.C,
               HW,
               g.Co,
               g.OH,
               g.OW,
               KK,
               g.stride,
               g.pad,
               FastDiv(uint32_t(HW)),
               FastDiv(uint32_t(g.W)),
               FastDiv(uint32_t(KK)),
               FastDiv(uint32_t(g.KS))};
  igemm::run<T>(p, g.C, g.N * HW, g.Co * KK, on, "conv2d_backward_data_igemm");
}

template <class T>
void backward_weight(const Geom& g, const T* x, const T* gy, T* gw, T* gb, const Tensor& on) {
  check_geom(g, "conv2d_backward_weight");
  const int KK = g.KS * g.KS, OHW = g.OH * g.OW;
  BwdWeight<T> p{x,
                 gy,
                 gw,
                 g.C,
                 g.H,
                 g.W,
                 g.Co,
                 OHW,
                 g.C * KK,
                 g.stride,
                 g.pad,
                 FastDiv(uint32_t(OHW)),
                 FastDiv(uint32_t(g.OW)),
                 FastDiv(uint32_t(KK)),
                 FastDiv(uint32_t(g.KS)),
                 gb};
  if (g.N * OHW == 0) {  // no positions: the gradients are zero
    SL_CUDA_CHECK(cudaMemsetAsync(gw, 0, size_t(g.Co) * g.C * KK * sizeof(T), stream_of(on)));
    if (gb) SL_CUDA_CHECK(cudaMemsetAsync(gb, 0, size_t(g.Co) * sizeof(T), stream_of(on)));
    return;
  }
  if constexpr (std::is_same_v<T, float>)
    if (g.stride == 1 && g.KS == 3 && fp32_convs() &&
        wino::weight_grad({g.N, g.C, g.H, g.W, g.Co, g.OH, g.OW, g.pad}, x, gy, gw, on,
                          "conv2d_backward_weight_winograd")) {
      if (gb) channel_sums(gy, g.N, g.Co, OHW, gb, on);
      return;
    }
  igemm::run<T>(p, g.Co, g.C * KK + (gb ? 1 : 0), g.N * OHW, on, "conv2d_backward_weight_igemm");
}

template <class T>
void channel_sums(const T* t, int N, int C, int HW, T* gb, const Tensor& on) {
  if (C == 0) return;
  cudaStream_t st = stream_of(on);
  const int total = N * HW;
  if (total == 0) {
    SL_CUDA_CHECK(cudaMemsetAsync(gb, 0, size_t(C) * sizeof(T), st));
    return;
  }
  // about four blocks per SM over all channels, each slice at least 2048 values
  const int want = std::max(1, (4 * cuda_rt::sm_count(on.device()) + C - 1) / C);
  const int slices = std::max(1, std::min({want, (total + 2047) / 2048, 256}));
  const int per_slice = (total + slices - 1) / slices;
  DeviceBuffer partial(on.device(), size_t(C) * slices * sizeof(double));
  const bool fused = C <= cuda_rt::kTileCounters;
  channel_sums_partial<T><<<dim3(unsigned(C), unsigned(slices)), 256, 0, st>>>(
      t, C, HW, total, per_slice, FastDiv(uint32_t(HW)), partial.as<double>(), gb,
      fused ? cuda_rt::tile_counters(on.device()) : nullptr);
  SL_CUDA_LAUNCH("conv_bias_grad");
  if (fused || slices == 1) return;
  channel_sums_finish<T><<<(C + 7) / 8, 256, 0, st>>>(partial.as<double>(), C, slices, gb);
  SL_CUDA_LAUNCH("conv_bias_grad_finish");
}

template void forward<float>(const Geom&, const float*, const float*, const float*, float*, const Tensor&);
template void forward<double>(const Geom&, const double*, const double*, const double*, double*, const Tensor&);
template void backward_data<float>(const Geom&, const float*, const float*, const float*, float*, const Tensor&);
template void backward_data<double>(const Geom&, const double*, const double*, const double*, double*, const Tensor&);
template void backward_weight<float>(const Geom&, const float*, const float*, float*, float*, const Tensor&);
template void backward_weight<double>(const Geom&, const double*, const double*, double*, double*, const Tensor&);
template void channel_sums<float>(const float*, int, int, int, float*, const Tensor&);
template void channel_sums<double>(const double*, int, int, int, double*, const Tensor&);

}  // namespace conv

void debug_force_conv_winograd(int mode) {
  SL_CHECK(mode >= -1 && mode <= 1, ValueError, "debug_force_conv_winograd: mode ", mode, " (-1 .. 1)");
  conv::wino::g_forced = mode;
}

int debug_conv_direct_blocks() { return conv::direct::kNumBlocks; }

void debug_force_conv_direct(int mode) {
  SL_CHECK(mode >= -1 && mode <= conv::direct::kNumBlocks, ValueError, "debug_force_conv_direct: mode ", mode,
           " (-1 .. ", conv::direct::kNumBlocks, ")");
  conv::direct::g_forced = mode;
}

namespace {
// Whether a conv2d of weight w with geometry a leaves the tuned paths for the general kernels (conv_general.cu).
bool general_geometry(const Tensor& w, const ConvArgs& a) { return !a.uniform() || w.size(2) != w.size(3); }

// The general view of x [N, C, H, W], w [Co, C / groups, kh, kw], y [N, Co, OH, OW].
conv::GeomExt geom_ext_of(const Tensor& x, const Tensor& w, const Tensor& y, ConvArgs a, const char* op) {
  SL_CHECK(x.dim() == 4 && w.dim() == 4 && y.dim() == 4, ShapeError, op, ": expects 4-d x, weight and output, got ",
           x.shape().str(), ", ", w.shape().str(), ", ", y.shape().str());
  SL_CHECK(a.groups >= 1 && w.size(1) * a.groups == x.size(1) && y.size(1) == w.size(0) && w.size(0) % a.groups == 0 &&
               y.size(0) == x.size(0) &&
               y.size(2) == conv_out_size_ext(x.size(2), int(w.size(2)), a.sh(), a.pt(), a.pb(), a.dilation_h) &&
               y.size(3) == conv_out_size_ext(x.size(3), int(w.size(3)), a.sw(), a.pl(), a.pr(), a.dilation_w),
           ShapeError, op, ": x ", x.shape().str(), ", weight ", w.shape().str(), " and output ", y.shape().str(),
           " do not fit the geometry");
  return {int(x.size(0)), int(x.size(1)), int(x.size(2)), int(x.size(3)), int(w.size(0)), int(y.size(2)),
          int(y.size(3)), int(w.size(2)), int(w.size(3)), a.sh(),         a.sw(),         a.pt(),
          a.pl(),         a.dilation_h,   a.dilation_w,   a.groups};
}

// The conv2d view of x [N, C, H, W], w [Co, C, k, k], y [N, Co, OH, OW].
conv::Geom geom_of(const Tensor& x, const Tensor& w, const Tensor& y, ConvArgs a, const char* op) {
  SL_CHECK(x.dim() == 4 && w.dim() == 4 && y.dim() == 4, ShapeError, op, ": expects 4-d x, weight and output, got ",
           x.shape().str(), ", ", w.shape().str(), ", ", y.shape().str());
  SL_CHECK(w.size(2) == w.size(3) && w.size(1) == x.size(1) && y.size(1) == w.size(0) && y.size(0) == x.size(0),
           ShapeError, op, ": x ", x.shape().str(), ", weight ", w.shape().str(), " and output ", y.shape().str(),
           " do not fit");
  return {int(x.size(0)), int(x.size(1)), int(x.size(2)), int(x.size(3)), int(w.size(0)),
          int(w.size(2)), int(y.size(2)), int(y.size(3)), a.stride,       a.pad};
}

template <class T>
void conv2d_forward_t(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, Tensor& y) {
  if (general_geometry(w, a)) {
    conv::GeomExt g = geom_ext_of(x, w, y, a, "conv2d_forward");
    g.relu = a.relu;
    conv::general_forward<T>(g, x.data<T>(), w.data<T>(), b.defined() ? b.data<T>() : nullptr, y.data<T>(), x);
    return;
  }
  conv::Geom g = geom_of(x, w, y, a, "conv2d_forward");
  g.relu = a.relu;
  conv::forward<T>(g, x.data<T>(), w.data<T>(), b.defined() ? b.data<T>() : nullptr, y.data<T>(), x);
}
template <class T>
void conv2d_backward_data_t(const Tensor& gy, const Tensor& w, ConvArgs a, Tensor& gx) {
  if (general_geometry(w, a)) {
    const conv::GeomExt g = geom_ext_of(gx, w, gy, a, "conv2d_backward_data");
    conv::general_backward_data<T>(g, gy.data<T>(), w.data<T>(), nullptr, gx.data<T>(), gy);
    return;
  }
  conv::Geom g = geom_of(gx, w, gy, a, "conv2d_backward_data");
  conv::backward_data<T>(g, gy.data<T>(), w.data<T>(), nullptr, gx.data<T>(), gy);
}
template <class T>
void conv2d_backward_weight_t(const Tensor& x, const Tensor& gy, ConvArgs a, Tensor& gw, Tensor& gb) {
  if (general_geometry(gw, a)) {
    const conv::GeomExt g = geom_ext_of(x, gw, gy, a, "conv2d_backward_weight");
    conv::general_backward_weight<T>(g, x.data<T>(), gy.data<T>(), gw.data<T>(), x);
    if (gb.defined()) conv::channel_sums<T>(gy.data<T>(), g.N, g.Co, g.OH * g.OW, gb.data<T>(), x);
    return;
  }
  conv::Geom g = geom_of(x, gw, gy, a, "conv2d_backward_weight");
  conv::backward_weight<T>(g, x.data<T>(), gy.data<T>(), gw.data<T>(), gb.defined() ? gb.data<T>() : nullptr, x);
}
// relu + 2 x 2 / 2 pool in the direct kernel's epilogue where it applies; otherwise the conv with its ReLU
// epilogue into a temporary, then max_pool2d_forward.
template <class T>
void conv2d_relu_pool_forward_t(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, int k, int stride,
                                Tensor& y, Tensor& idx) {
  const char* op = "conv2d_relu_pool_forward";
  SL_CHECK(x.dim() == 4 && w.dim() == 4 && y.dim() == 4, ShapeError, op, ": expects 4-d x, weight and output, got ",
           x.shape().str(), ", ", w.shape().str(), ", ", y.shape().str());
  a.relu = true;
  SL_CHECK(!general_geometry(w, a), ValueError, op, ": the fused op takes the square geometry only");
  const int ks = int(w.size(2));
  const Shape cs{x.size(0), w.size(0), conv_out_size(x.size(2), ks, a.stride, a.pad),
                 conv_out_size(x.size(3), ks, a.stride, a.pad)};
  SL_CHECK(cs[2] > 0 && cs[3] > 0, ShapeError, op, ": kernel ", ks, " does not fit the input ", x.shape().str());
  SL_CHECK(idx.dtype() == DType::i32 && idx.shape() == y.shape(), ValueError, op, ": indices ", idx.str(),
           " must be int32 of the output's shape ", y.shape().str());
  if constexpr (std::is_same_v<T, float>) {
    if (k == 2 && stride == 2 && a.stride == 1 && y.shape() == Shape{cs[0], cs[1], cs[2] / 2, cs[3] / 2}) {
      conv::Geom g{int(cs[0]), int(x.size(1)), int(x.size(2)), int(x.size(3)), int(cs[1]),
                   ks,         int(cs[2]),     int(cs[3]),     a.stride,       a.pad};
      g.relu = true;
      SL_CHECK(w.size(1) == x.size(1), ShapeError, op, ": x ", x.shape().str(), " and weight ", w.shape().str(),
               " do not fit");
      check_int32(int64_t(g.N) * g.Co * g.OH * g.OW, op);
      if (conv::direct::run({g.N, g.C, g.H, g.W, g.Co, g.OH, g.OW, g.pad, true}, g.KS, false, x.data<float>(),
                            w.data<float>(), b.defined() ? b.data<float>() : nullptr, y.data<float>(), x,
                            "conv2d_relu_pool_forward_direct", idx.data<int32_t>()))
        return;
    }
  }
  Tensor c = Tensor::empty(cs, x.dtype(), x.device());
  conv2d_forward_t<T>(x, w, b, a, c);
  max_pool2d_forward(c, k, stride, y, idx);
}
}  // namespace

void conv2d_relu_pool_forward(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, int k, int stride,
                              Tensor& y, Tensor& idx) {
  SL_CUDA_DISPATCH(x, "conv2d_relu_pool_forward", conv2d_relu_pool_forward_t, x, w, b, a, k, stride, y, idx);
}
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, Tensor& y) {
  SL_CUDA_DISPATCH(x, "conv2d_forward", conv2d_forward_t, x, w, b, a, y);
}
void conv2d_backward_data(const Tensor& gy, const Tensor& w, ConvArgs a, Tensor& gx) {
  SL_CUDA_DISPATCH(gy, "conv2d_backward_data", conv2d_backward_data_t, gy, w, a, gx);
}
void conv2d_backward_weight(const Tensor& x, const Tensor& gy, ConvArgs a, Tensor& gw, Tensor& gb) {
  SL_CUDA_DISPATCH(x, "conv2d_backward_weight", conv2d_backward_weight_t, x, gy, a, gw, gb);
}

}  // namespace sl::cuda
