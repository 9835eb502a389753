#include "nn/layers.h"

#include "autograd/ops.h"
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

}  // namespace

// ---- Conv2d ------------------------------------------------------------------------------------------
Conv2d::Conv2d(int in_ch, int out_ch, int k, int stride_, int pad_, bool has_bias)
    : in_channels(in_ch), out_channels(out_ch), kernel(k), stride(stride_), pad(pad_) {
  SL_CHECK(in_ch > 0 && out_ch > 0 && k > 0 && stride_ > 0 && pad_ >= 0, ValueError, "Conv2d: bad arguments (in ",
           in_ch, ", out ", out_ch, ", k ", k, ", stride ", stride_, ", pad ", pad_, ")");
  weight = Tensor::zeros(Shape{out_ch, in_ch, k, k});
  register_parameter("weight", &weight);
  if (has_bias) {
    bias = Tensor::zeros(Shape{out_ch});
    register_parameter("bias", &bias);
  }
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, stride, pad); }
Tensor Conv2d::forward_relu(const Tensor& x) { return conv2d(x, weight, bias, stride, pad, true); }
Tensor Conv2d::forward_relu_pool(const Tensor& x, int pool_k, int pool_stride) {
  return conv2d_relu_pool(x, weight, bias, stride, pad, pool_k, pool_stride);
}

Shape Conv2d::output_shape(const Shape& in) const {
  check_image(in, in_channels, describe());
  int64_t h = conv_out_size(in[2], kernel, stride, pad), w = conv_out_size(in[3], kernel, stride, pad);
  SL_CHECK(h > 0 && w > 0, ShapeError, describe(), ": input ", in.str(), " is smaller than the kernel");
  return Shape{in[0], out_channels, h, w};
}

std::string Conv2d::describe() const {
  return str("Conv2d(", in_channels, "->", out_channels, ", k", kernel, conv_options(stride, pad, 0, bias.defined()),
             ")");
}

void Conv2d::reset_parameters(Generator& gen) { init::pytorch_default_(weight, bias, gen); }

// ---- ConvTranspose2d ---------------------------------------------------------------------------------
ConvTranspose2d::ConvTranspose2d(int in_ch, int out_ch, int k, int stride_, int pad_, int out_pad, bool has_bias)
    : in_channels(in_ch), out_channels(out_ch), kernel(k), stride(stride_), pad(pad_), output_padding(out_pad) {
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

Tensor ConvTranspose2d::forward(const Tensor& x) {
  return conv_transpose2d(x, weight, bias, stride, pad, output_padding);
}

Shape ConvTranspose2d::output_shape(const Shape& in) const {
  check_image(in, in_channels, describe());
  int64_t h = conv_transpose_out_size(in[2], kernel, stride, pad, output_padding);
  int64_t w = conv_transpose_out_size(in[3], kernel, stride, pad, output_padding);
  SL_CHECK(h > 0 && w > 0, ShapeError, describe(), ": input ", in.str(), " gives an empty output");
  return Shape{in[0], out_channels, h, w};
}

std::string ConvTranspose2d::describe() const {
  return str("ConvTranspose2d(", in_channels, "->", out_channels, ", k", kernel,
             conv_options(stride, pad, output_padding, bias.defined()), ")");
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

// ---- activations, Flatten, Dropout ---------------------------------------------------------------------
Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }

Tensor Flatten::forward(const Tensor& x) { return flatten(x, 1); }

Shape Flatten::output_shape(const Shape& in) const {
  SL_CHECK(in.rank() >= 1, ShapeError, "Flatten needs a batch dimension, got a 0-d shape");
  int64_t features = 1;
  for (size_t i = 1; i < in.rank(); ++i) features *= in[i];
  return Shape{in[0], features};
}

Unflatten::Unflatten(Shape image) : image_(std::move(image)) {
  SL_CHECK(image_.rank() == 3, ShapeError, "Unflatten: needs an image shape [C, H, W], got ", image_.str());
}

Tensor Unflatten::forward(const Tensor& x) { return reshape(x, Shape{x.size(0), image_[0], image_[1], image_[2]}); }

Shape Unflatten::output_shape(const Shape& in) const {
  SL_CHECK(in.rank() == 2 && in[1] == image_.numel(), ShapeError, "Unflatten to ", image_.str(), ": needs [N, ",
           image_.numel(), "], got ", in.str());
  return Shape{in[0], image_[0], image_[1], image_[2]};
}

Dropout::Dropout(double rate_, bool rescale_, Generator& gen) : rate(rate_), rescale(rescale_), gen_(&gen) {
  SL_CHECK(rate_ >= 0 && rate_ < 1, ValueError, "Dropout rate must be in [0, 1), got ", rate_);
}

Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || rate == 0) return x;
  return dropout(x, rate, rescale, *gen_);
}

std::string Dropout::describe() const { return str("Dropout(", rate, rescale ? "" : ", no rescale", ")"); }

}  // namespace sl
