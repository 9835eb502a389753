#include "nn/layers.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "kernels/broadcast.h"
#include "nn/init.h"

namespace sl {

namespace {

// Throws ShapeError unless `in` is [N, channels, H, W] (channels < 0: any).
void check_image(const Shape& in, int64_t channels, const std::string& layer) {
  SL_CHECK(in.rank() == 4, ShapeError, layer, " expects an NCHW input, got shape ", in.str());
  SL_CHECK(channels < 0 || in[1] == channels, ShapeError, layer, " expects ", channels, " input channels, got shape ",
           in.str());
}

// ", s2, p1, no bias" for the parts that differ from the defaults.
std::string conv_options(int stride, int pad, int out_pad, bool has_bias) {
  std::string s;
  if (stride != 1) s += str(", s", stride);
  if (pad != 0) s += str(", p", pad);
  if (out_pad != 0) s += str(", op", out_pad);
  if (!has_bias) s += ", no bias";
  return s;
}

// ConvArgs of the square case.
ConvArgs square_geometry(int stride, int pad, int out_pad = 0) {
  ConvArgs a;
  a.stride = stride;
  a.pad = pad;
  a.output_padding = out_pad;
  return a;
}

// The geometry a layer keeps: the arguments without the fused ReLU (a layer's activation is a layer of its own).
ConvArgs without_relu(ConvArgs a) {
  a.relu = false;
  return a;
}

// ", k3x2, s2x1, p1/0/1/0, d2x2, g4, no bias": the kernel and the parts of a general geometry that differ from the
// defaults (the square case reads as before: ", k5, s2, p1").
std::string geometry_options(int kh, int kw, const ConvArgs& a, bool transposed, bool has_bias) {
  if (a.uniform() && kh == kw) {
    return str(", k", kh, conv_options(a.stride, a.pad, transposed ? a.output_padding : 0, has_bias));
  }
  std::string s = kh == kw ? str(", k", kh) : str(", k", kh, "x", kw);
  if (a.sh() != 1 || a.sw() != 1) s += a.sh() == a.sw() ? str(", s", a.sh()) : str(", s", a.sh(), "x", a.sw());
  if (a.pt() == a.pl() && a.pt() == a.pb() && a.pt() == a.pr()) {
    if (a.pt() != 0) s += str(", p", a.pt());
  } else {
    s += str(", p", a.pt(), "/", a.pl(), "/", a.pb(), "/", a.pr());
  }
  if (a.dilation_h != 1 || a.dilation_w != 1)
    s += a.dilation_h == a.dilation_w ? str(", d", a.dilation_h) : str(", d", a.dilation_h, "x", a.dilation_w);
  if (a.groups != 1) s += str(", g", a.groups);
  if (transposed && (a.oph() != 0 || a.opw() != 0))
    s += a.oph() == a.opw() ? str(", op", a.oph()) : str(", op", a.oph(), "x", a.opw());
  if (!has_bias) s += ", no bias";
  return s;
}

// Throws ValueError naming `layer` unless the geometry's numbers are in range for in/out channels.
void check_geometry(const char* layer, int in_ch, int out_ch, int kh, int kw, const ConvArgs& a) {
  SL_CHECK(in_ch > 0 && out_ch > 0 && kh > 0 && kw > 0 && a.sh() > 0 && a.sw() > 0 && a.pt() >= 0 && a.pl() >= 0 &&
               a.pb() >= 0 && a.pr() >= 0 && a.dilation_h > 0 && a.dilation_w > 0 && a.groups > 0 &&
               in_ch % a.groups == 0 && out_ch % a.groups == 0,
           ValueError, layer, ": bad arguments (in ", in_ch, ", out ", out_ch, ", kernel ", kh, "x", kw, ", stride ",
           a.sh(), "x", a.sw(), ", padding ", a.pt(), "/", a.pl(), "/", a.pb(), "/", a.pr(), ", dilation ",
           a.dilation_h, "x", a.dilation_w, ", groups ", a.groups, ")");
}

}  // namespace

// ---- Conv2d ------------------------------------------------------------------------------------------
Conv2d::Conv2d(int in_ch, int out_ch, int k, int stride_, int pad_, bool has_bias)
    : in_channels(in_ch),
      out_channels(out_ch),
      kernel(k),
      stride(stride_),
      pad(pad_),
      kernel_h(k),
      kernel_w(k),
      geometry(square_geometry(stride_, pad_)) {
  SL_CHECK(in_ch > 0 && out_ch > 0 && k > 0 && stride_ > 0 && pad_ >= 0, ValueError, "Conv2d: bad arguments (in ",
           in_ch, ", out ", out_ch, ", k ", k, ", stride ", stride_, ", pad ", pad_, ")");
  weight = Tensor::zeros(Shape{out_ch, in_ch, k, k});
  register_parameter("weight", &weight);
  if (has_bias) {
    bias = Tensor::zeros(Shape{out_ch});
    register_parameter("bias", &bias);
  }
}

Conv2d::Conv2d(int in_ch, int out_ch, int kh, int kw, const ConvArgs& a, bool has_bias)
    : in_channels(in_ch),
      out_channels(out_ch),
      kernel(kh),
      stride(a.sh()),
      pad(a.pt()),
      kernel_h(kh),
      kernel_w(kw),
      geometry(without_relu(a)) {
  check_geometry("Conv2d", in_ch, out_ch, kh, kw, a);
  weight = Tensor::zeros(Shape{out_ch, in_ch / a.groups, kh, kw});
  register_parameter("weight", &weight);
  if (has_bias) {
    bias = Tensor::zeros(Shape{out_ch});
    register_parameter("bias", &bias);
  }
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, geometry); }
Tensor Conv2d::forward_relu(const Tensor& x) {
  ConvArgs a = geometry;
  a.relu = true;
  return conv2d(x, weight, bias, a);
}
Tensor Conv2d::forward_relu_pool(const Tensor& x, int pool_k, int pool_stride) {
  if (!geometry.uniform() || kernel_h != kernel_w) return max_pool2d(forward_relu(x), pool_k, pool_stride);
  return conv2d_relu_pool(x, weight, bias, stride, pad, pool_k, pool_stride);
}

