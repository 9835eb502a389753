// conv_transpose2d on the GPU: a transposed convolution is a conv2d run backwards, so each pass is one of
// conv2d's implicit GEMMs (kernels/cuda/conv2d.cu) with the roles swapped. Weight [Cin, Cout, k, k] (PyTorch's).
//   forward          y  = conv2d_backward_data(gy := x, w) + b       (the conv2d view: input y, output x)
//   backward data    gx = conv2d_forward(x := gy, w)
//   backward weight  gw = conv2d_backward_weight(x := gy, gy := x);  gb = channel sums of gy
// The conv2d view of x [N, Cin, H, W] -> y [N, Cout, OH, OW] is a conv from y's shape to x's shape with
// w read as [Co' = Cin, C' = Cout, k, k]: exactly w's layout. output_padding only enlarges OH/OW.
#include "kernels/cuda/conv_raw.cuh"

namespace sl::cuda {

namespace {
conv::Geom transposed_geom(const Tensor& x, const Tensor& w, const Tensor& y, ConvArgs a, const char* op) {
  SL_CHECK(x.dim() == 4 && w.dim() == 4 && y.dim() == 4, ShapeError, op, ": expects 4-d x, weight and output, got ",
           x.shape().str(), ", ", w.shape().str(), ", ", y.shape().str());
  SL_CHECK(w.size(2) == w.size(3) && w.size(0) == x.size(1) && y.size(1) == w.size(1) && y.size(0) == x.size(0),
           ShapeError, op, ": x ", x.shape().str(), ", weight ", w.shape().str(), " and output ", y.shape().str(),
           " do not fit");
  // conv2d view: input y [N, Cout, OH, OW], output x [N, Cin, H, W], weight [Cin, Cout, k, k]
  return {int(y.size(0)), int(y.size(1)), int(y.size(2)), int(y.size(3)), int(x.size(1)),
          int(w.size(2)), int(x.size(2)), int(x.size(3)), a.stride,       a.pad};
}

// The general geometry (non-square kernels, per-axis strides, padding per side, dilation, groups): the same role swap
// over the plain kernels of conv_general.cu. The conv2d view: input y [N, Cout, OH, OW], output x [N, Cin, H, W],
// weight [Cin, Cout / groups, kh, kw] read as [Co' = Cin, C' / groups, kh, kw].
bool general_geometry(const Tensor& w, const ConvArgs& a) { return !a.uniform() || w.size(2) != w.size(3); }
conv::GeomExt transposed_geom_ext(const Tensor& x, const Tensor& w, const Tensor& y, ConvArgs a, const char* op) {
  SL_CHECK(x.dim() == 4 && w.dim() == 4 && y.dim() == 4, ShapeError, op, ": expects 4-d x, weight and output, got ",
           x.shape().str(), ", ", w.shape().str(), ", ", y.shape().str());
  SL_CHECK(a.groups >= 1 && w.size(0) == x.size(1) && x.size(1) % a.groups == 0 && y.size(1) == w.size(1) * a.groups &&
               y.size(0) == x.size(0) &&
               y.size(2) == conv_transpose_out_size_ext(x.size(2), int(w.size(2)), a.sh(), a.pt(), a.pb(), a.dilation_h,
                                                        a.oph()) &&
               y.size(3) == conv_transpose_out_size_ext(x.size(3), int(w.size(3)), a.sw(), a.pl(), a.pr(), a.dilation_w,
                                                        a.opw()),
           ShapeError, op, ": x ", x.shape().str(), ", weight ", w.shape().str(), " and output ", y.shape().str(),
           " do not fit the geometry");
  return {int(y.size(0)), int(y.size(1)), int(y.size(2)), int(y.size(3)), int(x.size(1)), int(x.size(2)),
          int(x.size(3)), int(w.size(2)), int(w.size(3)), a.sh(),         a.sw(),         a.pt(),
          a.pl(),         a.dilation_h,   a.dilation_w,   a.groups};
}

template <class T>
void forward_t(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, Tensor& y) {
  if (general_geometry(w, a)) {
    const conv::GeomExt g = transposed_geom_ext(x, w, y, a, "conv_transpose2d_forward");
    conv::general_backward_data<T>(g, x.data<T>(), w.data<T>(), b.defined() ? b.data<T>() : nullptr, y.data<T>(), x);
    return;
  }
  conv::Geom g = transposed_geom(x, w, y, a, "conv_transpose2d_forward");
  conv::backward_data<T>(g, x.data<T>(), w.data<T>(), b.defined() ? b.data<T>() : nullptr, y.data<T>(), x);
}
template <class T>
void backward_data_t(const Tensor& gy, const Tensor& w, ConvArgs a, Tensor& gx) {
  if (general_geometry(w, a)) {
    const conv::GeomExt g = transposed_geom_ext(gx, w, gy, a, "conv_transpose2d_backward_data");
    conv::general_forward<T>(g, gy.data<T>(), w.data<T>(), nullptr, gx.data<T>(), gy);
    return;
  }
  conv::Geom g = transposed_geom(gx, w, gy, a, "conv_transpose2d_backward_data");
  conv::forward<T>(g, gy.data<T>(), w.data<T>(), nullptr, gx.data<T>(), gy);
}
template <class T>
void backward_weight_t(const Tensor& x, const Tensor& gy, ConvArgs a, Tensor& gw, Tensor& gb) {
  if (general_geometry(gw, a)) {
    const conv::GeomExt g = transposed_geom_ext(x, gw, gy, a, "conv_transpose2d_backward_weight");
    conv::general_backward_weight<T>(g, gy.data<T>(), x.data<T>(), gw.data<T>(), x);
    if (gb.defined()) conv::channel_sums<T>(gy.data<T>(), g.N, g.C, g.H * g.W, gb.data<T>(), x);
    return;
  }
  conv::Geom g = transposed_geom(x, gw, gy, a, "conv_transpose2d_backward_weight");
  conv::backward_weight<T>(g, gy.data<T>(), x.data<T>(), gw.data<T>(), static_cast<T*>(nullptr), x);
  if (gb.defined()) conv::channel_sums<T>(gy.data<T>(), g.N, g.C, g.H * g.W, gb.data<T>(), x);
}
}  // namespace

void conv_transpose2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, Tensor& y) {
  SL_CUDA_DISPATCH(x, "conv_transpose2d_forward", forward_t, x, w, b, a, y);
}
void conv_transpose2d_backward_data(const Tensor& gy, const Tensor& w, ConvArgs a, Tensor& gx) {
  SL_CUDA_DISPATCH(gy, "conv_transpose2d_backward_data", backward_data_t, gy, w, a, gx);
}
void conv_transpose2d_backward_weight(const Tensor& x, const Tensor& gy, ConvArgs a, Tensor& gw, Tensor& gb) {
  SL_CUDA_DISPATCH(x, "conv_transpose2d_backward_weight", backward_weight_t, x, gy, a, gw, gb);
}

}  // namespace sl::cuda
