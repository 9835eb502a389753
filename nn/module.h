// Module: the base of every layer and network. A module owns named parameter tensors, may hold named
// child modules, and maps an input tensor to an output tensor with forward(). Parameter names are dotted
// paths through the children ("conv1.weight").
//
// Modules are shared, not copied: a network and the head/tail halves of its split hold the very same layer
// objects (std::shared_ptr), so training one trains the others and moving one moves the others.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace sl {

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;  // parameters are registered by address; see register_parameter
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // The output shape for an input of shape `in` (batch dimension included); throws ShapeError when the
  // input does not fit. Shape-preserving layers keep the default.
  virtual Shape output_shape(const Shape& in) const { return in; }
  // One line saying what the module is, e.g. "Conv2d(1->8, k5)".
  virtual std::string describe() const = 0;
  // Re-draws the parameters with the layer's default initialisation (PyTorch's); children in order.
  virtual void reset_parameters(Generator& gen);

  // All parameters, own first then each child's, with dotted names.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  int64_t num_parameters() const;  // total number of elements
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }

  // Training mode (Dropout is active only while training); applies to all children.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves / converts every parameter in place: the tensors keep their identity (so optimizers and split
  // halves holding them follow), their requires_grad flag, and their gradient (moved along).
  void to(Device d);
  void to(DType t);
  void zero_grad();  // drops every parameter's gradient

 protected:
  // Registers a tensor member as a parameter (requires_grad is set). The module must stay at one address,
  // which is why modules are neither copied nor moved.
  void register_parameter(std::string name, Tensor* t);
  void register_child(std::string name, std::shared_ptr<Module> m);

 private:
  std::vector<std::pair<std::string, Tensor*>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace sl
