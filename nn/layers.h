// The layers: thin Modules over the differentiable ops of autograd/ops.h. Shapes are NCHW for images and
// [N, features] for Linear. Parameters are created zero-filled and float32 on the CPU; call
// reset_parameters(gen) (the model builders do) for PyTorch's default initialisation.
#pragma once
#include <memory>

#include "kernels/dispatch.h"
#include "nn/module.h"

namespace sl {

class Conv2d : public Module {
 public:
  Conv2d(int in_channels, int out_channels, int kernel, int stride = 1, int pad = 0, bool bias = true);
  // Any kernel size with the general geometry of ConvArgs (ONNX Conv): strides and dilations per axis, padding
  // per side, channel groups; weight [out, in / groups, kh, kw]. (geometry.relu is ignored.)
  Conv2d(int in_channels, int out_channels, int kernel_h, int kernel_w, const ConvArgs& geometry, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor forward_relu(const Tensor& x);  // relu(forward(x)) in one op (Sequential fuses Conv2d + ReLU)
  // pool(relu(forward(x))) in one op (Sequential fuses Conv2d + ReLU + MaxPool2d)
  Tensor forward_relu_pool(const Tensor& x, int pool_k, int pool_stride);
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override;
  void reset_parameters(Generator& gen) override;

  Tensor weight;                                             // [out, in / groups, kh, kw]
  Tensor bias;                                               // [out], undefined without bias
  const int in_channels, out_channels, kernel, stride, pad;  // kernel = kh, stride and pad of the rows / the top
  const int kernel_h, kernel_w;
  const ConvArgs geometry;
};

class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int in_channels, int out_channels, int kernel, int stride = 1, int pad = 0, int output_padding = 0,
                  bool bias = true);
  // Any kernel size with the general geometry of ConvArgs (ONNX ConvTranspose); weight [in, out / groups, kh, kw].
  ConvTranspose2d(int in_channels, int out_channels, int kernel_h, int kernel_w, const ConvArgs& geometry,
                  bool bias = true);
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override;
  void reset_parameters(Generator& gen) override;

  Tensor weight;  // [in, out / groups, kh, kw] (PyTorch's layout)
  Tensor bias;    // [out]
  const int in_channels, out_channels, kernel, stride, pad, output_padding;  // of the rows (the square case)
  const int kernel_h, kernel_w;
  const ConvArgs geometry;
};

class Linear : public Module {
 public:
  Linear(int in_features, int out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor forward_relu(const Tensor& x);  // relu(forward(x)) in one op (Sequential fuses Linear + ReLU)
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override;
  void reset_parameters(Generator& gen) override;

  Tensor weight;  // [out, in]
  Tensor bias;    // [out]
  const int in_features, out_features;
};

// Max over k x k windows (no padding).
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int kernel, int stride = 0);  // stride 0 means stride = kernel
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override;
  const int kernel, stride;
};

// Max or average pooling with the general geometry of PoolArgs (ONNX MaxPool / AveragePool): windows kh x kw,
// strides, padding per side, dilation, ceil mode, count_include_pad. (MaxPool2d is its unpadded square case.)
class Pool2d : public Module {
 public:
  explicit Pool2d(const PoolArgs& args);
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override;
  const PoolArgs args;
};

// [N, C, H, W] -> [N, C, 1, 1]: the mean of each plane.
class GlobalAvgPool2d : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override { return "GlobalAvgPool2d"; }
};

// Batch normalisation at inference: y[n, c, ...] = x[n, c, ...] * weight[c] + bias[c], the running statistics folded
// in: weight = gamma / sqrt(var + eps), bias = beta - mean * weight. Inputs [N, C, ...].
class BatchNorm : public Module {
 public:
  explicit BatchNorm(int channels);
  // From the four tensors of a trained batch norm (each [channels]).
  static std::shared_ptr<BatchNorm> from_statistics(const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                                                    const Tensor& var, double eps);
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override;
  Tensor weight, bias;
  const int channels;
};

// x + value with NumPy broadcasting; value is a parameter (ONNX Add or Gemm with a constant operand).
class AddConstant : public Module {
 public:
  explicit AddConstant(const Tensor& value);
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override;
  Tensor value;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "ReLU"; }
};

class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Sigmoid"; }
};

class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "Tanh"; }
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double alpha = 0.01);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const double alpha;
};

// Softmax along `axis` (negative: from the end). With flatten, the dims from axis on are one (ONNX before opset 13:
// x read as [d0·..·d(axis-1), d(axis)·..·d(last)], normalised over each row).
class Softmax : public Module {
 public:
  explicit Softmax(int axis = -1, bool flatten = false);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const int axis;
  const bool flatten;
};

// [d0, .., d(axis-1), d(axis), ..] -> [d0·..·d(axis-1), d(axis)·..]; axis 1 (the default) keeps the batch:
// [N, d1, d2, ...] -> [N, d1·d2·...]
class Flatten : public Module {
 public:
  explicit Flatten(int axis = 1);
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override { return axis == 1 ? "Flatten" : str("Flatten(axis ", axis, ")"); }
  const int axis;
};

// A view of another shape. keep_batch: the output is [N, target...] for an input of batch N (the per-sample shape
// is fixed); otherwise the target is the whole shape (no batch dim of its own).
class Reshape : public Module {
 public:
  Reshape(const Shape& target, bool keep_batch);
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override;
  const Shape target;
  const bool keep_batch;
};

// Zeroes each element with probability `rate` while training (kept ones scaled by 1/(1-rate) when
// rescale); the identity in eval mode. The masks are drawn from `gen`, which must outlive the layer.
class Dropout : public Module {
 public:
  Dropout(double rate, bool rescale, Generator& gen);
  explicit Dropout(double rate, bool rescale = true) : Dropout(rate, rescale, default_generator()) {}
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;
  const double rate;
  const bool rescale;

 private:
  Generator* gen_;
};

}  // namespace sl
