// Pooling with the general geometry of PoolArgs on the GPU (math as in kernels/cpu/pool2d.cpp; pool.cu keeps the
// tuned unpadded square max pool of the models). Forward: one thread per output scanning its window's taps in
// row-major order. Backward gathers: one thread per input element visits the windows that have it as a tap
// (oh = (ih + pt - i dh) / sh when that divides), in window order, and adds their share (max: the gradient of the
// windows that chose it; average: gradient / divisor). No atomics: deterministic.
#include <cmath>

#include "kernels/cuda/common.cuh"

namespace sl::cuda {

namespace {

struct PoolGeom {
  PoolArgs p;
  int H, W, OH, OW;
};

// Taps i < k of a window starting at `start` inside [lo, hi).
__device__ __forceinline__ int taps_inside(int start, int k, int d, int lo, int hi) {
  int n = 0;
  for (int i = 0; i < k; ++i) n += start + i * d >= lo && start + i * d < hi;
  return n;
}
__device__ __forceinline__ int divisor(const PoolGeom& g, int hs, int ws) {
  const PoolArgs& p = g.p;
  return p.count_include_pad
             ? taps_inside(hs, p.kh, p.dh, -p.pt, g.H + p.pb) * taps_inside(ws, p.kw, p.dw, -p.pl, g.W + p.pr)
             : taps_inside(hs, p.kh, p.dh, 0, g.H) * taps_inside(ws, p.kw, p.dw, 0, g.W);
}

template <class T>
__global__ void pool2d_forward_kernel(const T* x, T* y, int32_t* idx, int64_t total, PoolGeom g) {
  const PoolArgs& p = g.p;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t plane = o / (int64_t(g.OH) * g.OW);
    const int r = int(o - plane * g.OH * g.OW), oh = r / g.OW, ow = r - oh * g.OW;
    const int hs = oh * p.sh - p.pt, ws = ow * p.sw - p.pl;
    const T* xp = x + plane * g.H * g.W;
    if (p.mode == PoolMode::max) {
      T best = T(0);
      int bi = -1;
      for (int i = 0; i < p.kh; ++i) {
        const int ih = hs + i * p.dh;
        if (ih < 0 || ih >= g.H) continue;
        for (int j = 0; j < p.kw; ++j) {
          const int iw = ws + j * p.dw;
          if (iw < 0 || iw >= g.W) continue;
          const T v = xp[ih * g.W + iw];
          if (bi < 0 || v > best || (v != v && best == best)) {  // a NaN wins, as on the CPU
            best = v;
            bi = ih * g.W + iw;
          }
        }
      }
      y[o] = bi < 0 ? T(-INFINITY) : best;  // no tap inside: -inf, index -1
      idx[o] = bi;
    } else {
      T s = T(0);
      for (int i = 0; i < p.kh; ++i) {
        const int ih = hs + i * p.dh;
        if (ih < 0 || ih >= g.H) continue;
        for (int j = 0; j < p.kw; ++j) {
          const int iw = ws + j * p.dw;
          if (iw >= 0 && iw < g.W) s += xp[ih * g.W + iw];
        }
      }
      const int d = divisor(g, hs, ws);
      y[o] = d > 0 ? s / T(d) : T(0);
    }
  }
}

template <class T>
__global__ void pool2d_backward_kernel(const T* gy, const int32_t* idx, T* gx, int64_t total, PoolGeom g) {
  const PoolArgs& p = g.p;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t plane = e / (int64_t(g.H) * g.W);
    const int pos = int(e - plane * g.H * g.W), ih = pos / g.W, iw = pos - ih * g.W;
    const int64_t obase = plane * g.OH * g.OW;
    T acc = T(0);
    for (int i = 0; i < p.kh; ++i) {
      const int th = ih + p.pt - i * p.dh;
      if (th < 0 || th % p.sh) continue;
      const int oh = th / p.sh;
      if (oh >= g.OH) continue;
      for (int j = 0; j < p.kw; ++j) {
        const int tw = iw + p.pl - j * p.dw;
        if (tw < 0 || tw % p.sw) continue;
        const int ow = tw / p.sw;
        if (ow >= g.OW) continue;
        const int64_t o = obase + oh * g.OW + ow;
        if (p.mode == PoolMode::max) {
          if (idx[o] == pos) acc += gy[o];
        } else {
          const int d = divisor(g, oh * p.sh - p.pt, ow * p.sw - p.pl);
          if (d > 0) acc += gy[o] / T(d);
        }
      }
    }
    gx[e] = acc;
  }
}

