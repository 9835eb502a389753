// The layer ops of autograd/ops.h: linear, conv2d, conv_transpose2d, max_pool2d, conv2d_relu_pool, pool2d. Each
// validates its inputs (ShapeError / ValueError naming the op and the tensors), runs the kernels of kernels/dispatch.h,
// and records a backward that computes gradients only for the inputs that require them (an attack that optimises the
// image gets d/dx without paying for d/dW).
#include <algorithm>

#include "autograd/node.h"
#include "autograd/ops.h"

namespace sl {

namespace {

void check_float_input(const Tensor& t, const char* op, const char* name) {
  SL_CHECK(t.defined(), ValueError, op, ": ", name, " is undefined");
  SL_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, ValueError, op, ": ", name,
           " must be float32 or float64, got ", t.str());
}

void check_bias(const Tensor& b, const Tensor& x, int64_t channels, const char* op) {
  if (!b.defined()) return;
  SL_CHECK(b.dim() == 1 && b.size(0) == channels, ShapeError, op, ": bias ", b.str(), " must be 1-d with ", channels,
           " elements");
  check_same(x, b, op);
}

bool wants_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }

// The gradient before a fused ReLU: g * [out > 0]; g itself (contiguous) when there is no ReLU (out undefined).
Tensor relu_grad(const Tensor& out, const Tensor& g_out) {
  const Tensor g = g_out.contiguous();
  if (!out.defined()) return g;
  Tensor gr = Tensor::empty(g.shape(), g.dtype(), g.device());
  kern::relu_backward(out, g, gr);
  return gr;
}

}  // namespace

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, bool relu) {
  const char* op = relu ? "linear_relu" : "linear";
  check_float_input(x_in, op, "input");
  check_float_input(w_in, op, "weight");
  SL_CHECK(x_in.dim() == 2, ShapeError, "linear: input ", x_in.str(),
           " must be 2-d [batch, features] (flatten it first)");
  SL_CHECK(w_in.dim() == 2, ShapeError, "linear: weight ", w_in.str(), " must be 2-d [out_features, in_features]");
  SL_CHECK(x_in.size(1) == w_in.size(1), ShapeError, "linear: input ", x_in.str(), " has ", x_in.size(1),
           " features but weight ", w_in.str(), " expects ", w_in.size(1));
  check_same(x_in, w_in, op);
  check_bias(b_in, x_in, w_in.size(0), op);

  const Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const Tensor b = b_in.defined() ? b_in.contiguous() : Tensor();
  Tensor y = Tensor::empty(Shape{x.size(0), w.size(0)}, x.dtype(), x.device());
  kern::linear_forward(x, w, b, y, relu);
  if (!needs_grad({&x_in, &w_in, &b_in})) return y;

  const bool need_x = wants_grad(x_in), need_w = wants_grad(w_in), need_b = wants_grad(b_in);
  const Tensor out = relu ? y.detach() : Tensor();  // the ReLU's mask (detached: no cycle through the node)
  return record(op, {x_in, w_in, b_in}, y, [x, w, b, out, need_x, need_w, need_b](const Tensor& g_out) {
    const Tensor g = relu_grad(out, g_out);
    Tensor gx, gw, gb;
    if (need_x) gx = Tensor::empty(x.shape(), x.dtype(), x.device());
    if (need_w || need_b) {
      gw = Tensor::empty(w.shape(), w.dtype(), w.device());
      if (need_b) gb = Tensor::empty(b.shape(), b.dtype(), b.device());
      kern::linear_backward(x, w, g, gx, gw, gb);
      if (!need_w) gw = Tensor();
    } else if (need_x) {
      kern::gemm(g, false, w, false, gx, 1.0, 0.0);  // gx = gy W
    }
    return std::vector<Tensor>{gx, gw, gb};
  });
}

