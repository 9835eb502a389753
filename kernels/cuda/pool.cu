// Max pooling over k x k windows with a stride, no padding. Forward: one thread per output, scanning its window
// row by row with a strict '>' so ties keep the first position; idx holds the flat h*W+w of the max inside its
// (n, c) plane. Backward gathers instead of scattering: each input element adds up the gradients of the
// windows that contain it and chose it (in window order), so overlapping windows need no atomics.
#include <type_traits>

#include "kernels/cuda/common.cuh"

namespace sl::cuda {

namespace {
template <class T>
__global__ void max_pool_forward_kernel(const T* x, T* y, int32_t* idx, int planes, int H, int W, int OH, int OW, int k,
                                        int stride, FastDiv d_ohw, FastDiv d_ow) {
  const int64_t total = int64_t(planes) * OH * OW;  // < 2^31 (checked)
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    uint32_t plane, r, oh, ow;
    d_ohw.divmod(uint32_t(o), plane, r);
    d_ow.divmod(r, oh, ow);
    const T* xp = x + int64_t(plane) * H * W;
    const int h0 = int(oh) * stride, w0 = int(ow) * stride;
    T best = xp[h0 * W + w0];
    int bi = h0 * W + w0;
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j) {
        const int pos = (h0 + i) * W + (w0 + j);
        const T v = xp[pos];
        if (v > best || (v != v && best == best)) {
          best = v;
          bi = pos;
        }  // a NaN wins, as on the CPU
      }
    y[o] = best;
    idx[o] = bi;
  }
}

// One warp per (n, c) plane walks the plane's outputs in order, 32 at a time; lanes that chose the same input
// position are combined in lane order (shuffles) and the first of them adds the sum to gx. gx starts at zero.
// Same order as a sequential scatter in output order: deterministic, no atomics, and overlapping windows
// (stride < k: the API passes neither) are handled.
template <class T>
__global__ void max_pool_backward_kernel(const T* gy, const int32_t* idx, T* gx, int planes, int HW, int OHW) {
  const int lane = threadIdx.x & 31;
  const int warps = (gridDim.x * blockDim.x) >> 5;
  for (int p = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; p < planes; p += warps) {
    const T* g = gy + int64_t(p) * OHW;
    const int32_t* id = idx + int64_t(p) * OHW;
    T* out = gx + int64_t(p) * HW;
    for (int base = 0; base < OHW; base += 32) {
      const int o = base + lane;
      const bool valid = o < OHW;
      const int key = valid ? id[o] : -1 - lane;
      const T v = valid ? g[o] : T(0);
      T s = T(0);
      bool first = true;
#pragma unroll
      for (int l = 0; l < 32; ++l) {
        const int kl = __shfl_sync(0xffffffffu, key, l);
        const T vl = __shfl_sync(0xffffffffu, v, l);
        if (kl == key) {
          s += vl;
          if (l < lane) first = false;
        }
      }
      if (valid && first && key >= 0 && key < HW) out[key] += s;
      __syncwarp();  // this chunk's writes are seen by the lanes of the next
    }
  }
}

// Windows that do not overlap (stride >= k, the models' 2 x 2 / 2 pools): each input element belongs to at most
// one window, so gx is a gather, one thread per input element, no zero-fill pass: gradient if it was its window's
// max, else 0. With mask (the pooled output of a ReLU), a window whose mask is not > 0 passes no gradient.
template <class T>
__global__ void max_pool_backward_gather_kernel(const T* gy, const int32_t* idx, const T* mask, T* gx, int64_t total,
                                                int H, int W, int OH, int OW, int k, int stride, FastDiv d_hw,
                                                FastDiv d_w, FastDiv d_s) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    uint32_t plane, upos, uih, uiw;
    d_hw.divmod(uint32_t(e), plane, upos);
    d_w.divmod(upos, uih, uiw);
    const int pos = int(upos), ih = int(uih), iw = int(uiw);
    const int oh = int(d_s.div(uih)), ow = int(d_s.div(uiw));
    T v = T(0);
    if (oh < OH && ow < OW && ih - oh * stride < k && iw - ow * stride < k) {
      const int64_t o = (int64_t(plane) * OH + oh) * OW + ow;
      if (idx[o] == pos && (!mask || mask[o] > T(0))) v = gy[o];
    }
    gx[e] = v;
  }
}

