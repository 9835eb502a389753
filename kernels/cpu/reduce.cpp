// Reductions. Sums run over fixed 4096-element chunks whose partials are added in chunk order, so the
// result is the same whatever the thread count. Float sums accumulate in double.
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace sl::cpu {

void sum(const Tensor& x, Tensor& out) {
  dispatch_float(x, "sum", [&](auto t) {
    using T = decltype(t);
    const T* p = x.data<T>();
    out.data<T>()[0] = T(chunked_sum(x.numel(), [p](int64_t i) { return double(p[i]); }));
  });
}

void fill_from_scalar(const Tensor& s, double factor, Tensor& out) {
  dispatch_float(out, "fill_from_scalar", [&](auto t) {
    using T = decltype(t);
    T v = T(double(s.data<T>()[0]) * factor);
    T* p = out.data<T>();
    int64_t n = out.numel();
#pragma omp parallel for num_threads(region_threads()) if (n > kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = v;
  });
}

void mean_sq_forward(const Tensor& x, Tensor& out) {
  dispatch_float(x, "mean_sq", [&](auto t) {
    using T = decltype(t);
    const T* p = x.data<T>();
    int64_t n = x.numel();
    double s = chunked_sum(n, [p](int64_t i) { return double(p[i]) * double(p[i]); });
    out.data<T>()[0] = T(n ? s / double(n) : 0.0);
  });
}

void mean_sq_backward(const Tensor& x, const Tensor& gout, Tensor& gx) {
  dispatch_float(x, "mean_sq_backward", [&](auto t) {
    using T = decltype(t);
    const T* p = x.data<T>();
    T* g = gx.data<T>();
    int64_t n = x.numel();
    T k = T(2.0 * double(gout.data<T>()[0]) / double(n));
#pragma omp parallel for num_threads(region_threads()) if (n > kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) g[i] = k * p[i];
  });
}

void argmax_rows(const Tensor& x, Tensor& idx) {
  dispatch_float(x, "argmax_rows", [&](auto t) {
    using T = decltype(t);
    const T* p = x.data<T>();
    int32_t* o = idx.data<int32_t>();
    int64_t n = x.size(0), c = x.size(1);
    for (int64_t r = 0; r < n; ++r) {
      int64_t best = 0;
      for (int64_t j = 1; j < c; ++j)
        if (p[r * c + j] > p[r * c + best]) best = j;
      o[r] = int32_t(best);
    }
  });
}

}  // namespace sl::cpu