namespace {

// Records the backward of a convolution-like op y = conv(x, w) + b: the input gradient through `data`, the
// weight and bias gradients through `weight`, each computed only when that input requires it. `out` is the
// node's output (y, or what a fused epilogue made of it) and conv_grad maps its incoming gradient to d/dy.
using ConvDataGrad = void (*)(const Tensor& gy, const Tensor& w, ConvArgs a, Tensor& gx);
using ConvWeightGrad = void (*)(const Tensor& x, const Tensor& gy, ConvArgs a, Tensor& gw, Tensor& gb);
template <class ConvGrad>
Tensor record_conv_with(const char* op, const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, const Tensor& x,
                        const Tensor& w, const Tensor& b, ConvArgs a, Tensor out, ConvDataGrad data,
                        ConvWeightGrad weight, ConvGrad conv_grad) {
  const bool need_x = wants_grad(x_in), need_w = wants_grad(w_in), need_b = wants_grad(b_in);
  a.relu = false;  // the backward kernels take the plain geometry
  return record(op, {x_in, w_in, b_in}, out, [=](const Tensor& g_out) {
    const Tensor g = conv_grad(g_out);
    Tensor gx, gw, gb;
    if (need_x) {
      gx = Tensor::empty(x.shape(), x.dtype(), x.device());
      data(g, w, a, gx);
    }
    if (need_w || need_b) {
      gw = Tensor::empty(w.shape(), w.dtype(), w.device());
      if (need_b) gb = Tensor::empty(b.shape(), b.dtype(), b.device());
      weight(x, g, a, gw, gb);
      if (!need_w) gw = Tensor();
    }
    return std::vector<Tensor>{gx, gw, gb};
  });
}

// With a.relu, y went through a fused ReLU: the backward masks the incoming gradient first.
Tensor record_conv(const char* op, const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, const Tensor& x,
                   const Tensor& w, const Tensor& b, ConvArgs a, Tensor y, ConvDataGrad data, ConvWeightGrad weight) {
  if (!needs_grad({&x_in, &w_in, &b_in})) return y;
  const Tensor out = a.relu ? y.detach() : Tensor();  // the ReLU's mask (detached: no cycle through the node)
  return record_conv_with(op, x_in, w_in, b_in, x, w, b, a, y, data, weight,
                          [out](const Tensor& g_out) { return relu_grad(out, g_out); });
}

// conv2d's operands after validation (errors name `op`): contiguous x, w, b, the geometry and the output shape.
struct ConvIn {
  Tensor x, w, b;
  ConvArgs a;
  Shape out;
};

// Throws ValueError unless the geometry's numbers are in range (errors name `op`).
void check_conv_args(const char* op, const ConvArgs& a) {
  SL_CHECK(a.sh() >= 1 && a.sw() >= 1, ValueError, op, ": stride must be positive, got ", a.sh(), "x", a.sw());
  SL_CHECK(a.pt() >= 0 && a.pl() >= 0 && a.pb() >= 0 && a.pr() >= 0, ValueError, op,
           ": padding must be non-negative, got ", a.pt(), "/", a.pl(), "/", a.pb(), "/", a.pr(),
           " (top/left/bottom/right)");
  SL_CHECK(a.dilation_h >= 1 && a.dilation_w >= 1, ValueError, op, ": dilation must be positive, got ", a.dilation_h,
           "x", a.dilation_w);
  SL_CHECK(a.groups >= 1, ValueError, op, ": groups must be positive, got ", a.groups);
}

ConvIn conv2d_inputs(const char* op, const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, const ConvArgs& a) {
  check_float_input(x_in, op, "input");
  check_float_input(w_in, op, "weight");
  SL_CHECK(x_in.dim() == 4, ShapeError, op, ": input ", x_in.str(), " must be 4-d [N, C, H, W]");
  SL_CHECK(w_in.dim() == 4, ShapeError, op, ": weight ", w_in.str(), " must be 4-d [C_out, C_in / groups, kh, kw]");
  SL_CHECK(w_in.size(2) >= 1 && w_in.size(3) >= 1, ShapeError, op, ": weight ", w_in.str(), " has an empty kernel");
  check_conv_args(op, a);
  const int64_t G = a.groups;
  SL_CHECK(x_in.size(1) == w_in.size(1) * G, ShapeError, op, ": input ", x_in.str(), " has ", x_in.size(1),
           " channels but weight ", w_in.str(), " expects ", w_in.size(1) * G,
           G > 1 ? str(" (", w_in.size(1), " per group, ", G, " groups)") : std::string());
  SL_CHECK(w_in.size(0) % G == 0, ShapeError, op, ": ", w_in.size(0), " output channels do not split into ", G,
           " groups");
  const int kh = int(w_in.size(2)), kw = int(w_in.size(3));
  const int64_t H = x_in.size(2), W = x_in.size(3);
  const int64_t OH = conv_out_size_ext(H, kh, a.sh(), a.pt(), a.pb(), a.dilation_h),
                OW = conv_out_size_ext(W, kw, a.sw(), a.pl(), a.pr(), a.dilation_w);
  SL_CHECK(OH >= 1 && OW >= 1, ShapeError, op, ": kernel ", kh, "x", kw,
           a.dilation_h * a.dilation_w > 1 ? str(" (dilation ", a.dilation_h, "x", a.dilation_w, ")") : std::string(),
           " is larger than the padded input ", H + a.pt() + a.pb(), "x", W + a.pl() + a.pr(), " (input ", x_in.str(),
           ", padding ", a.pt(), "/", a.pl(), "/", a.pb(), "/", a.pr(), ")");
  check_same(x_in, w_in, op);
  check_bias(b_in, x_in, w_in.size(0), op);
  return ConvIn{x_in.contiguous(), w_in.contiguous(), b_in.defined() ? b_in.contiguous() : Tensor(), a,
                Shape{x_in.size(0), w_in.size(0), OH, OW}};
}

ConvIn conv2d_inputs(const char* op, const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, int stride, int pad,
                     bool relu) {
  ConvArgs a;
  a.stride = stride;
  a.pad = pad;
  a.relu = relu;
  return conv2d_inputs(op, x_in, w_in, b_in, a);
}

// `what` names the pooled tensor in the message ("the input [..]", "the convolution's output [..]").
void check_pool_args(const char* op, const std::string& what, int64_t H, int64_t W, int k, int stride) {
  SL_CHECK(k >= 1, ValueError, op, ": window size must be positive, got ", k);
  SL_CHECK(stride >= 1, ValueError, op, ": stride must be positive, got ", stride);
  SL_CHECK(H >= k && W >= k, ShapeError, op, ": window ", k, "x", k, " is larger than ", what);
}

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, const ConvArgs& a) {
  const char* op = a.relu ? "conv2d_relu" : "conv2d";
  const ConvIn c = conv2d_inputs(op, x_in, w_in, b_in, a);
  Tensor y = Tensor::empty(c.out, c.x.dtype(), c.x.device());
  kern::conv2d_forward(c.x, c.w, c.b, c.a, y);
  return record_conv(op, x_in, w_in, b_in, c.x, c.w, c.b, c.a, y, kern::conv2d_backward_data,
                     kern::conv2d_backward_weight);
}