// Windows that tile the input exactly (k == stride, H = OH k, W = OW k: LeNet's and CIFAR10CNN's pools): one
// thread per window reads its index and gradient once and writes all k x k inputs of the window. mask as above.
template <class T>
__global__ void max_pool_backward_window_kernel(const T* gy, const int32_t* idx, const T* mask, T* gx, int64_t total,
                                                int k, int OW, FastDiv d_ohw, FastDiv d_ow) {
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    uint32_t plane, r, oh, ow;
    d_ohw.divmod(uint32_t(o), plane, r);
    d_ow.divmod(r, oh, ow);
    const int W = OW * k, HW = int(d_ohw.d) * k * k;
    const int pos = idx[o];
    const T g = !mask || mask[o] > T(0) ? gy[o] : T(0);
    T* base = gx + int64_t(plane) * HW;
    if (k == 2) {  // the models' pools: one two-element store per window row (W even: aligned)
      using T2 = std::conditional_t<sizeof(T) == 4, float2, double2>;
      const int p0 = 2 * int(oh) * W + 2 * int(ow);
      *reinterpret_cast<T2*>(base + p0) = T2{p0 == pos ? g : T(0), p0 + 1 == pos ? g : T(0)};
      *reinterpret_cast<T2*>(base + p0 + W) = T2{p0 + W == pos ? g : T(0), p0 + W + 1 == pos ? g : T(0)};
      continue;
    }
    for (int i = 0; i < k; ++i) {
      const int row = (int(oh) * k + i) * W;
      for (int j = 0; j < k; ++j) {
        const int p = row + int(ow) * k + j;
        base[p] = p == pos ? g : T(0);
      }
    }
  }
}

unsigned grid_for(const Tensor& on, int64_t n) {
  return unsigned(
      std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, int64_t(cuda_rt::sm_count(on.device())) * 16)));
}

template <class T>
void forward_t(const Tensor& x, int k, int stride, Tensor& y, Tensor& idx) {
  SL_CHECK(x.dim() == 4 && y.dim() == 4, ShapeError, "max_pool2d: expects [N, C, H, W], got ", x.shape().str());
  SL_CHECK(k > 0 && stride > 0, ValueError, "max_pool2d: kernel ", k, " and stride ", stride, " must be positive");
  const int planes = int(x.size(0) * x.size(1)), H = int(x.size(2)), W = int(x.size(3));
  const int OH = int(y.size(2)), OW = int(y.size(3));
  SL_CHECK((OH - 1) * stride + k <= H && (OW - 1) * stride + k <= W, ShapeError, "max_pool2d: output ", y.shape().str(),
           " does not fit input ", x.shape().str());
  const int64_t total = y.numel();
  if (total == 0) return;
  check_int32(total, "max_pool2d_forward");
  max_pool_forward_kernel<T>
      <<<grid_for(x, total), 256, 0, stream_of(x)>>>(x.data<T>(), y.data<T>(), idx.data<int32_t>(), planes, H, W, OH,
                                                     OW, k, stride, FastDiv(uint32_t(OH * OW)), FastDiv(uint32_t(OW)));
  SL_CUDA_LAUNCH("max_pool2d_forward");
}

