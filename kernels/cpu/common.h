// Helpers shared by the CPU kernel files: dtype dispatch, the OpenMP threshold and a deterministic sum.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/threads.h"
#include "tensor/tensor.h"

namespace sl::cpu {

// Below this many elements a loop runs on one thread (thread start-up costs more than it saves).
constexpr int64_t kParallelGrain = 1 << 15;

// Sum of f(i) for i in [0, n) in double, over fixed 4096-element chunks whose partials are added in chunk order:
// the same bits whatever the thread count.
template <class F>
double chunked_sum(int64_t n, F f) {
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += f(i);
    return s;
  }
  std::vector<double> part(size_t(chunks), 0.0);
#pragma omp parallel for num_threads(region_threads()) if (n > kParallelGrain) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    double s = 0;
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) s += f(i);
    part[size_t(c)] = s;
  }
  double s = 0;
  for (double p : part) s += p;
  return s;
}

// Calls f(T{}) with T = float or double according to t's dtype; int32 is an error.
template <class F>
decltype(auto) dispatch_float(const Tensor& t, const char* op, F&& f) {
  switch (t.dtype()) {
    case DType::f32:
      return f(float{});
    case DType::f64:
      return f(double{});
    default:
      throw ValueError(str(op, ": expects float32 or float64, got ", dtype_name(t.dtype())));
  }
}

}  // namespace sl::cpu