Shape Conv2d::output_shape(const Shape& in) const {
  check_image(in, in_channels, describe());
  const ConvArgs& a = geometry;
  int64_t h = conv_out_size_ext(in[2], kernel_h, a.sh(), a.pt(), a.pb(), a.dilation_h),
          w = conv_out_size_ext(in[3], kernel_w, a.sw(), a.pl(), a.pr(), a.dilation_w);
  SL_CHECK(h > 0 && w > 0, ShapeError, describe(), ": input ", in.str(), " is smaller than the kernel");
  return Shape{in[0], out_channels, h, w};
}

std::string Conv2d::describe() const {
  return str("Conv2d(", in_channels, "->", out_channels,
             geometry_options(kernel_h, kernel_w, geometry, false, bias.defined()), ")");
}

void Conv2d::reset_parameters(Generator& gen) { init::pytorch_default_(weight, bias, gen); }

// ---- ConvTranspose2d ---------------------------------------------------------------------------------
ConvTranspose2d::ConvTranspose2d(int in_ch, int out_ch, int k, int stride_, int pad_, int out_pad, bool has_bias)
    : in_channels(in_ch),
      out_channels(out_ch),
      kernel(k),
      stride(stride_),
      pad(pad_),
      output_padding(out_pad),
      kernel_h(k),
      kernel_w(k),
      geometry(square_geometry(stride_, pad_, out_pad)) {
  SL_CHECK(in_ch > 0 && out_ch > 0 && k > 0 && stride_ > 0 && pad_ >= 0 && out_pad >= 0 && out_pad < stride_,
           ValueError, "ConvTranspose2d: bad arguments (in ", in_ch, ", out ", out_ch, ", k ", k, ", stride ", stride_,
           ", pad ", pad_, ", output_padding ", out_pad, "; output_padding must be < stride)");
  weight = Tensor::zeros(Shape{in_ch, out_ch, k, k});
  register_parameter("weight", &weight);
  if (has_bias) {
    bias = Tensor::zeros(Shape{out_ch});
    register_parameter("bias", &bias);
  }
}

ConvTranspose2d::ConvTranspose2d(int in_ch, int out_ch, int kh, int kw, const ConvArgs& a, bool has_bias)
    : in_channels(in_ch),
      out_channels(out_ch),
      kernel(kh),
      stride(a.sh()),
      pad(a.pt()),
      output_padding(a.oph()),
      kernel_h(kh),
      kernel_w(kw),
      geometry(without_relu(a)) {
  check_geometry("ConvTranspose2d", in_ch, out_ch, kh, kw, a);
  SL_CHECK(a.oph() >= 0 && a.opw() >= 0 && a.oph() < std::max(a.sh(), a.dilation_h) &&
               a.opw() < std::max(a.sw(), a.dilation_w),
           ValueError, "ConvTranspose2d: output_padding ", a.oph(), "x", a.opw(),
           " must be smaller than the stride or the dilation");
  weight = Tensor::zeros(Shape{in_ch, out_ch / a.groups, kh, kw});
  register_parameter("weight", &weight);
  if (has_bias) {
    bias = Tensor::zeros(Shape{out_ch});
    register_parameter("bias", &bias);
  }
}