Tensor conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, int stride, int pad, bool relu) {
  ConvArgs a;
  a.stride = stride;
  a.pad = pad;
  a.relu = relu;
  return conv2d(x_in, w_in, b_in, a);
}

// The ReLU's mask comes from the pooled output: each input position a window routes its gradient to is the
// window's maximum, whose ReLU output is the pooled value, so masking the small pooled gradient by (p > 0)
// before the pool's scatter gives the same bits as masking the full-size gradient after it. The full-size
// activation is never kept for the backward.
Tensor conv2d_relu_pool(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, int stride, int pad, int pool_k,
                        int pool_stride) {
  const char* op = "conv2d_relu_pool";
  const ConvIn c = conv2d_inputs(op, x_in, w_in, b_in, stride, pad, true);
  SL_CHECK(w_in.size(2) == w_in.size(3), ShapeError, op, ": weight ", w_in.str(),
           " has a non-square kernel; the fused op takes k x k kernels (run conv2d, relu and pool2d)");
  const Shape cs = c.out;
  check_pool_args(op, "the convolution's output " + cs.str(), cs[2], cs[3], pool_k, pool_stride);
  const Shape ps{cs[0], cs[1], conv_out_size(cs[2], pool_k, pool_stride, 0),
                 conv_out_size(cs[3], pool_k, pool_stride, 0)};
  Tensor p = Tensor::empty(ps, c.x.dtype(), c.x.device());
  Tensor idx = Tensor::empty(ps, DType::i32, c.x.device());
  kern::conv2d_relu_pool_forward(c.x, c.w, c.b, c.a, pool_k, pool_stride, p, idx);
  if (!needs_grad({&x_in, &w_in, &b_in})) return p;
  const Tensor pd = p.detach();
  return record_conv_with(op, x_in, w_in, b_in, c.x, c.w, c.b, c.a, p, kern::conv2d_backward_data,
                          kern::conv2d_backward_weight, [pd, idx, cs, pool_k, pool_stride](const Tensor& g_out) {
                            Tensor gy = Tensor::empty(cs, pd.dtype(), pd.device());
                            kern::max_pool2d_relu_backward(g_out.contiguous(), pd, idx, pool_k, pool_stride, gy);
                            return gy;
                          });
}