// mask: the pooled ReLU output of max_pool2d_relu_backward (nullptr for the plain backward).
template <class T>
void backward_t(const Tensor& gy, const Tensor& idx, int k, int stride, Tensor& gx, const T* mask = nullptr) {
  SL_CHECK(gy.dim() == 4 && gx.dim() == 4, ShapeError, "max_pool2d backward: expects [N, C, H, W], got ",
           gy.shape().str());
  const int planes = int(gx.size(0) * gx.size(1)), HW = int(gx.size(2) * gx.size(3));
  const int OHW = int(gy.size(2) * gy.size(3));
  if (gx.numel() == 0) return;
  cudaStream_t s = stream_of(gx);
  const bool tiles = k == stride && gx.size(2) == gy.size(2) * k && gx.size(3) == gy.size(3) * k;
  if (tiles && gy.numel() > 0) {
    check_int32(gx.numel(), "max_pool2d_backward");
    const int OH = int(gy.size(2)), OW = int(gy.size(3));
    // one thread per window (no grid-stride rounds: each thread's loads are its only ones)
    const unsigned blocks = unsigned((gy.numel() + 255) / 256);
    max_pool_backward_window_kernel<T><<<blocks, 256, 0, s>>>(gy.data<T>(), idx.data<int32_t>(), mask, gx.data<T>(),
                                                              gy.numel(), k, OW, FastDiv(uint32_t(OH * OW)),
                                                              FastDiv(uint32_t(OW)));
    SL_CUDA_LAUNCH("max_pool2d_backward_window");
    return;
  }
  if (stride >= k && gy.numel() > 0) {
    check_int32(gx.numel(), "max_pool2d_backward");
    const int H = int(gx.size(2)), W = int(gx.size(3));
    max_pool_backward_gather_kernel<T><<<grid_for(gx, gx.numel()), 256, 0, s>>>(
        gy.data<T>(), idx.data<int32_t>(), mask, gx.data<T>(), gx.numel(), H, W, int(gy.size(2)), int(gy.size(3)), k,
        stride, FastDiv(uint32_t(H * W)), FastDiv(uint32_t(W)), FastDiv(uint32_t(stride)));
    SL_CUDA_LAUNCH("max_pool2d_backward_gather");
    return;
  }
  if (mask) {  // overlapping windows: mask first, then the plain scatter
    Tensor g = Tensor::empty(gy.shape(), gy.dtype(), gy.device());
    const T* pg = gy.data<T>();
    T* pm = g.data<T>();
    for_each(gy, gy.numel(), "max_pool2d_relu_backward",
             [=] __device__(int64_t i) { pm[i] = mask[i] > T(0) ? pg[i] : T(0); });
    backward_t<T>(g, idx, k, stride, gx);
    return;
  }
  SL_CUDA_CHECK(cudaMemsetAsync(gx.data<T>(), 0, gx.nbytes(), s));
  if (gy.numel() == 0) return;
  const int blocks = int(std::min<int64_t>((int64_t(planes) + 7) / 8, int64_t(cuda_rt::sm_count(gx.device())) * 16));
  max_pool_backward_kernel<T><<<blocks, 256, 0, s>>>(gy.data<T>(), idx.data<int32_t>(), gx.data<T>(), planes, HW, OHW);
  SL_CUDA_LAUNCH("max_pool2d_backward");
}
}  // namespace

void max_pool2d_forward(const Tensor& x, int k, int stride, Tensor& y, Tensor& idx) {
  SL_CUDA_DISPATCH(x, "max_pool2d_forward", forward_t, x, k, stride, y, idx);
}
void max_pool2d_backward(const Tensor& gy, const Tensor& idx, int k, int stride, Tensor& gx) {
  SL_CUDA_DISPATCH(gy, "max_pool2d_backward", backward_t, gy, idx, k, stride, gx);
}

namespace {
template <class T>
void relu_backward_t(const Tensor& gy, const Tensor& y, const Tensor& idx, int k, int stride, Tensor& gx) {
  SL_CHECK(y.shape() == gy.shape() && y.dtype() == gy.dtype() && y.device() == gy.device(), ShapeError,
           "max_pool2d_relu backward: pooled output ", y.str(), " does not match grad_out ", gy.str());
  backward_t<T>(gy, idx, k, stride, gx, y.data<T>());
}
}  // namespace

void max_pool2d_relu_backward(const Tensor& gy, const Tensor& y, const Tensor& idx, int k, int stride, Tensor& gx) {
  SL_CUDA_DISPATCH(gy, "max_pool2d_relu_backward", relu_backward_t, gy, y, idx, k, stride, gx);
}

}  // namespace sl::cuda
