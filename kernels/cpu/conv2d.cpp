// 2-d convolution on the CPU (NCHW, weight [Cout, Cin, k, k], stride s, zero padding p; in general a kh x kw
// kernel, strides and dilations per axis, padding per side and channel groups, kernels/dispatch.h's ConvArgs):
//
//   y[n, co, oh, ow] = b[co] + sum_{ci, kh, kw} w[co, ci, kh, kw] * x[n, ci, oh*s - p + kh, ow*s - p + kw]
//   gx[n, ci, ih, iw] = sum over (co, kh, kw, oh, ow) that read (ih, iw) of w[co, ci, kh, kw] * gy[n, co, oh, ow]
//   gw[co, ci, kh, kw] = sum_{n, oh, ow} gy[n, co, oh, ow] * x[n, ci, oh*s - p + kh, ow*s - p + kw]
//   gb[co] = sum_{n, oh, ow} gy[n, co, oh, ow]
//
// All three are GEMMs over the im2col lowering (kernels/cpu/im2col.h, which has the general form) with the weight
// as the matrix [Cout, Cin k k]: forward = W . col(x), data gradient = col2im(W^T . gy), weight gradient = gy .
// col(x)^T.
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/im2col.h"

namespace sl::cpu {

namespace {

void check_cpu_contig(const Tensor& t, const char* op, const char* name, int rank) {
  SL_CHECK(t.defined(), ValueError, op, ": ", name, " is undefined");
  SL_CHECK(t.device().is_cpu(), DeviceError, op, ": ", name, " ", t.str(), " is not on the CPU");
  SL_CHECK(t.dim() == size_t(rank), ShapeError, op, ": ", name, " must be ", rank, "-d, got ", t.str());
  SL_CHECK(t.is_contiguous(), ValueError, op, ": ", name, " must be contiguous");
  SL_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, ValueError, op, ": ", name,
           " must be float32 or float64, got ", t.str());
}

// The lowering geometry of a conv2d from x-shaped [N, C, H, W] to y-shaped [N, Cout, OH, OW] (weight
// [Cout, C / groups, kh, kw]), checked so a mismatch cannot write out of bounds.
conv::Geom conv_geom(const Tensor& x, const Tensor& w, const Tensor& y, ConvArgs a, const char* op) {
  check_cpu_contig(x, op, "input", 4);
  check_cpu_contig(w, op, "weight", 4);
  check_cpu_contig(y, op, "output", 4);
  SL_CHECK(x.dtype() == w.dtype() && x.dtype() == y.dtype(), ValueError, op, ": dtypes differ (", x.str(), ", ",
           w.str(), ", ", y.str(), ")");
  SL_CHECK(a.sh() >= 1 && a.sw() >= 1 && a.pt() >= 0 && a.pl() >= 0 && a.pb() >= 0 && a.pr() >= 0 &&
               a.dilation_h >= 1 && a.dilation_w >= 1 && a.groups >= 1,
           ValueError, op, ": strides and dilations must be >= 1, paddings >= 0, groups >= 1");
  const int64_t G = a.groups;
  SL_CHECK(w.size(1) * G == x.size(1) && w.size(0) % G == 0 && w.size(0) == y.size(1) && y.size(0) == x.size(0) &&
               w.size(2) >= 1 && w.size(3) >= 1,
           ShapeError, op, ": inconsistent shapes: input ", x.str(), ", weight ", w.str(), ", output ", y.str(),
           ", groups ", G);
  conv::Geom g;
  g.C = w.size(1);
  g.H = x.size(2);
  g.W = x.size(3);
  g.kh = int(w.size(2));
  g.kw = int(w.size(3));
  g.sh = a.sh();
  g.sw = a.sw();
  g.pt = a.pt();
  g.pl = a.pl();
  g.dh = a.dilation_h;
  g.dw = a.dilation_w;
  g.groups = a.groups;
  g.OH = y.size(2);
  g.OW = y.size(3);
  SL_CHECK(g.OH >= 1 && g.OW >= 1 && g.OH == conv_out_size_ext(g.H, g.kh, g.sh, g.pt, a.pb(), g.dh) &&
               g.OW == conv_out_size_ext(g.W, g.kw, g.sw, g.pl, a.pr(), g.dw),
           ShapeError, op, ": output ", y.str(), " does not match input ", x.str(), " with kernel ", g.kh, "x", g.kw,
           ", strides ", g.sh, "/", g.sw, ", padding ", g.pt, "/", g.pl, "/", a.pb(), "/", a.pr(), ", dilation ", g.dh,
           "/", g.dw);
  g.finish();
  return g;
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, Tensor& y) {
  const conv::Geom g = conv_geom(x, w, y, a, "conv2d");
  const int64_t cout = w.size(0);
  if (b.defined()) check_shape(b, Shape{cout}, "conv2d bias");
  dispatch_float(x, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    conv::lowered_forward<T>(x.data<T>(), x.size(0), g, w.data<T>(), cout, b.defined() ? b.data<T>() : nullptr,
                             y.data<T>());
    if (a.relu) {
      T* py = y.data<T>();
      for (int64_t i = 0, n = y.numel(); i < n; ++i) py[i] = py[i] > T(0) ? py[i] : T(0);
    }
  });
}

void conv2d_backward_data(const Tensor& gy, const Tensor& w, ConvArgs a, Tensor& gx) {
  const conv::Geom g = conv_geom(gx, w, gy, a, "conv2d backward (data)");
  const int64_t cout = w.size(0);
  dispatch_float(gy, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    conv::lowered_backward_data<T>(gy.data<T>(), gx.size(0), g, w.data<T>(), cout, nullptr, gx.data<T>());
  });
}

void conv2d_backward_weight(const Tensor& x, const Tensor& gy, ConvArgs a, Tensor& gw, Tensor& gb) {
  const conv::Geom g = conv_geom(x, gw, gy, a, "conv2d backward (weight)");
  const int64_t cout = gw.size(0);
  if (gb.defined()) check_shape(gb, Shape{cout}, "conv2d bias gradient");
  dispatch_float(x, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    conv::lowered_weight_grad<T>(gy.data<T>(), x.data<T>(), x.size(0), g, cout, gw.data<T>());
    if (gb.defined()) conv::channel_sums<T>(gy.data<T>(), x.size(0), cout, g.cols(), gb.data<T>());
  });
}

}  // namespace sl::cpu
