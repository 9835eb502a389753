// Small helpers shared by the autograd op files (not part of the public API).
#pragma once
#include "autograd/node.h"
#include "kernels/dispatch.h"
#include "tensor/tensor.h"

namespace sl::detail {

// Throws ValueError unless t is a defined float32/float64 tensor.
inline void check_float(const Tensor& t, const char* op, const char* what = "input") {
  SL_CHECK(t.defined(), ValueError, op, ": ", what, " is undefined");
  SL_CHECK(t.dtype() != DType::i32, ValueError, op, ": ", what, " must be float32 or float64, got int32");
}
// Throws ShapeError/ValueError unless a and b have the same shape, dtype and device.
inline void check_pair(const Tensor& a, const Tensor& b, const char* op) {
  check_float(a, op, "first input");
  check_float(b, op, "second input");
  SL_CHECK(a.shape() == b.shape(), ShapeError, op, ": shapes differ, ", a.shape().str(), " vs ", b.shape().str());
  check_same(a, b, op);
}
inline Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }
inline Tensor scalar_like(const Tensor& t) { return Tensor::empty(Shape{}, t.dtype(), t.device()); }

}  // namespace sl::detail
