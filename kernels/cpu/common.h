// Helpers shared by the CPU kernel files: dtype dispatch and the OpenMP threshold.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace sl::cpu {

// Below this many elements a loop runs on one thread (thread start-up costs more than it saves).
constexpr int64_t kParallelGrain = 1 << 15;

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
