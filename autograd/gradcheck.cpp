#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/node.h"
#include "autograd/ops.h"

namespace sl {

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                          double eps, double atol, double rtol) {
  for (auto& t : inputs) {
    SL_CHECK(t.device().is_cpu(), ValueError, "gradcheck runs on the CPU, got ", t.str());
    SL_CHECK(t.dtype() != DType::f32, ValueError, "gradcheck needs float64 inputs, got ", t.str());
    t = t.clone();
    if (t.dtype() == DType::f64) t.requires_grad_(true);
  }
  // Reduce a non-scalar output with fixed weights so that every output element matters.
  Tensor weights;
  auto loss_of = [&](const std::vector<Tensor>& in) {
    Tensor out = f(in);
    if (out.numel() == 1) return reshape(out, Shape{});
    if (!weights.defined()) {
      weights = Tensor::empty(out.shape(), DType::f64);
      kern::fill_normal(weights, 0x5EED, 0, 0.0, 1.0);
    }
    return sum(mul(out, weights));
  };

  Tensor loss = loss_of(inputs);
  loss.backward();
  GradcheckResult res;
  NoGradGuard ng;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor& x = inputs[i];
    if (x.dtype() != DType::f64) continue;
    Tensor analytic = x.grad();
    double* p = x.data<double>();
    for (int64_t j = 0; j < x.numel(); ++j) {
      double orig = p[j];
      p[j] = orig + eps;
      double lp = loss_of(inputs).item();
      p[j] = orig - eps;
      double lm = loss_of(inputs).item();
      p[j] = orig;
      double num = (lp - lm) / (2 * eps);
      double ana = analytic.defined() ? analytic.data<double>()[j] : 0.0;
      double err = std::fabs(ana - num);
      res.max_abs_err = std::max(res.max_abs_err, err);
      if (std::fabs(num) > 1e-12) res.max_rel_err = std::max(res.max_rel_err, err / std::fabs(num));
      if (!(err <= atol + rtol * std::fabs(num)) && res.ok) {
        res.ok = false;
        res.detail =
            str("input ", i, " ", x.shape().str(), " element ", j, ": autograd ", ana, ", finite difference ", num);
      }
    }
  }
  return res;
}

}  // namespace sl
