// Broadcasting and per-channel kernels on the GPU (math as in kernels/cpu/broadcast.cpp):
//   add_broadcast   one thread per output element, the operands' offsets from kernels/broadcast.h
//   sum_to_shape    one thread per output element, summing the reduced dims in index order (double)
//   channel_affine  forward and gx one thread per element; gscale/gshift one block per channel, each thread a fixed
//                   share of the channel's (n, q) positions, then the block's deterministic tree sum (double)
//   channel_l1_clip one block per (n, c) map: the block's tree sum of |x| (forward) or of gy x (backward, clipped
//                   maps only), then every thread scales its share of the map
#include "kernels/broadcast.h"
#include "kernels/cuda/common.cuh"

namespace sl::cuda {

namespace {

template <class T>
void add_broadcast_t(const Tensor& a, const Tensor& b, Tensor& out) {
  const bcast::Index ix = bcast::index_of(a.shape(), b.shape(), out.shape(), "add_broadcast");
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
  for_each(out, out.numel(), "add_broadcast", [=] __device__(int64_t o) {
    int64_t ia, ib;
    ix.offsets(o, ia, ib);
    po[o] = pa[ia] + pb[ib];
  });
}

template <class T>
void sum_to_shape_t(const Tensor& g, Tensor& out) {
  const bcast::Reduce r = bcast::reduce_of(g.shape(), out.shape(), "sum_to_shape");
  SL_CHECK(r.kept == out.numel(), ShapeError, "sum_to_shape: output ", out.str(), " does not fit ", g.str());
  const T* pg = g.data<T>();
  T* po = out.data<T>();
  for_each(out, r.kept, "sum_to_shape", [=] __device__(int64_t k) {
    const int64_t base = r.kept_offset(k);
    double s = 0;
    for (int64_t q = 0; q < r.reduced; ++q) s += double(pg[base + r.reduced_offset(q)]);
    po[k] = T(s);
  });
}

template <class T>
__global__ void channel_sums_kernel(const T* x, const T* gy, int64_t N, int64_t C, int64_t Q, T* gscale, T* gshift) {
  const int64_t c = blockIdx.x, total = N * Q;
  double sx = 0, s1 = 0;
  for (int64_t i = threadIdx.x; i < total; i += blockDim.x) {
    const int64_t n = i / Q, off = (n * C + c) * Q + (i - n * Q);
    const double g = double(gy[off]);
    s1 += g;
    if (gscale) sx += g * double(x[off]);
  }
  sx = block_sum(sx);
  s1 = block_sum(s1);
  if (threadIdx.x == 0) {
    if (gscale) gscale[c] = T(sx);
    if (gshift) gshift[c] = T(s1);
  }
}

struct Planes {
  int64_t n, c, q;
};
Planes planes_of(const Tensor& x, const Tensor& scale, const char* op) {
  SL_CHECK(x.dim() >= 2, ShapeError, op, ": input ", x.str(), " must have a channel dim [N, C, ...]");
  SL_CHECK(scale.dim() == 1 && scale.size(0) == x.size(1), ShapeError, op, ": scale ", scale.str(), " must have ",
           x.size(1), " elements");
  const int64_t n = x.size(0), c = x.size(1);
  return {n, c, n * c == 0 ? 0 : x.numel() / (n * c)};
}

template <class T>
void channel_affine_forward_t(const Tensor& x, const Tensor& scale, const Tensor& shift, Tensor& y) {
  const Planes p = planes_of(x, scale, "channel_affine");
  check_shape(shift, scale.shape(), "channel_affine shift");
  const T* px = x.data<T>();
  const T* ps = scale.data<T>();
  const T* pt = shift.data<T>();
  T* py = y.data<T>();
  const int64_t C = p.c, Q = p.q;
  for_each(x, x.numel(), "channel_affine_forward", [=] __device__(int64_t i) {
    const int64_t c = (i / Q) % C;
    py[i] = px[i] * ps[c] + pt[c];
  });
}

template <class T>
void channel_affine_backward_t(const Tensor& x, const Tensor& scale, const Tensor& gy, Tensor& gx, Tensor& gscale,
                               Tensor& gshift) {
  const Planes p = planes_of(x, scale, "channel_affine_backward");
  const T* px = x.data<T>();
  const T* ps = scale.data<T>();
  const T* pg = gy.data<T>();
  const int64_t C = p.c, Q = p.q;
  if (gx.defined()) {
    T* o = gx.data<T>();
    for_each(x, x.numel(), "channel_affine_backward", [=] __device__(int64_t i) { o[i] = pg[i] * ps[(i / Q) % C]; });
  }
  if ((!gscale.defined() && !gshift.defined()) || C == 0) return;
  channel_sums_kernel<T><<<unsigned(C), 256, 0, stream_of(x)>>>(
      px, pg, p.n, C, Q, gscale.defined() ? gscale.data<T>() : nullptr, gshift.defined() ? gshift.data<T>() : nullptr);
  SL_CUDA_LAUNCH("channel_affine_backward_sums");
}

constexpr int kClipThreads = 128;

template <class T>
__global__ void __launch_bounds__(kClipThreads)
    l1_clip_forward_kernel(const T* x, int64_t q, double bound, T* y, T* factor) {
  const int64_t at = int64_t(blockIdx.x) * q;
  double s = 0;
  for (int64_t i = threadIdx.x; i < q; i += blockDim.x) s += fabs(double(x[at + i]));
  s = block_sum(s);
  const T f = T(s > bound ? bound / s : 1.0);
  if (threadIdx.x == 0) factor[blockIdx.x] = f;
  for (int64_t i = threadIdx.x; i < q; i += blockDim.x) y[at + i] = x[at + i] * f;
}

template <class T>
__global__ void __launch_bounds__(kClipThreads)
    l1_clip_backward_kernel(const T* x, const T* factor, const T* gy, int64_t q, double bound, T* gx) {
  const int64_t at = int64_t(blockIdx.x) * q;
  const double f = double(factor[blockIdx.x]);
  double c = 0;
  if (f < 1) {  // the same for the whole block: every thread takes part in the sum
    double dot = 0;
    for (int64_t i = threadIdx.x; i < q; i += blockDim.x) dot += double(gy[at + i]) * double(x[at + i]);
    c = f * f / bound * block_sum(dot);
  }
  for (int64_t i = threadIdx.x; i < q; i += blockDim.x) {
    const double xi = double(x[at + i]);
    gx[at + i] = T(f * double(gy[at + i]) - c * double((xi > 0) - (xi < 0)));
  }
}

struct ClipMaps {
  int64_t maps, q;
};
ClipMaps clip_maps(const Tensor& x, const Tensor& factor, const char* op) {
  SL_CHECK(x.dim() >= 2, ShapeError, op, ": input ", x.str(), " must be [N, C, ...]");
  check_shape(factor, Shape{x.size(0), x.size(1)}, op);
  const int64_t maps = x.size(0) * x.size(1);
  SL_CHECK(maps < (int64_t(1) << 31), ShapeError, op, ": ", maps, " maps are more than a grid holds");
  return {maps, maps == 0 ? 0 : x.numel() / maps};
}

template <class T>
void channel_l1_clip_forward_t(const Tensor& x, double bound, Tensor& y, Tensor& factor) {
  const ClipMaps m = clip_maps(x, factor, "channel_l1_clip");
  if (m.maps == 0) return;
  l1_clip_forward_kernel<T>
      <<<unsigned(m.maps), kClipThreads, 0, stream_of(x)>>>(x.data<T>(), m.q, bound, y.data<T>(), factor.data<T>());
  SL_CUDA_LAUNCH("channel_l1_clip_forward");
}

template <class T>
void channel_l1_clip_backward_t(const Tensor& x, const Tensor& factor, const Tensor& gy, double bound, Tensor& gx) {
  const ClipMaps m = clip_maps(x, factor, "channel_l1_clip_backward");
  if (m.maps == 0) return;
  l1_clip_backward_kernel<T><<<unsigned(m.maps), kClipThreads, 0, stream_of(x)>>>(
      x.data<T>(), factor.data<T>(), gy.data<T>(), m.q, bound, gx.data<T>());
  SL_CUDA_LAUNCH("channel_l1_clip_backward");
}

}  // namespace

void add_broadcast(const Tensor& a, const Tensor& b, Tensor& out) {
  SL_CUDA_DISPATCH(out, "add_broadcast", add_broadcast_t, a, b, out);
}
void sum_to_shape(const Tensor& g, Tensor& out) { SL_CUDA_DISPATCH(g, "sum_to_shape", sum_to_shape_t, g, out); }
void channel_affine_forward(const Tensor& x, const Tensor& scale, const Tensor& shift, Tensor& y) {
  SL_CUDA_DISPATCH(x, "channel_affine", channel_affine_forward_t, x, scale, shift, y);
}
void channel_affine_backward(const Tensor& x, const Tensor& scale, const Tensor& gy, Tensor& gx, Tensor& gscale,
                             Tensor& gshift) {
  SL_CUDA_DISPATCH(x, "channel_affine_backward", channel_affine_backward_t, x, scale, gy, gx, gscale, gshift);
}

void channel_l1_clip_forward(const Tensor& x, double bound, Tensor& y, Tensor& factor) {
  SL_CUDA_DISPATCH(x, "channel_l1_clip", channel_l1_clip_forward_t, x, bound, y, factor);
}
void channel_l1_clip_backward(const Tensor& x, const Tensor& factor, const Tensor& gy, double bound, Tensor& gx) {
  SL_CUDA_DISPATCH(x, "channel_l1_clip_backward", channel_l1_clip_backward_t, x, factor, gy, bound, gx);
}

}  // namespace sl::cuda