Tensor ConvTranspose2d::forward(const Tensor& x) { return conv_transpose2d(x, weight, bias, geometry); }

Shape ConvTranspose2d::output_shape(const Shape& in) const {
  check_image(in, in_channels, describe());
  const ConvArgs& a = geometry;
  int64_t h = conv_transpose_out_size_ext(in[2], kernel_h, a.sh(), a.pt(), a.pb(), a.dilation_h, a.oph());
  int64_t w = conv_transpose_out_size_ext(in[3], kernel_w, a.sw(), a.pl(), a.pr(), a.dilation_w, a.opw());
  SL_CHECK(h > 0 && w > 0, ShapeError, describe(), ": input ", in.str(), " gives an empty output");
  return Shape{in[0], out_channels, h, w};
}

std::string ConvTranspose2d::describe() const {
  return str("ConvTranspose2d(", in_channels, "->", out_channels,
             geometry_options(kernel_h, kernel_w, geometry, true, bias.defined()), ")");
}

void ConvTranspose2d::reset_parameters(Generator& gen) { init::pytorch_default_(weight, bias, gen); }

// ---- Linear ------------------------------------------------------------------------------------------
Linear::Linear(int in_f, int out_f, bool has_bias) : in_features(in_f), out_features(out_f) {
  SL_CHECK(in_f > 0 && out_f > 0, ValueError, "Linear: bad sizes (", in_f, " -> ", out_f, ")");
  weight = Tensor::zeros(Shape{out_f, in_f});
  register_parameter("weight", &weight);
  if (has_bias) {
    bias = Tensor::zeros(Shape{out_f});
    register_parameter("bias", &bias);
  }
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }
Tensor Linear::forward_relu(const Tensor& x) { return linear(x, weight, bias, true); }

Shape Linear::output_shape(const Shape& in) const {
  SL_CHECK(in.rank() == 2 && in[1] == in_features, ShapeError, describe(), " expects an input of shape [N, ",
           in_features, "], got ", in.str());
  return Shape{in[0], out_features};
}

std::string Linear::describe() const {
  return str("Linear(", in_features, "->", out_features, bias.defined() ? "" : ", no bias", ")");
}

void Linear::reset_parameters(Generator& gen) { init::pytorch_default_(weight, bias, gen); }

// ---- MaxPool2d ---------------------------------------------------------------------------------------
MaxPool2d::MaxPool2d(int k, int stride_) : kernel(k), stride(stride_ == 0 ? k : stride_) {
  SL_CHECK(k > 0 && stride_ >= 0, ValueError, "MaxPool2d: bad arguments (k ", k, ", stride ", stride_, ")");
}

Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel, stride); }

Shape MaxPool2d::output_shape(const Shape& in) const {
  check_image(in, -1, describe());
  int64_t h = conv_out_size(in[2], kernel, stride, 0), w = conv_out_size(in[3], kernel, stride, 0);
  SL_CHECK(h > 0 && w > 0, ShapeError, describe(), ": input ", in.str(), " is smaller than the window");
  return Shape{in[0], in[1], h, w};
}

std::string MaxPool2d::describe() const {
  return stride == kernel ? str("MaxPool2d(", kernel, ")") : str("MaxPool2d(", kernel, ", s", stride, ")");
}

// ---- Pool2d, GlobalAvgPool2d -------------------------------------------------------------------------
Pool2d::Pool2d(const PoolArgs& a) : args(a) {
  const int64_t span_h = int64_t(a.kh - 1) * a.dh + 1, span_w = int64_t(a.kw - 1) * a.dw + 1;
  SL_CHECK(a.kh > 0 && a.kw > 0 && a.sh > 0 && a.sw > 0 && a.dh > 0 && a.dw > 0 && a.pt >= 0 && a.pl >= 0 &&
               a.pb >= 0 && a.pr >= 0 && a.pt < span_h && a.pb < span_h && a.pl < span_w && a.pr < span_w,
           ValueError, "Pool2d: bad arguments (window ", a.kh, "x", a.kw, ", stride ", a.sh, "x", a.sw, ", padding ",
           a.pt, "/", a.pl, "/", a.pb, "/", a.pr, ", dilation ", a.dh, "x", a.dw,
           "); paddings must be smaller than the window's span");
}

