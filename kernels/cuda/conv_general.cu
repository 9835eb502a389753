// conv2d with the general geometry on the GPU (kernels/cuda/conv_raw.cuh's GeomExt: any kernel size, strides and
// dilations per axis, padding per side, channel groups), for the layers the tuned paths of conv2d.cu do not take.
// Math as in kernels/cpu/conv2d.cpp, with Cg = C / groups, Cog = Co / groups and co's group g = co / Cog:
//   forward          y[n,co,oh,ow] = b[co] + sum_{c<Cg,i,j} w[co,c,i,j] x[n, g Cg + c, oh sh - pt + i dh, ow sw - pl +
//   j dw]
//                    one thread per output element
//   backward data    gx[n,ci,ih,iw] = sum over co of ci's group and taps (i, j) with (ih + pt - i dh) / sh = oh exact
//                    (likewise w) of w[co, ci - g Cg, i, j] gy[n,co,oh,ow]; one thread per input element (a gather)
//   backward weight  gw[co,c,i,j] = sum_{n,oh,ow} gy[n,co,oh,ow] x[n, g Cg + c, ...]; one block per weight element,
//                    its threads over fixed shares of (n, oh, ow), then the block's tree sum in double
// Each output element is written by one thread or block in a fixed order: deterministic, no atomics.
#include "kernels/cuda/conv_raw.cuh"

namespace sl::cuda::conv {

namespace {

template <class T>
__global__ void general_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* bias,
                                       T* __restrict__ y, int64_t total, GeomExt g) {
  const int Cg = g.C / g.groups, Cog = g.Co / g.groups;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = o;
    const int ow = int(r % g.OW);
    r /= g.OW;
    const int oh = int(r % g.OH);
    r /= g.OH;
    const int co = int(r % g.Co);
    const int64_t n = r / g.Co;
    const int grp = co / Cog;
    const T* xg = x + (n * g.C + int64_t(grp) * Cg) * g.H * g.W;
    const T* wc = w + int64_t(co) * Cg * g.kh * g.kw;
    T acc = T(0);
    for (int c = 0; c < Cg; ++c)
      for (int i = 0; i < g.kh; ++i) {
        const int ih = oh * g.sh - g.pt + i * g.dh;
        if (ih < 0 || ih >= g.H) continue;
        for (int j = 0; j < g.kw; ++j) {
          const int iw = ow * g.sw - g.pl + j * g.dw;
          if (iw < 0 || iw >= g.W) continue;
          acc += wc[(c * g.kh + i) * g.kw + j] * xg[(int64_t(c) * g.H + ih) * g.W + iw];
        }
      }
    if (bias) acc += bias[co];
    if (g.relu && !(acc > T(0))) acc = T(0);
    y[o] = acc;
  }
}

template <class T>
__global__ void general_backward_data_kernel(const T* __restrict__ gy, const T* __restrict__ w, const T* bias,
                                             T* __restrict__ gx, int64_t total, GeomExt g) {
  const int Cg = g.C / g.groups, Cog = g.Co / g.groups;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = e;
    const int iw = int(r % g.W);
    r /= g.W;
    const int ih = int(r % g.H);
    r /= g.H;
    const int ci = int(r % g.C);
    const int64_t n = r / g.C;
    const int grp = ci / Cg, cl = ci - grp * Cg;
    T acc = T(0);
    for (int co = grp * Cog; co < (grp + 1) * Cog; ++co) {
      const T* gyc = gy + (n * g.Co + co) * g.OH * g.OW;
      const T* wc = w + (int64_t(co) * Cg + cl) * g.kh * g.kw;
      for (int i = 0; i < g.kh; ++i) {
        const int th = ih + g.pt - i * g.dh;
        if (th < 0 || th % g.sh) continue;
        const int oh = th / g.sh;
        if (oh >= g.OH) continue;
        for (int j = 0; j < g.kw; ++j) {
          const int tw = iw + g.pl - j * g.dw;
          if (tw < 0 || tw % g.sw) continue;
          const int ow = tw / g.sw;
          if (ow >= g.OW) continue;
          acc += wc[i * g.kw + j] * gyc[oh * g.OW + ow];
        }
      }
    }
    gx[e] = bias ? acc + bias[ci] : acc;
  }
}

