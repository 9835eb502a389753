// Optimizers over a list of parameter tensors. The update formulas live in the kernels
// (kern::sgd_step / kern::adam_step, documented in kernels/backend_api.inc); here is only the bookkeeping:
// per-parameter state, created on the first step on the parameter's device. Parameters without a
// gradient are skipped (their state and step count do not advance).
//
// On CUDA (every parameter on one GPU, one dtype) both optimizers update all parameters with one fused
// multi-tensor launch (kernels/cuda/optim_multi.h). Adam then keeps its learning rate and step counts in device
// memory and computes the bias corrections in the kernel, so a step recorded into a CUDA graph
// (autograd/graph_step.h) stays right when replayed, set_lr included. SGD's rate is a launch argument: a captured SGD
// step must be re-captured after set_lr (lr_in_graph() says which).
#pragma once
#include <vector>

#include "kernels/dispatch.h"
#include "tensor/tensor.h"

namespace sl {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();  // drops every parameter's gradient
  virtual double lr() const = 0;
  virtual void set_lr(double lr) = 0;
  // True when a replayed CUDA-graph step picks up set_lr without a new capture.
  virtual bool lr_in_graph() const { return false; }
  const std::vector<Tensor>& params() const { return params_; }

 protected:
  std::vector<Tensor> params_;
};

// SGD with momentum, dampening, Nesterov momentum and weight decay (PyTorch's semantics).
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SgdArgs& args);
  void step() override;
  double lr() const override { return args_.lr; }
  void set_lr(double lr) override { args_.lr = lr; }

 private:
  SgdArgs args_;
  std::vector<Tensor> momentum_;  // per parameter, undefined until its first step
};

// Adam / AMSGrad with (L2) weight decay, PyTorch's semantics and bias correction.
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, const AdamArgs& args);
  void step() override;
  double lr() const override { return args_.lr; }
  void set_lr(double lr) override;
  bool lr_in_graph() const override { return true; }
  // Step count of parameter i (on CUDA read from the device: a synchronisation).
  int64_t step_count(size_t i) const;

 private:
  bool fused() const;  // every parameter on one CUDA device with one dtype
  void step_fused();
  AdamArgs args_;
  std::vector<Tensor> m_, v_, vmax_;    // per parameter; vmax only with amsgrad
  std::vector<int64_t> steps_;          // per parameter (CPU path)
  Tensor dev_lr_, dev_steps_, ticket_;  // fused CUDA path: lr [1], step counts [params], launch ticket (int32 [1])
};

// Step decay of the learning rate by epoch: lr(epoch) = lr0 · gamma^floor(epoch / step_size).
// Call set_epoch(e) at the start of each epoch (0-based); lr0 is the optimizer's rate at construction.
class StepLR {
 public:
  StepLR(Optimizer& opt, int step_size, double gamma = 0.5);
  double lr_at(int epoch) const;
  void set_epoch(int epoch);

 private:
  Optimizer& opt_;
  int step_size_;
  double gamma_, lr0_;
};

}  // namespace sl