Tensor Pool2d::forward(const Tensor& x) { return pool2d(x, args); }

Shape Pool2d::output_shape(const Shape& in) const {
  check_image(in, -1, describe());
  const PoolArgs& a = args;
  const int64_t h = pool_out_size(in[2], a.kh, a.sh, a.pt, a.pb, a.dh, a.ceil_mode),
                w = pool_out_size(in[3], a.kw, a.sw, a.pl, a.pr, a.dw, a.ceil_mode);
  SL_CHECK(h > 0 && w > 0, ShapeError, describe(), ": input ", in.str(), " is smaller than the window");
  return Shape{in[0], in[1], h, w};
}

std::string Pool2d::describe() const {
  const PoolArgs& a = args;
  std::string s =
      str(a.mode == PoolMode::max ? "MaxPool2d(" : "AvgPool2d(", a.kh == a.kw ? str(a.kh) : str(a.kh, "x", a.kw));
  if (a.sh != a.kh || a.sw != a.kw) s += a.sh == a.sw ? str(", s", a.sh) : str(", s", a.sh, "x", a.sw);
  if (a.pt == a.pl && a.pt == a.pb && a.pt == a.pr) {
    if (a.pt != 0) s += str(", p", a.pt);
  } else {
    s += str(", p", a.pt, "/", a.pl, "/", a.pb, "/", a.pr);
  }
  if (a.dh != 1 || a.dw != 1) s += a.dh == a.dw ? str(", d", a.dh) : str(", d", a.dh, "x", a.dw);
  if (a.ceil_mode) s += ", ceil";
  if (a.mode == PoolMode::avg && a.count_include_pad) s += ", count_include_pad";
  return s + ")";
}

Tensor GlobalAvgPool2d::forward(const Tensor& x) { return global_avg_pool2d(x); }

Shape GlobalAvgPool2d::output_shape(const Shape& in) const {
  check_image(in, -1, describe());
  SL_CHECK(in[2] > 0 && in[3] > 0, ShapeError, describe(), ": empty input ", in.str());
  return Shape{in[0], in[1], 1, 1};
}

// ---- BatchNorm, AddConstant ------------------------------------------------------------------------------
BatchNorm::BatchNorm(int c) : channels(c) {
  SL_CHECK(c > 0, ValueError, "BatchNorm: channels must be positive, got ", c);
  weight = Tensor::ones(Shape{c});
  bias = Tensor::zeros(Shape{c});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

std::shared_ptr<BatchNorm> BatchNorm::from_statistics(const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                                                      const Tensor& var, double eps) {
  SL_CHECK(gamma.defined() && gamma.dim() == 1 && gamma.size(0) > 0, ShapeError,
           "BatchNorm: scale must be 1-d and non-empty");
  const Shape s = gamma.shape();
  SL_CHECK(
      beta.defined() && mean.defined() && var.defined() && beta.shape() == s && mean.shape() == s && var.shape() == s,
      ShapeError, "BatchNorm: scale, bias, mean and variance must all be ", s.str());
  SL_CHECK(eps >= 0 && std::isfinite(eps), ValueError, "BatchNorm: epsilon must be finite and >= 0, got ", eps);
  auto g = gamma.to_vector(), b = beta.to_vector(), m = mean.to_vector(), v = var.to_vector();
  std::vector<double> w(g.size()), sh(g.size());
  for (size_t i = 0; i < g.size(); ++i) {
    SL_CHECK(v[i] + eps > 0, ValueError, "BatchNorm: variance + epsilon of channel ", i, " is ", v[i] + eps,
             " (must be > 0)");
    // in the stored precision, as a runtime computing (x - mean) / sqrt(var + eps) * gamma + beta in float would
    const float inv = 1.0f / std::sqrt(float(v[i]) + float(eps));
    w[i] = double(float(g[i]) * inv);
    sh[i] = double(float(b[i]) - float(m[i]) * float(w[i]));
  }
  auto bn = std::make_shared<BatchNorm>(int(s[0]));
  bn->weight.copy_(Tensor::from_vector(w, s, DType::f32));
  bn->bias.copy_(Tensor::from_vector(sh, s, DType::f32));
  return bn;
}

Tensor BatchNorm::forward(const Tensor& x) { return channel_affine(x, weight, bias); }

Shape BatchNorm::output_shape(const Shape& in) const {
  SL_CHECK(in.rank() >= 2 && in[1] == channels, ShapeError, describe(), " expects [N, ", channels, ", ...], got ",
           in.str());
  return in;
}

std::string BatchNorm::describe() const { return str("BatchNorm(", channels, ")"); }

AddConstant::AddConstant(const Tensor& v) {
  SL_CHECK(v.defined() && v.dtype() != DType::i32, ValueError, "AddConstant: needs a float tensor");
  value = v.to(Device::cpu()).to(DType::f32).clone();
  register_parameter("value", &value);
}

Tensor AddConstant::forward(const Tensor& x) { return add_broadcast(x, value); }

Shape AddConstant::output_shape(const Shape& in) const {
  return bcast::broadcast_shape(in, value.shape(), "AddConstant");
}

std::string AddConstant::describe() const { return str("AddConstant(", value.shape().str(), ")"); }

// ---- activations, Flatten, Reshape, Dropout ----------------------------------------------------------------
Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }

