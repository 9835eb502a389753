#include "nn/optim.h"

#include <cmath>

#include "autograd/node.h"

namespace sl {

namespace {
// A zero-filled tensor like t (same shape, dtype, device).
Tensor zeros_like(const Tensor& t) { return Tensor::zeros(t.shape(), t.dtype(), t.device()); }
}  // namespace

Optimizer::Optimizer(std::vector<Tensor> params) : params_(std::move(params)) {
  for (auto& p : params_) SL_CHECK(p.defined(), ValueError, "optimizer given an undefined parameter");
}

void Optimizer::zero_grad() {
  for (auto& p : params_) p.zero_grad();
}

// ---- SGD ---------------------------------------------------------------------------------------------
SGD::SGD(std::vector<Tensor> params, const SgdArgs& args)
    : Optimizer(std::move(params)), args_(args), momentum_(params_.size()) {
  SL_CHECK(args.lr >= 0 && args.momentum >= 0 && args.weight_decay >= 0, ValueError,
           "SGD: lr, momentum and weight decay must be >= 0");
  SL_CHECK(!args.nesterov || (args.momentum > 0 && args.dampening == 0), ValueError,
           "SGD: Nesterov momentum needs momentum > 0 and no dampening");
}

void SGD::step() {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = params_[i].grad();
    if (!g.defined()) continue;
    // The momentum buffer exists only with momentum (the kernel ignores it otherwise).
    bool first = !momentum_[i].defined();
    if (first && args_.momentum != 0) momentum_[i] = zeros_like(params_[i]);
    kern::sgd_step(params_[i], g, momentum_[i], args_, first);
  }
}

// ---- Adam --------------------------------------------------------------------------------------------
Adam::Adam(std::vector<Tensor> params, const AdamArgs& args)
    : Optimizer(std::move(params)), args_(args), m_(params_.size()), v_(params_.size()), vmax_(params_.size()),
      steps_(params_.size(), 0) {
  SL_CHECK(args.lr >= 0 && args.eps >= 0 && args.weight_decay >= 0, ValueError,
           "Adam: lr, eps and weight decay must be >= 0");
  SL_CHECK(args.beta1 >= 0 && args.beta1 < 1 && args.beta2 >= 0 && args.beta2 < 1, ValueError,
           "Adam: betas must be in [0, 1), got ", args.beta1, ", ", args.beta2);
}

void Adam::step() {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = params_[i].grad();
    if (!g.defined()) continue;
    if (!m_[i].defined()) {
      m_[i] = zeros_like(params_[i]);
      v_[i] = zeros_like(params_[i]);
      if (args_.amsgrad) vmax_[i] = zeros_like(params_[i]);
    }
    kern::adam_step(params_[i], g, m_[i], v_[i], vmax_[i], args_, ++steps_[i]);
  }
}

// ---- StepLR ------------------------------------------------------------------------------------------
StepLR::StepLR(Optimizer& opt, int step_size, double gamma)
    : opt_(opt), step_size_(step_size), gamma_(gamma), lr0_(opt.lr()) {
  SL_CHECK(step_size > 0, ValueError, "StepLR: step size must be > 0, got ", step_size);
}

double StepLR::lr_at(int epoch) const { return lr0_ * std::pow(gamma_, double(epoch / step_size_)); }

void StepLR::set_epoch(int epoch) { opt_.set_lr(lr_at(epoch)); }

}  // namespace sl