template <class T>
__global__ void general_backward_weight_kernel(const T* __restrict__ x, const T* __restrict__ gy, T* __restrict__ gw,
                                               GeomExt g) {
  const int Cg = g.C / g.groups, Cog = g.Co / g.groups, KK = g.kh * g.kw;
  const int64_t e = blockIdx.x;  // (co, c, i, j)
  const int j = int(e % g.kw), i = int((e / g.kw) % g.kh), c = int((e / KK) % Cg), co = int(e / (int64_t(KK) * Cg));
  const int grp = co / Cog;
  const int64_t OHW = int64_t(g.OH) * g.OW, total = int64_t(g.N) * OHW;
  double acc = 0;
  for (int64_t q = threadIdx.x; q < total; q += blockDim.x) {
    const int64_t n = q / OHW;
    const int r = int(q - n * OHW), oh = r / g.OW, ow = r - oh * g.OW;
    const int ih = oh * g.sh - g.pt + i * g.dh, iw = ow * g.sw - g.pl + j * g.dw;
    if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
    acc += double(gy[(n * g.Co + co) * OHW + r]) * double(x[((n * g.C + grp * Cg + c) * g.H + ih) * g.W + iw]);
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) gw[e] = T(acc);
}

unsigned grid_for(const Tensor& on, int64_t n) {
  return unsigned(
      std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, int64_t(cuda_rt::sm_count(on.device())) * 16)));
}

void check_geom(const GeomExt& g, const char* op) {
  SL_CHECK(g.kh > 0 && g.kw > 0 && g.sh > 0 && g.sw > 0 && g.dh > 0 && g.dw > 0 && g.pt >= 0 && g.pl >= 0 &&
               g.groups > 0 && g.C % g.groups == 0 && g.Co % g.groups == 0,
           ValueError, op, ": unsupported geometry");
  check_int32(int64_t(g.N) * g.C * g.H * g.W, op);
  check_int32(int64_t(g.N) * g.Co * g.OH * g.OW, op);
  check_int32(int64_t(g.Co) * (g.C / g.groups) * g.kh * g.kw, op);
}

}  // namespace

template <class T>
void general_forward(const GeomExt& g, const T* x, const T* w, const T* bias, T* y, const Tensor& on) {
  check_geom(g, "conv2d_forward_general");
  const int64_t total = int64_t(g.N) * g.Co * g.OH * g.OW;
  if (total == 0) return;
  general_forward_kernel<T><<<grid_for(on, total), 256, 0, stream_of(on)>>>(x, w, bias, y, total, g);
  SL_CUDA_LAUNCH("conv2d_forward_general");
}

template <class T>
void general_backward_data(const GeomExt& g, const T* gy, const T* w, const T* bias, T* gx, const Tensor& on) {
  check_geom(g, "conv2d_backward_data_general");
  const int64_t total = int64_t(g.N) * g.C * g.H * g.W;
  if (total == 0) return;
  general_backward_data_kernel<T><<<grid_for(on, total), 256, 0, stream_of(on)>>>(gy, w, bias, gx, total, g);
  SL_CUDA_LAUNCH("conv2d_backward_data_general");
}

template <class T>
void general_backward_weight(const GeomExt& g, const T* x, const T* gy, T* gw, const Tensor& on) {
  check_geom(g, "conv2d_backward_weight_general");
  const int64_t elems = int64_t(g.Co) * (g.C / g.groups) * g.kh * g.kw;
  if (elems == 0) return;
  general_backward_weight_kernel<T><<<unsigned(elems), 256, 0, stream_of(on)>>>(x, gy, gw, g);
  SL_CUDA_LAUNCH("conv2d_backward_weight_general");
}

template void general_forward<float>(const GeomExt&, const float*, const float*, const float*, float*, const Tensor&);
template void general_forward<double>(const GeomExt&, const double*, const double*, const double*, double*,
                                      const Tensor&);
template void general_backward_data<float>(const GeomExt&, const float*, const float*, const float*, float*,
                                           const Tensor&);
template void general_backward_data<double>(const GeomExt&, const double*, const double*, const double*, double*,
                                            const Tensor&);
template void general_backward_weight<float>(const GeomExt&, const float*, const float*, float*, const Tensor&);
template void general_backward_weight<double>(const GeomExt&, const double*, const double*, double*, const Tensor&);

}  // namespace sl::cuda::conv
