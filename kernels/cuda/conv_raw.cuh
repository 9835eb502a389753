// Raw convolution entry points shared by conv2d.cu and conv_transpose2d.cu (a transposed convolution is a
// convolution run backwards: its forward is conv2d's backward-data, and so on).
#pragma once
#include "kernels/cuda/common.cuh"

namespace sl::cuda::conv {

// A conv2d: x [N, C, H, W] * w [Co, C, KS, KS] -> y [N, Co, OH, OW] with the given stride and zero padding.
struct Geom {
  int N, C, H, W, Co, KS, OH, OW, stride, pad;
  bool relu = false;  // forward only: ReLU in the epilogue
};

// y = conv(x, w) + bias (bias per output channel, may be null)
template <class T>
void forward(const Geom& g, const T* x, const T* w, const T* bias, T* y, const Tensor& on);
// gx = conv^T(gy, w) (+ bias per input channel, may be null: used by conv_transpose2d's forward)
template <class T>
void backward_data(const Geom& g, const T* gy, const T* w, const T* bias, T* gx, const Tensor& on);
// gw = sum over images and positions of gy x (overwritten); gb (may be null) = the sum of gy per output channel,
// computed in the same GEMM as an extra column
template <class T>
void backward_weight(const Geom& g, const T* x, const T* gy, T* gw, T* gb, const Tensor& on);
// gb[c] = sum of t[n, c, :, :] over n and the plane (overwritten), t is [N, C, HW]
template <class T>
void channel_sums(const T* t, int N, int C, int HW, T* gb, const Tensor& on);

// The general geometry (kernels/dispatch.h's ConvArgs: a kh x kw kernel, strides and dilations per axis, top and
// left padding, channel groups; the bottom and right padding follow from the sizes): x [N, C, H, W] *
// w [Co, C / groups, kh, kw] -> y [N, Co, OH, OW]. Plain direct kernels (kernels/cuda/conv_general.cu) for the
// layers the tuned paths above do not take.
struct GeomExt {
  int N, C, H, W, Co, OH, OW, kh, kw, sh, sw, pt, pl, dh, dw, groups;
  bool relu = false;  // forward only
};
template <class T>
void general_forward(const GeomExt& g, const T* x, const T* w, const T* bias, T* y, const Tensor& on);
template <class T>
void general_backward_data(const GeomExt& g, const T* gy, const T* w, const T* bias, T* gx, const Tensor& on);
// gw only (overwritten); the bias gradient is channel_sums of gy
template <class T>
void general_backward_weight(const GeomExt& g, const T* x, const T* gy, T* gw, const Tensor& on);

}  // namespace sl::cuda::conv
