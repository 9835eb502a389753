// The layers: thin Modules over the differentiable ops of autograd/ops.h. Shapes are NCHW for images and
// [N, features] for Linear. Parameters are created zero-filled and float32 on the CPU; call
// reset_parameters(gen) (the model builders do) for PyTorch's default initialisation.
#pragma once
#include "nn/module.h"

namespace sl {

class Conv2d : public Module {
 public:
  Conv2d(int in_channels, int out_channels, int kernel, int stride = 1, int pad = 0, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor forward_relu(const Tensor& x);  // relu(forward(x)) in one op (Sequential fuses Conv2d + ReLU)
  // pool(relu(forward(x))) in one op (Sequential fuses Conv2d + ReLU + MaxPool2d)
  Tensor forward_relu_pool(const Tensor& x, int pool_k, int pool_stride);
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override;
  void reset_parameters(Generator& gen) override;

  Tensor weight;  // [out, in, k, k]
  Tensor bias;    // [out], undefined without bias
  const int in_channels, out_channels, kernel, stride, pad;
};

class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int in_channels, int out_channels, int kernel, int stride = 1, int pad = 0, int output_padding = 0,
                  bool bias = true);
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override;
  void reset_parameters(Generator& gen) override;

  Tensor weight;  // [in, out, k, k] (PyTorch's layout)
  Tensor bias;    // [out]
  const int in_channels, out_channels, kernel, stride, pad, output_padding;
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

// [N, d1, d2, ...] -> [N, d1·d2·...]
class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override { return "Flatten"; }
};

// [N, C·H·W] -> [N, C, H, W]: a flat feature vector back into an image-shaped tensor (a view, differentiable).
class Unflatten : public Module {
 public:
  explicit Unflatten(Shape image);  // one sample, [C, H, W]
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& in) const override;
  std::string describe() const override { return "Unflatten(" + image_.str() + ")"; }

 private:
  Shape image_;
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
