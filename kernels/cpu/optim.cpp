// Parameter updates (formulas in kernels/backend_api.inc; they follow PyTorch's SGD and Adam).
#include <cmath>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace sl::cpu {

void sgd_step(Tensor& param, const Tensor& grad, Tensor& buf, const SgdArgs& a, bool first_step) {
  dispatch_float(param, "sgd_step", [&](auto t) {
    using T = decltype(t);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* b = a.momentum != 0 ? buf.data<T>() : nullptr;
    int64_t n = param.numel();
#pragma omp parallel for num_threads(region_threads()) if (n > kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double gi = double(g[i]) + a.weight_decay * double(p[i]);
      if (b) {
        double bi = first_step ? gi : a.momentum * double(b[i]) + (1 - a.dampening) * gi;
        b[i] = T(bi);
        gi = a.nesterov ? gi + a.momentum * bi : bi;
      }
      p[i] = T(double(p[i]) - a.lr * gi);
    }
  });
}

void adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& vmax, const AdamArgs& a, int64_t step) {
  dispatch_float(param, "adam_step", [&](auto t) {
    using T = decltype(t);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* pm = m.data<T>();
    T* pv = v.data<T>();
    T* pvm = a.amsgrad ? vmax.data<T>() : nullptr;
    double bc1 = 1 - std::pow(a.beta1, double(step)), bc2 = 1 - std::pow(a.beta2, double(step));
    double step_size = a.lr / bc1, bc2_sqrt = std::sqrt(bc2);
    int64_t n = param.numel();
#pragma omp parallel for num_threads(region_threads()) if (n > kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double gi = double(g[i]) + a.weight_decay * double(p[i]);
      double mi = a.beta1 * double(pm[i]) + (1 - a.beta1) * gi;
      double vi = a.beta2 * double(pv[i]) + (1 - a.beta2) * gi * gi;
      pm[i] = T(mi);
      pv[i] = T(vi);
      double vh = vi;
      if (pvm) {
        vh = std::max(double(pvm[i]), vi);
        pvm[i] = T(vh);
      }
      p[i] = T(double(p[i]) - step_size * mi / (std::sqrt(vh) / bc2_sqrt + a.eps));
    }
  });
}

}  // namespace sl::cpu