Tensor conv_transpose2d(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, const ConvArgs& a_in) {
  const char* op = "conv_transpose2d";
  check_float_input(x_in, op, "input");
  check_float_input(w_in, op, "weight");
  SL_CHECK(x_in.dim() == 4, ShapeError, "conv_transpose2d: input ", x_in.str(), " must be 4-d [N, C, H, W]");
  SL_CHECK(w_in.dim() == 4, ShapeError, "conv_transpose2d: weight ", w_in.str(),
           " must be 4-d [C_in, C_out / groups, kh, kw]");
  SL_CHECK(w_in.size(2) >= 1 && w_in.size(3) >= 1, ShapeError, "conv_transpose2d: weight ", w_in.str(),
           " has an empty kernel");
  ConvArgs a = a_in;
  a.relu = false;
  check_conv_args(op, a);
  const int64_t G = a.groups;
  SL_CHECK(x_in.size(1) == w_in.size(0), ShapeError, "conv_transpose2d: input ", x_in.str(), " has ", x_in.size(1),
           " channels but weight ", w_in.str(), " expects ", w_in.size(0));
  SL_CHECK(x_in.size(1) % G == 0, ShapeError, op, ": ", x_in.size(1), " input channels do not split into ", G,
           " groups");
  const int max_h = std::max(a.sh(), a.dilation_h), max_w = std::max(a.sw(), a.dilation_w);
  SL_CHECK(a.oph() >= 0 && a.opw() >= 0 && a.oph() < max_h && a.opw() < max_w, ValueError,
           "conv_transpose2d: output_padding must be in [0, stride) = [0, ", max_h, "), got ", a.oph(),
           a.opw() != a.oph() ? str(" and ", a.opw()) : std::string());
  const int kh = int(w_in.size(2)), kw = int(w_in.size(3));
  const int64_t H = x_in.size(2), W = x_in.size(3);
  const int64_t OH = conv_transpose_out_size_ext(H, kh, a.sh(), a.pt(), a.pb(), a.dilation_h, a.oph()),
                OW = conv_transpose_out_size_ext(W, kw, a.sw(), a.pl(), a.pr(), a.dilation_w, a.opw());
  SL_CHECK(OH >= 1 && OW >= 1, ShapeError, "conv_transpose2d: input ", x_in.str(), " with kernel ", kh, "x", kw,
           ", stride ", a.sh(), ", padding ", a.pt(), " gives an empty output (", OH, "x", OW, ")");
  check_same(x_in, w_in, op);
  check_bias(b_in, x_in, w_in.size(1) * G, op);

  const Tensor x = x_in.contiguous(), w = w_in.contiguous();
  const Tensor b = b_in.defined() ? b_in.contiguous() : Tensor();
  Tensor y = Tensor::empty(Shape{x.size(0), w.size(1) * G, OH, OW}, x.dtype(), x.device());
  kern::conv_transpose2d_forward(x, w, b, a, y);
  return record_conv(op, x_in, w_in, b_in, x, w, b, a, y, kern::conv_transpose2d_backward_data,
                     kern::conv_transpose2d_backward_weight);
}

Tensor conv_transpose2d(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, int stride, int pad,
                        int output_padding) {
  SL_CHECK(!w_in.defined() || w_in.dim() != 4 || w_in.size(2) == w_in.size(3), ShapeError, "conv_transpose2d: weight ",
           w_in.defined() ? w_in.str() : std::string(),
           " has a non-square kernel; only k x k kernels are supported here (the ConvArgs form takes any)");
  SL_CHECK(output_padding >= 0 && output_padding < std::max(stride, 1), ValueError,
           "conv_transpose2d: output_padding must be in [0, stride) = [0, ", stride, "), got ", output_padding);
  ConvArgs a;
  a.stride = stride;
  a.pad = pad;
  a.output_padding = output_padding;
  return conv_transpose2d(x_in, w_in, b_in, a);
}

Tensor max_pool2d(const Tensor& x_in, int k, int stride) {
  const char* op = "max_pool2d";
  check_float_input(x_in, op, "input");
  SL_CHECK(x_in.dim() == 4, ShapeError, "max_pool2d: input ", x_in.str(), " must be 4-d [N, C, H, W]");
  const int64_t H = x_in.size(2), W = x_in.size(3);
  check_pool_args(op, "the input " + x_in.str(), H, W, k, stride);

  const Tensor x = x_in.contiguous();
  const Shape ys{x.size(0), x.size(1), (H - k) / stride + 1, (W - k) / stride + 1};
  Tensor y = Tensor::empty(ys, x.dtype(), x.device());
  Tensor idx = Tensor::empty(ys, DType::i32, x.device());
  kern::max_pool2d_forward(x, k, stride, y, idx);
  if (!needs_grad({&x_in})) return y;

  const Shape xs = x.shape();
  const DType dt = x.dtype();
  const Device dev = x.device();
  return record(op, {x_in}, y, [idx, xs, dt, dev, k, stride](const Tensor& g_out) {
    Tensor gx = Tensor::empty(xs, dt, dev);
    kern::max_pool2d_backward(g_out.contiguous(), idx, k, stride, gx);
    return std::vector<Tensor>{gx};
  });
}