Tensor Tanh::forward(const Tensor& x) { return sl::tanh(x); }

LeakyReLU::LeakyReLU(double a) : alpha(a) {
  SL_CHECK(std::isfinite(a), ValueError, "LeakyReLU: alpha must be finite, got ", a);
}
Tensor LeakyReLU::forward(const Tensor& x) { return leaky_relu(x, alpha); }
std::string LeakyReLU::describe() const { return str("LeakyReLU(", alpha, ")"); }

Softmax::Softmax(int axis_, bool flatten_) : axis(axis_), flatten(flatten_) {}

Tensor Softmax::forward(const Tensor& x) {
  const int r = int(x.dim());
  SL_CHECK(axis >= -r && axis < r, ShapeError, describe(), ": axis out of range for input ", x.shape().str());
  if (!flatten) return softmax(x, axis);
  const int a = axis < 0 ? axis + r : axis;
  int64_t rows = 1;
  for (int d = 0; d < a; ++d) rows *= x.size(d);
  return reshape(softmax(reshape(x, Shape{rows, rows == 0 ? 0 : x.numel() / rows}), -1), x.shape());
}

std::string Softmax::describe() const { return str("Softmax(axis ", axis, flatten ? ", flattened" : "", ")"); }

Flatten::Flatten(int axis_) : axis(axis_) {}

Tensor Flatten::forward(const Tensor& x) {
  if (axis == 1) return flatten(x, 1);
  return reshape(x, output_shape(x.shape()));
}

Shape Flatten::output_shape(const Shape& in) const {
  const int r = int(in.rank());
  SL_CHECK(r >= 1 || axis == 0, ShapeError, "Flatten needs a batch dimension, got a 0-d shape");
  const int a = axis < 0 ? axis + r : axis;
  SL_CHECK(a >= 0 && a <= r, ShapeError, describe(), ": axis out of range for input ", in.str());
  int64_t lead = 1, rest = 1;
  for (int d = 0; d < r; ++d) (d < a ? lead : rest) *= in[size_t(d)];
  return Shape{lead, rest};
}

Reshape::Reshape(const Shape& t, bool kb) : target(t), keep_batch(kb) {
  for (size_t i = 0; i < t.rank(); ++i)
    SL_CHECK(t[i] >= 0, ValueError, "Reshape: target ", t.str(), " must be fully resolved (no -1 or 0 entries)");
}

Shape Reshape::output_shape(const Shape& in) const {
  Shape out = target;
  if (keep_batch) {
    SL_CHECK(in.rank() >= 1, ShapeError, describe(), ": input ", in.str(), " has no batch dim");
    std::vector<int64_t> d{in[0]};
    for (size_t i = 0; i < target.rank(); ++i) d.push_back(target[i]);
    out = Shape(d);
  }
  SL_CHECK(out.numel() == in.numel(), ShapeError, describe(), ": input ", in.str(), " has ", in.numel(),
           " elements, the target ", out.str(), " ", out.numel());
  return out;
}

Tensor Reshape::forward(const Tensor& x) { return reshape(x, output_shape(x.shape())); }

std::string Reshape::describe() const { return str("Reshape(", keep_batch ? "N, " : "", target.str(), ")"); }

Dropout::Dropout(double rate_, bool rescale_, Generator& gen) : rate(rate_), rescale(rescale_), gen_(&gen) {
  SL_CHECK(rate_ >= 0 && rate_ < 1, ValueError, "Dropout rate must be in [0, 1), got ", rate_);
}

Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || rate == 0) return x;
  return dropout(x, rate, rescale, *gen_);
}

std::string Dropout::describe() const { return str("Dropout(", rate, rescale ? "" : ", no rescale", ")"); }

}  // namespace sl
