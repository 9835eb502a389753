// Transposed 2-d convolution on the CPU (NCHW, weight [Cin, Cout, k, k], stride s, padding p, output padding op):
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

// Lowering geometry for x [N, Cin, H, W] -> y [N, Cout, OH, OW], checked so a mismatch cannot write out of bounds.
conv::Geom convt_geom(const Tensor& x, const Tensor& w, const Tensor& y, ConvArgs a, const char* op) {
  check_cpu_contig(x, op, "input");
  check_cpu_contig(w, op, "weight");
  check_cpu_contig(y, op, "output");
  SL_CHECK(x.dtype() == w.dtype() && x.dtype() == y.dtype(), ValueError, op, ": dtypes differ (", x.str(), ", ",
           w.str(), ", ", y.str(), ")");
  SL_CHECK(a.stride >= 1 && a.pad >= 0 && a.output_padding >= 0 && a.output_padding < a.stride, ValueError, op,
           ": need stride >= 1, padding >= 0 and 0 <= output_padding < stride (got ", a.stride, ", ", a.pad, ", ",
           a.output_padding, ")");
  const int64_t k = w.size(2);
  SL_CHECK(w.size(3) == k && w.size(0) == x.size(1) && w.size(1) == y.size(1) && y.size(0) == x.size(0), ShapeError, op,
           ": inconsistent shapes: input ", x.str(), ", weight ", w.str(), ", output ", y.str());
  conv::Geom g;
  g.C = y.size(1);
  g.H = y.size(2);
  g.W = y.size(3);
  g.k = int(k);
  g.stride = a.stride;
  g.pad = a.pad;
  g.OH = x.size(2);
  g.OW = x.size(3);
  SL_CHECK(g.H == conv_transpose_out_size(g.OH, g.k, g.stride, g.pad, a.output_padding) &&
               g.W == conv_transpose_out_size(g.OW, g.k, g.stride, g.pad, a.output_padding) && g.H + 2 * g.pad >= k &&
               g.W + 2 * g.pad >= k && conv_out_size(g.H, g.k, g.stride, g.pad) == g.OH &&
               conv_out_size(g.W, g.k, g.stride, g.pad) == g.OW,
           ShapeError, op, ": output ", y.str(), " does not match input ", x.str(), " with kernel ", k, ", stride ",
           a.stride, ", padding ", a.pad, ", output padding ", a.output_padding);
  return g;
}

}  // namespace

void conv_transpose2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, Tensor& y) {
  const conv::Geom g = convt_geom(x, w, y, a, "conv_transpose2d");
  const int64_t cin = w.size(0);
  if (b.defined()) check_shape(b, Shape{w.size(1)}, "conv_transpose2d bias");
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
  const int64_t cin = gw.size(0), cout = gw.size(1);
  if (gb.defined()) check_shape(gb, Shape{cout}, "conv_transpose2d bias gradient");
  dispatch_float(x, "conv_transpose2d", [&](auto tag) {
    using T = decltype(tag);
    conv::lowered_weight_grad<T>(x.data<T>(), gy.data<T>(), x.size(0), g, cin, gw.data<T>());
    if (gb.defined()) conv::channel_sums<T>(gy.data<T>(), gy.size(0), cout, g.H * g.W, gb.data<T>());
  });
}

}  // namespace sl::cpu
