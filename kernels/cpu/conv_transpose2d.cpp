// Transposed 2-d convolution on the CPU (NCHW, weight [Cin, Cout, k, k], stride s, padding p, output padding op; in
// general the geometry of kernels/dispatch.h's ConvArgs with weight [Cin, Cout / groups, kh, kw]):
//
//   y[n, co, oh, ow] = b[co] + sum over (ci, kh, kw, ih, iw) with ih*s - p + kh = oh, iw*s - p + kw = ow
//                              of x[n, ci, ih, iw] * w[ci, co, kh, kw],       OH = (H - 1) s - 2p + k + op
//
// It is the data gradient of the conv2d that maps y-shaped images to x-shaped ones with the same k, s, p
// (weight [Cin, Cout, k, k] read as that conv's [Cout', Cin', k, k]). So, with the lowering of
// kernels/cpu/im2col.h taken over that conv (image side = y, output side = x, Wm = w as [Cin, Cout k k]):
//   forward          y[n]  = col2im(Wm^T . x[n]) + b
//   data gradient    gx[n] = Wm . col(gy[n])                 (a conv2d forward of gy)
//   weight gradient  gWm   = sum_n x[n] . col(gy[n])^T,   gb[co] = sum gy[:, co]
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/im2col.h"

namespace sl::cpu {

namespace {

void check_cpu_contig(const Tensor& t, const char* op, const char* name) {
  SL_CHECK(t.defined(), ValueError, op, ": ", name, " is undefined");
  SL_CHECK(t.device().is_cpu(), DeviceError, op, ": ", name, " ", t.str(), " is not on the CPU");
  SL_CHECK(t.dim() == 4, ShapeError, op, ": ", name, " must be 4-d, got ", t.str());
  SL_CHECK(t.is_contiguous(), ValueError, op, ": ", name, " must be contiguous");
  SL_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, ValueError, op, ": ", name,
           " must be float32 or float64, got ", t.str());
}

// Lowering geometry for x [N, Cin, H, W] -> y [N, Cout, OH, OW] (weight [Cin, Cout / groups, kh, kw]), checked so
// a mismatch cannot write out of bounds. The lowering's image side is y, its output side x.
conv::Geom convt_geom(const Tensor& x, const Tensor& w, const Tensor& y, ConvArgs a, const char* op) {
  check_cpu_contig(x, op, "input");
  check_cpu_contig(w, op, "weight");
  check_cpu_contig(y, op, "output");
  SL_CHECK(x.dtype() == w.dtype() && x.dtype() == y.dtype(), ValueError, op, ": dtypes differ (", x.str(), ", ",
           w.str(), ", ", y.str(), ")");
  SL_CHECK(a.sh() >= 1 && a.sw() >= 1 && a.pt() >= 0 && a.pl() >= 0 && a.pb() >= 0 && a.pr() >= 0 &&
               a.dilation_h >= 1 && a.dilation_w >= 1 && a.groups >= 1 && a.oph() >= 0 && a.opw() >= 0,
           ValueError, op, ": strides and dilations must be >= 1, paddings and output paddings >= 0, groups >= 1");
  const int64_t G = a.groups;
  SL_CHECK(w.size(0) == x.size(1) && x.size(1) % G == 0 && w.size(1) * G == y.size(1) && y.size(0) == x.size(0) &&
               w.size(2) >= 1 && w.size(3) >= 1,
           ShapeError, op, ": inconsistent shapes: input ", x.str(), ", weight ", w.str(), ", output ", y.str(),
           ", groups ", G);
  conv::Geom g;
  g.C = w.size(1);
  g.H = y.size(2);
  g.W = y.size(3);
  g.kh = int(w.size(2));
  g.kw = int(w.size(3));
  g.sh = a.sh();
  g.sw = a.sw();
  g.pt = a.pt();
  g.pl = a.pl();
  g.dh = a.dilation_h;
  g.dw = a.dilation_w;
  g.groups = a.groups;
  g.OH = x.size(2);
  g.OW = x.size(3);
  // y's size is the transposed formula's (output rows past the last tap's reach hold the bias only)
  SL_CHECK(g.OH >= 1 && g.OW >= 1 && g.H >= 1 && g.W >= 1 &&
               g.H == conv_transpose_out_size_ext(g.OH, g.kh, g.sh, g.pt, a.pb(), g.dh, a.oph()) &&
               g.W == conv_transpose_out_size_ext(g.OW, g.kw, g.sw, g.pl, a.pr(), g.dw, a.opw()),
           ShapeError, op, ": output ", y.str(), " does not match input ", x.str(), " with kernel ", g.kh, "x", g.kw,
           ", strides ", g.sh, "/", g.sw, ", padding ", g.pt, "/", g.pl, "/", a.pb(), "/", a.pr(), ", dilation ", g.dh,
           "/", g.dw, ", output padding ", a.oph(), "/", a.opw());
  g.finish();
  return g;
}

}  // namespace

void conv_transpose2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, Tensor& y) {
  const conv::Geom g = convt_geom(x, w, y, a, "conv_transpose2d");
  const int64_t cin = w.size(0);
  if (b.defined()) check_shape(b, Shape{w.size(1) * a.groups}, "conv_transpose2d bias");
  dispatch_float(x, "conv_transpose2d", [&](auto tag) {
    using T = decltype(tag);
    conv::lowered_backward_data<T>(x.data<T>(), x.size(0), g, w.data<T>(), cin, b.defined() ? b.data<T>() : nullptr,
                                   y.data<T>());
  });
}

void conv_transpose2d_backward_data(const Tensor& gy, const Tensor& w, ConvArgs a, Tensor& gx) {
  const conv::Geom g = convt_geom(gx, w, gy, a, "conv_transpose2d backward (data)");
  const int64_t cin = w.size(0);
  dispatch_float(gy, "conv_transpose2d", [&](auto tag) {
    using T = decltype(tag);
    conv::lowered_forward<T>(gy.data<T>(), gy.size(0), g, w.data<T>(), cin, nullptr, gx.data<T>());
  });
}

void conv_transpose2d_backward_weight(const Tensor& x, const Tensor& gy, ConvArgs a, Tensor& gw, Tensor& gb) {
  const conv::Geom g = convt_geom(x, gw, gy, a, "conv_transpose2d backward (weight)");
  const int64_t cin = gw.size(0), cout = gw.size(1) * a.groups;
  if (gb.defined()) check_shape(gb, Shape{cout}, "conv_transpose2d bias gradient");
  dispatch_float(x, "conv_transpose2d", [&](auto tag) {
    using T = decltype(tag);
    conv::lowered_weight_grad<T>(x.data<T>(), gy.data<T>(), x.size(0), g, cin, gw.data<T>());
    if (gb.defined()) conv::channel_sums<T>(gy.data<T>(), gy.size(0), cout, g.H * g.W, gb.data<T>());
  });
}

}  // namespace sl::cpu