Tensor pool2d(const Tensor& x_in, const PoolArgs& p) {
  const char* op = p.mode == PoolMode::max ? "max_pool2d" : "avg_pool2d";
  check_float_input(x_in, op, "input");
  SL_CHECK(x_in.dim() == 4, ShapeError, op, ": input ", x_in.str(), " must be 4-d [N, C, H, W]");
  SL_CHECK(p.kh >= 1 && p.kw >= 1, ValueError, op, ": window size must be positive, got ", p.kh, "x", p.kw);
  SL_CHECK(p.sh >= 1 && p.sw >= 1, ValueError, op, ": stride must be positive, got ", p.sh, "x", p.sw);
  SL_CHECK(p.dh >= 1 && p.dw >= 1, ValueError, op, ": dilation must be positive, got ", p.dh, "x", p.dw);
  const int64_t span_h = int64_t(p.kh - 1) * p.dh + 1, span_w = int64_t(p.kw - 1) * p.dw + 1;
  SL_CHECK(p.pt >= 0 && p.pl >= 0 && p.pb >= 0 && p.pr >= 0 && p.pt < span_h && p.pb < span_h && p.pl < span_w &&
               p.pr < span_w,
           ValueError, op, ": padding ", p.pt, "/", p.pl, "/", p.pb, "/", p.pr,
           " (top/left/bottom/right) must be non-negative and smaller than the window's span ", span_h, "x", span_w);
  const int64_t H = x_in.size(2), W = x_in.size(3);
  const int64_t OH = pool_out_size(H, p.kh, p.sh, p.pt, p.pb, p.dh, p.ceil_mode),
                OW = pool_out_size(W, p.kw, p.sw, p.pl, p.pr, p.dw, p.ceil_mode);
  SL_CHECK(OH >= 1 && OW >= 1, ShapeError, op, ": window ", span_h, "x", span_w, " is larger than the padded input ",
           H + p.pt + p.pb, "x", W + p.pl + p.pr, " (input ", x_in.str(), ")");
  // the models' pool (square, unpadded, undilated, all windows whole) runs the tuned kernels
  if (p.mode == PoolMode::max && p.kh == p.kw && p.sh == p.sw && p.pt == 0 && p.pl == 0 && p.pb == 0 && p.pr == 0 &&
      p.dh == 1 && p.dw == 1 && OH == conv_out_size(H, p.kh, p.sh, 0) && OW == conv_out_size(W, p.kw, p.sw, 0))
    return max_pool2d(x_in, p.kh, p.sh);

  const Tensor x = x_in.contiguous();
  const Shape ys{x.size(0), x.size(1), OH, OW};
  Tensor y = Tensor::empty(ys, x.dtype(), x.device());
  Tensor idx = p.mode == PoolMode::max ? Tensor::empty(ys, DType::i32, x.device()) : Tensor();
  kern::pool2d_forward(x, p, y, idx);
  if (!needs_grad({&x_in})) return y;
  const Shape xs = x.shape();
  const DType dt = x.dtype();
  const Device dev = x.device();
  return record(op, {x_in}, y, [idx, xs, dt, dev, p](const Tensor& g_out) {
    Tensor gx = Tensor::empty(xs, dt, dev);
    kern::pool2d_backward(g_out.contiguous(), idx, p, gx);
    return std::vector<Tensor>{gx};
  });
}

Tensor global_avg_pool2d(const Tensor& x) {
  check_float_input(x, "global_avg_pool2d", "input");
  SL_CHECK(x.dim() == 4 && x.size(2) >= 1 && x.size(3) >= 1, ShapeError, "global_avg_pool2d: input ", x.str(),
           " must be 4-d [N, C, H, W] with H, W >= 1");
  SL_CHECK(x.size(2) < (int64_t(1) << 30) && x.size(3) < (int64_t(1) << 30), ShapeError, "global_avg_pool2d: input ",
           x.str(), " too large");
  PoolArgs p;
  p.mode = PoolMode::avg;
  p.kh = int(x.size(2));
  p.kw = int(x.size(3));
  return pool2d(x, p);
}

}  // namespace sl
