// Finite-difference gradient check in float64: compares the autograd gradient of a scalar function with
// central differences, for every element of every input.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace sl {

struct GradcheckResult {
  bool ok = true;
  double max_abs_err = 0, max_rel_err = 0;
  std::string detail;  // first offending input/element when !ok
};

// f maps the inputs (float64, requires_grad set by gradcheck) to a tensor; a non-scalar output is reduced
// with fixed random weights so every output element is checked. Tolerance: |a - n| <= atol + rtol |n|.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                          double eps = 1e-6, double atol = 1e-5, double rtol = 1e-4);

}  // namespace sl
