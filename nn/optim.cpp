#include "nn/optim.h"

#include <cmath>

#include "autograd/node.h"
#ifdef SPLITLEAK_WITH_CUDA
#include "kernels/cuda/optim_multi.h"
#endif

namespace sl {

namespace {
// A zero-filled tensor like t (same shape, dtype, device).
Tensor zeros_like(const Tensor& t) { return Tensor::zeros(t.shape(), t.dtype(), t.device()); }

// True when every parameter lives on one CUDA device with one float dtype (the fused multi-tensor path).
bool all_on_one_gpu(const std::vector<Tensor>& ps) {
#ifdef SPLITLEAK_WITH_CUDA
  if (ps.empty() || !ps[0].device().is_cuda()) return false;
  for (auto& p : ps)
    if (p.device() != ps[0].device() || p.dtype() != ps[0].dtype() || !p.is_contiguous()) return false;
  return ps[0].dtype() != DType::i32;
#else
  (void)ps;
  return false;
#endif
}
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
#ifdef SPLITLEAK_WITH_CUDA
  if (all_on_one_gpu(params_)) {  // one launch for the parameters on their first step, one for the others
    std::vector<Tensor> p[2], g[2], b[2];
    for (size_t i = 0; i < params_.size(); ++i) {
      Tensor gi = params_[i].grad();
      if (!gi.defined()) continue;
      const int first = momentum_[i].defined() ? 0 : 1;
      if (first && args_.momentum != 0) momentum_[i] = zeros_like(params_[i]);
      p[first].push_back(params_[i]);
      g[first].push_back(gi);
      b[first].push_back(momentum_[i]);
    }
    for (int first = 0; first < 2; ++first)
      if (!p[first].empty()) cuda::sgd_step_multi(p[first], g[first], b[first], args_, first == 1);
    return;
  }
#endif
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
    : Optimizer(std::move(params)),
      args_(args),
      m_(params_.size()),
      v_(params_.size()),
      vmax_(params_.size()),
      steps_(params_.size(), 0) {
  SL_CHECK(args.lr >= 0 && args.eps >= 0 && args.weight_decay >= 0, ValueError,
           "Adam: lr, eps and weight decay must be >= 0");
  SL_CHECK(args.beta1 >= 0 && args.beta1 < 1 && args.beta2 >= 0 && args.beta2 < 1, ValueError,
           "Adam: betas must be in [0, 1), got ", args.beta1, ", ", args.beta2);
}

bool Adam::fused() const { return all_on_one_gpu(params_); }

void Adam::set_lr(double lr) {
  if (lr == args_.lr) return;  // dev_lr_ (when there is one) already holds it: no kernel per step at a constant rate
  args_.lr = lr;
  if (dev_lr_.defined()) dev_lr_.fill_(lr);  // a kernel on the stream: later (replayed) steps read the new rate
}

int64_t Adam::step_count(size_t i) const {
  SL_CHECK(i < params_.size(), ValueError, "Adam::step_count: no parameter ", i);
  if (dev_steps_.defined()) return int64_t(dev_steps_.slice(int64_t(i), int64_t(i) + 1).item());
  return steps_[i];
}

void Adam::step_fused() {
#ifdef SPLITLEAK_WITH_CUDA
  const Device dev = params_[0].device();
  if (!dev_steps_.defined()) {
    std::vector<double> counts(steps_.begin(), steps_.end());  // steps taken before on the CPU, if any
    dev_steps_ = Tensor::from_vector(counts, Shape{int64_t(params_.size())}, DType::f64).to(dev);
    dev_lr_ = Tensor::full(Shape{1}, args_.lr, DType::f64, dev);
    ticket_ = Tensor::zeros(Shape{1}, DType::i32, dev);
  }
  std::vector<Tensor> p, g, m, v, vm;
  std::vector<int> slots;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor gi = params_[i].grad();
    if (!gi.defined()) continue;
    if (!m_[i].defined()) {
      m_[i] = zeros_like(params_[i]);
      v_[i] = zeros_like(params_[i]);
      if (args_.amsgrad) vmax_[i] = zeros_like(params_[i]);
    }
    p.push_back(params_[i]);
    g.push_back(gi.is_contiguous() ? gi : gi.contiguous());
    m.push_back(m_[i]);
    v.push_back(v_[i]);
    if (args_.amsgrad) vm.push_back(vmax_[i]);
    slots.push_back(int(i));
    ++steps_[i];
  }
  cuda::adam_step_multi_device(p, g, m, v, vm, args_, dev_lr_, dev_steps_, slots, ticket_);
#endif
}

void Adam::step() {
  NoGradGuard no_grad;
  if (fused()) {
    step_fused();
    return;
  }
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