unsigned grid_for(const Tensor& on, int64_t n) {
  return unsigned(
      std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, int64_t(cuda_rt::sm_count(on.device())) * 16)));
}

PoolGeom geom_of(const Tensor& x, const PoolArgs& p, const Tensor& y, const char* op) {
  SL_CHECK(x.dim() == 4 && y.dim() == 4, ShapeError, op, ": expects [N, C, H, W], got ", x.shape().str(), " and ",
           y.shape().str());
  SL_CHECK(p.kh >= 1 && p.kw >= 1 && p.sh >= 1 && p.sw >= 1 && p.dh >= 1 && p.dw >= 1 && p.pt >= 0 && p.pl >= 0 &&
               p.pb >= 0 && p.pr >= 0,
           ValueError, op, ": window, strides and dilations must be >= 1 and paddings >= 0");
  SL_CHECK(y.size(0) == x.size(0) && y.size(1) == x.size(1) &&
               y.size(2) == pool_out_size(x.size(2), p.kh, p.sh, p.pt, p.pb, p.dh, p.ceil_mode) &&
               y.size(3) == pool_out_size(x.size(3), p.kw, p.sw, p.pl, p.pr, p.dw, p.ceil_mode),
           ShapeError, op, ": output ", y.shape().str(), " does not match input ", x.shape().str());
  check_int32(x.size(2) * x.size(3), op);
  check_int32(int64_t(p.kh) * p.dh + x.size(2) + p.pt, op);
  check_int32(int64_t(p.kw) * p.dw + x.size(3) + p.pl, op);
  return {p, int(x.size(2)), int(x.size(3)), int(y.size(2)), int(y.size(3))};
}

template <class T>
void forward_t(const Tensor& x, const PoolArgs& p, Tensor& y, Tensor& idx) {
  const PoolGeom g = geom_of(x, p, y, "pool2d_forward");
  if (p.mode == PoolMode::max)
    SL_CHECK(idx.defined() && idx.dtype() == DType::i32 && idx.shape() == y.shape(), ValueError,
             "pool2d_forward: indices must be int32 of the output's shape");
  const int64_t total = y.numel();
  if (total == 0) return;
  pool2d_forward_kernel<T><<<grid_for(x, total), 256, 0, stream_of(x)>>>(
      x.data<T>(), y.data<T>(), p.mode == PoolMode::max ? idx.data<int32_t>() : nullptr, total, g);
  SL_CUDA_LAUNCH("pool2d_forward");
}

template <class T>
void backward_t(const Tensor& gy, const Tensor& idx, const PoolArgs& p, Tensor& gx) {
  const PoolGeom g = geom_of(gx, p, gy, "pool2d_backward");
  if (p.mode == PoolMode::max)
    SL_CHECK(idx.defined() && idx.dtype() == DType::i32 && idx.shape() == gy.shape(), ValueError,
             "pool2d_backward: indices must be int32 of grad_output's shape");
  const int64_t total = gx.numel();
  if (total == 0) return;
  pool2d_backward_kernel<T><<<grid_for(gx, total), 256, 0, stream_of(gx)>>>(
      gy.data<T>(), p.mode == PoolMode::max ? idx.data<int32_t>() : nullptr, gx.data<T>(), total, g);
  SL_CUDA_LAUNCH("pool2d_backward");
}

}  // namespace

void pool2d_forward(const Tensor& x, const PoolArgs& p, Tensor& y, Tensor& idx) {
  SL_CUDA_DISPATCH(x, "pool2d_forward", forward_t, x, p, y, idx);
}
void pool2d_backward(const Tensor& gy, const Tensor& idx, const PoolArgs& p, Tensor& gx) {
  SL_CUDA_DISPATCH(gy, "pool2d_backward", backward_t, gy, idx, p, gx);
}

}  // namespace sl::cuda
