// Sequential: named layers run one after the other. The layer names are the split points of split
// inference: split("ReLU2") gives the edge head (first layer up to and including ReLU2) and the cloud
// tail (the rest), both sharing the original layer objects and hence the same parameter tensors.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"

namespace sl {

class Sequential;

struct SplitModel {
  std::shared_ptr<Sequential> head;  // runs on the edge; ends with the named layer
  std::shared_ptr<Sequential> tail;  // runs in the cloud; empty (the identity) after the last layer
};

class Sequential : public Module {
 public:
  Sequential() = default;

  // Appends a layer; names are unique and contain no '.'. Returns *this for chaining.
  Sequential& add(std::string name, std::shared_ptr<Module> layer);

  // A Conv2d or Linear directly followed by a ReLU runs as one op with the ReLU in the producing kernel's
  // epilogue (autograd conv2d/linear with relu = true): the same values and gradients, one kernel and one
  // activation tensor less per pair. A Conv2d + ReLU + MaxPool2d triple runs as conv2d_relu_pool (the ReLU's
  // mask read from the pooled output; on CUDA the pool can sit in the conv's epilogue).
  Tensor forward(const Tensor& x) override;
  // Runs the layers up to and including `name` and returns that layer's output (fused as forward).
  Tensor forward_until(const Tensor& x, const std::string& name);

  size_t size() const { return children().size(); }
  std::vector<std::string> layer_names() const;
  std::shared_ptr<Module> layer(const std::string& name) const;  // ValueError if absent
  // Position of `name`; throws ValueError listing the valid names when there is no such layer.
  size_t index_of(const std::string& name) const;

  SplitModel split(const std::string& name) const;

  Shape output_shape(const Shape& in) const override;
  // The output shape after each layer, in order, for an input of shape `in`.
  std::vector<std::pair<std::string, Shape>> output_shapes(const Shape& in) const;
  std::string describe() const override;  // "Sequential(12 layers)"
  // One line per layer: "conv1  Conv2d(1->8, k5)  [1, 8, 24, 24]" for an input of shape `in`.
  std::string summary(const Shape& in) const;

 private:
  Tensor run(const Tensor& x, size_t last);  // layers 0..last
};

}  // namespace sl
