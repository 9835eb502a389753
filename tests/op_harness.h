// The op harness: one description per op case (inputs, the op, a naive float64 reference), run the same
// way for every op — forward against the reference, backward by finite differences in float64, and on
// every other available backend (CUDA) forward and backward against the CPU. New op cases are one entry.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace sl::test {

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct OpCase {
  std::string name;            // e.g. "conv2d k5 s2 p1 N1"
  std::vector<Tensor> inputs;  // float64 CPU tensors (int32 for labels)
  OpFn op;                     // the op under test, through the autograd API
  OpFn reference;              // naive float64 forward on the CPU (loops), independent of the kernels
  double ref_tol = 1e-9;       // forward vs reference, absolute + relative
  bool gradcheck = true;       // finite-difference check of every float64 input
  double grad_atol = 1e-5, grad_rtol = 1e-4;
  double device_tol = 1e-4;  // float32 on another backend vs float32 on the CPU (relative to max |value|)
};

// Runs all checks of one case; reports failures through Catch2 (CHECK), naming the case.
void run_op_case(const OpCase& c);

// Random float64 CPU tensor with N(0, 1) (or U[lo, hi)) entries from a fixed-seed generator.
Tensor randn(const Shape& s, Generator& g, double scale = 1.0);
Tensor rand_uniform(const Shape& s, Generator& g, double lo, double hi);
Tensor rand_labels(int64_t n, int classes, Generator& g);

// True when a GPU can run a case; otherwise false after a visible Catch2 warning naming `what`.
bool gpu_ready(const char* what);

// Devices other than the CPU that this machine can run (CUDA when present); prints once when skipped.
std::vector<Device> other_backends();

// max |a - b| / max(1, max |b|)
double rel_max_diff(const Tensor& a, const Tensor& b);

}  // namespace sl::test
