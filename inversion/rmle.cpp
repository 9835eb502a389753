#include "inversion/rmle.h"

#include <cmath>
#include <memory>
#include <utility>

#include "autograd/graph_step.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "kernels/dispatch.h"
#include "nn/optim.h"

namespace sl::inv {

TargetKind target_kind(const std::string& name) {
  if (name == "feature") return TargetKind::feature;
  if (name == "prob") return TargetKind::prob;
  if (name == "label") return TargetKind::label;
  throw ValueError("unknown inversion target '" + name + "' (targets: feature, prob, label)");
}

Observed Observed::rows(int64_t b, int64_t e) const {
  auto cut = [&](const Tensor& t) { return t.defined() ? t.slice(b, e).contiguous() : t; };
  Observed o;
  o.kind = kind;
  o.v = cut(v);
  o.weight = cut(weight);
  o.l1_weight = cut(l1_weight);
  for (auto& t : input_mul) o.input_mul.push_back(cut(t));
  for (auto& t : input_add) o.input_add.push_back(cut(t));
  o.clip_l1 = clip_l1;
  return o;
}

namespace {

// The feature term of a defense-modelling attacker (see Observed), times n: the sum over images.
// `scaled_v` = sqrt(weight) ⊙ v and `sqrt_weight` are precomputed by the caller (constants of the loop).
Tensor modelled_feature_term(Module& f1, const Tensor& x, const Observed& ob, const Tensor& sqrt_weight,
                             const Tensor& scaled_v, double n) {
  const size_t draws = std::max(ob.input_mul.size(), ob.input_add.size());
  const size_t K = std::max<size_t>(draws, 1);
  Tensor total;
  for (size_t k = 0; k < K; ++k) {
    Tensor xk = x;
    if (k < ob.input_mul.size()) xk = mul(xk, ob.input_mul[k]);
    if (k < ob.input_add.size()) xk = add(xk, ob.input_add[k]);
    Tensor out = f1(xk);
    if (ob.clip_l1 > 0) out = channel_l1_clip(out, ob.clip_l1);
    Tensor term;
    if (sqrt_weight.defined())
      term = mse_loss(mul(out, sqrt_weight), scaled_v, n / double(K));
    else if (!ob.l1_weight.defined())
      term = mse_loss(out, ob.v, n / double(K));
    if (ob.l1_weight.defined()) {
      Tensor d = sub(out, ob.v);
      Tensor absd = add(relu(d), relu(scale(d, -1.0)));  // |d|
      Tensor l1 = scale(mean(mul(absd, ob.l1_weight)), n / double(K));
      term = term.defined() ? add(term, l1) : l1;
    }
    total = total.defined() ? add(total, term) : term;
  }
  return total;
}

Tensor objective_impl(Module& f1, const Tensor& x, const Observed& observed, const RmleOptions& o,
                      const Tensor& sqrt_weight, const Tensor& scaled_v) {
  // N (fit + tv λ TV + λ2 mean(x²)): every term is a mean over the whole batch, so times N it is the sum of the
  // per-image objectives. The factors go into the loss kernels (their weight argument): no scalar kernels.
  const double n = double(x.size(0));
  Tensor total;
  if (observed.kind == TargetKind::feature && observed.models_defense()) {
    total = modelled_feature_term(f1, x, observed, sqrt_weight, scaled_v, n);
    if (o.tv > 0) total = total + tv_loss(x, o.tv_beta, o.tv_eps, n * o.tv);
    if (o.l2 > 0) total = total + (n * o.l2) * mean_sq(x);
    return total;
  }
  Tensor out = f1(x);
  switch (observed.kind) {
    case TargetKind::feature:
      total = mse_loss(out, observed.v, n);
      break;
    case TargetKind::prob:
      total = mse_loss(softmax(out), observed.v, n);
      break;
    case TargetKind::label:
      total = n * cross_entropy(out, observed.v);
      break;  // mean over N of -log p_c
  }
  if (o.tv > 0) total = total + tv_loss(x, o.tv_beta, o.tv_eps, n * o.tv);  // TV is already per image / N
  if (o.l2 > 0) total = total + (n * o.l2) * mean_sq(x);
  return total;
}

// sqrt(weight) and sqrt(weight) ⊙ v, computed once per attack (no graph).
std::pair<Tensor, Tensor> weight_constants(const Observed& ob) {
  if (!ob.weight.defined()) return {};
  NoGradGuard no_grad;
  std::vector<double> w = ob.weight.to_vector();
  for (double& e : w) e = std::sqrt(std::max(e, 0.0));
  Tensor s = Tensor::from_vector(w, ob.weight.shape(), ob.v.dtype()).to(ob.v.device());
  return {s, mul(s, ob.v)};
}

}  // namespace

Tensor rmle_objective(Module& f1, const Tensor& x, const Observed& observed, const RmleOptions& o) {
  auto [sqrt_weight, scaled_v] = weight_constants(observed);
  return objective_impl(f1, x, observed, o, sqrt_weight, scaled_v);
}

namespace {

std::unique_ptr<Optimizer> make_optimizer(const Tensor& x, const RmleOptions& o) {
  if (o.optimizer == "adam") {
    AdamArgs a;
    a.lr = o.lr;
    a.eps = o.adam_eps;
    a.amsgrad = o.amsgrad;
    return std::make_unique<Adam>(std::vector<Tensor>{x}, a);
  }
  if (o.optimizer == "sgd") {
    SgdArgs a;
    a.lr = o.lr;
    a.momentum = 0.9;
    return std::make_unique<SGD>(std::vector<Tensor>{x}, a);
  }
  throw ValueError("rmle: unknown optimizer '" + o.optimizer + "' (adam, sgd)");
}

double lr_at(const RmleOptions& o, int t) {
  if (o.schedule == "constant") return o.lr;
  if (o.schedule == "cosine") return o.lr * 0.5 * (1.0 + std::cos(M_PI * double(t) / double(o.iters)));
  throw ValueError("rmle: unknown schedule '" + o.schedule + "' (constant, cosine)");
}

void check_observed(const Observed& obs, const Shape& input_shape) {
  SL_CHECK(obs.v.defined(), ValueError, "rmle: the observed target is undefined");
  SL_CHECK(input_shape.rank() == 4, ShapeError, "rmle: input shape must be [N, C, H, W], got ", input_shape.str());
  SL_CHECK(obs.v.dim() >= 1 && obs.v.size(0) == input_shape[0], ShapeError, "rmle: ", input_shape[0],
           " images to reconstruct but the observation is ", obs.v.str());
  bool is_label = obs.v.dtype() == DType::i32;
  SL_CHECK(is_label == (obs.kind == TargetKind::label), ValueError,
           "rmle: a label target takes int32 classes, feature and prob targets take floats; got ", obs.v.str());
  SL_CHECK(!obs.models_defense() || obs.kind == TargetKind::feature, ValueError,
           "rmle: a defense model applies to feature targets only");
  for (const Tensor* t : {&obs.weight, &obs.l1_weight})
    SL_CHECK(!t->defined() || t->shape() == obs.v.shape(), ShapeError, "rmle: a loss weight of shape ",
             t->shape().str(), " for an observation of shape ", obs.v.shape().str());
  SL_CHECK(std::isfinite(obs.clip_l1) && obs.clip_l1 >= 0, ValueError,
           "rmle: the modelled clip bound must be >= 0, got ", obs.clip_l1);
  for (auto* list : {&obs.input_mul, &obs.input_add})
    for (const Tensor& t : *list)
      SL_CHECK(t.shape() == input_shape, ShapeError, "rmle: an input draw of shape ", t.shape().str(),
               " for inputs of shape ", input_shape.str());
  SL_CHECK(obs.input_mul.empty() || obs.input_add.empty() || obs.input_mul.size() == obs.input_add.size(), ValueError,
           "rmle: ", obs.input_mul.size(), " multiplicative and ", obs.input_add.size(), " additive input draws");
}

}  // namespace

Tensor rmle(Module& f1, const Observed& observed, const Shape& input_shape, const PixelRange& range,
            const RmleOptions& o, const RmleProgress& progress) {
  check_observed(observed, input_shape);
  SL_CHECK(o.iters >= 0 && o.lr > 0 && std::isfinite(o.lr), ValueError,
           "rmle: needs iters >= 0 and a finite lr > 0, got ", o.iters, " and ", o.lr);
  SL_CHECK(std::isfinite(o.tv) && o.tv >= 0 && std::isfinite(o.l2) && o.l2 >= 0 && o.tv_beta > 0 && o.tv_beta <= 2,
           ValueError, "rmle: needs finite weights tv >= 0 and l2 >= 0 and 0 < tv_beta <= 2, got ", o.tv, ", ", o.l2,
           " and ", o.tv_beta);
  const Device device = observed.v.device();
  const DType dtype = observed.v.dtype() == DType::f64 ? DType::f64 : DType::f32;
  GradModeOn grad_on;
  FrozenParams frozen(f1);  // gradients flow through f1 to x only
  PixelBox box(range, input_shape, device);

  Tensor x = Tensor::zeros(input_shape, dtype, device);  // start: all zeros in the normalised space
  x.requires_grad_();
  auto opt = make_optimizer(x, o);
  if (progress.fn) progress.fn(0, 0.0);
  // One iteration. On CUDA it is captured into a graph and replayed (autograd/graph_step.h): Adam keeps its lr and
  // step count on the device, so the schedule's set_lr reaches the replays; SGD bakes its lr in, so a changing
  // SGD rate runs eagerly.
  Tensor objective;
  auto [sqrt_weight, scaled_v] = weight_constants(observed);
  auto iteration = [&] {
    opt->zero_grad();
    objective = objective_impl(f1, x, observed, o, sqrt_weight, scaled_v);
    objective.backward();
    opt->step();
    if (o.project) x.copy_(box.clamp(x));  // in place: the optimizer keeps tracking the same tensor
  };
  const bool lr_on_device = o.optimizer == "adam" || o.schedule == "constant";
  CapturedStep step(iteration, lr_on_device ? device : Device::cpu());
  // Finiteness is checked where the objective is read anyway (the progress points) and once at the end: no
  // per-iteration read of a device value, so the replayed graph never waits for the host.
  auto check_finite = [&](double v, int at) {
    SL_CHECK(std::isfinite(v), ValueError, "rMLE objective became ", std::isnan(v) ? "NaN" : "inf", " by iteration ",
             at, " of ", o.iters, " (learning rate ", o.lr,
             " too large, or a model with NaN/inf weights? try a smaller --lr)");
  };
  for (int t = 0; t < o.iters; ++t) {
    opt->set_lr(lr_at(o, t));
    step();
    bool report = progress.fn && ((t + 1) % progress.every == 0 || t + 1 == o.iters);
    if (report) {
      const double v = objective.item();
      check_finite(v, t + 1);
      progress.fn(t + 1, v);
    }
  }
  if (objective.defined()) check_finite(objective.item(), o.iters);
  Tensor found = x.detach();
  SL_CHECK(kern::all_finite(found), ValueError, "rMLE reconstruction holds NaN or inf after ", o.iters,
           " iterations (learning rate ", o.lr, " too large? try a smaller --lr)");
  return box.clamp(found);
}

}  // namespace sl::inv
