#include "tests/op_harness.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops.h"

namespace sl::test {

Tensor randn(const Shape& s, Generator& g, double scale) {
  Tensor t = Tensor::empty(s, DType::f64);
  kern::fill_normal(t, g.seed(), g.take(uint64_t(t.numel())), 0.0, scale);
  return t;
}

Tensor rand_uniform(const Shape& s, Generator& g, double lo, double hi) {
  Tensor t = Tensor::empty(s, DType::f64);
  kern::fill_uniform(t, g.seed(), g.take(uint64_t(t.numel())), lo, hi);
  return t;
}

Tensor rand_labels(int64_t n, int classes, Generator& g) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = int32_t(g.below(uint64_t(classes)));
  return Tensor::from_labels(v);
}

bool gpu_ready(const char* what) {
#ifdef SPLITLEAK_WITH_CUDA
  if (cuda_available()) return true;
  WARN("no GPU: " << what << " skipped (cudaGetDeviceCount found no usable device)");
#else
  WARN("no GPU: " << what << " skipped (splitleak built without CUDA)");
#endif
  return false;
}

std::vector<Device> other_backends() {
  static bool warned = false;
  if (cuda_available()) return {Device::cuda(0)};
  if (!warned) {
    std::fprintf(stderr, "[op harness] SKIPPED on CUDA: no GPU available here, only the CPU backend is checked\n");
    warned = true;
  }
  return {};
}

double rel_max_diff(const Tensor& a, const Tensor& b) {
  auto va = a.to_vector(), vb = b.to_vector();
  if (va.size() != vb.size()) return INFINITY;
  double m = 1.0, d = 0.0;
  for (size_t i = 0; i < va.size(); ++i) {
    m = std::max(m, std::fabs(vb[i]));
    double e = std::fabs(va[i] - vb[i]);
    if (std::isnan(e)) return INFINITY;
    d = std::max(d, e);
  }
  return d / m;
}

namespace {

// Runs op on copies of `inputs` converted to dtype t on device d; returns {output, grads of float inputs}
// after a backward pass seeded with fixed weights.
std::pair<Tensor, std::vector<Tensor>> run_with_grads(const OpCase& c, DType t, Device d) {
  std::vector<Tensor> ins;
  for (auto& x : c.inputs) {
    Tensor y = x.dtype() == DType::i32 ? x.clone() : x.to(t);
    y = y.to(d).clone();
    if (y.dtype() != DType::i32) y.requires_grad_(true);
    ins.push_back(y);
  }
  Tensor out = c.op(ins);
  std::vector<Tensor> grads;
  if (out.requires_grad()) {
    Tensor w = Tensor::empty(out.shape(), DType::f64);
    kern::fill_normal(w, 77, 0, 0.0, 1.0);
    w = w.to(t).to(d);
    sum(mul(out, w)).backward();
  }
  for (auto& x : ins)
    if (x.dtype() != DType::i32) grads.push_back(x.grad().defined() ? x.grad().to(Device::cpu()) : Tensor());
  return {out.detach().to(Device::cpu()), grads};
}

}  // namespace

void run_op_case(const OpCase& c) {
  INFO("op case: " << c.name);
  // 1. forward in float64 against the naive reference
  Tensor out64;
  {
    NoGradGuard ng;
    out64 = c.op(c.inputs);
    if (c.reference) {
      Tensor ref = c.reference(c.inputs);
      REQUIRE(out64.shape() == ref.shape());
      CHECK(rel_max_diff(out64, ref) <= c.ref_tol);
    }
  }
  // 2. backward by finite differences in float64
  if (c.gradcheck) {
    auto r = gradcheck(c.op, c.inputs, 1e-6, c.grad_atol, c.grad_rtol);
    INFO("gradcheck: " << r.detail << " (max abs err " << r.max_abs_err << ")");
    CHECK(r.ok);
  }
  // 3. the float32 path on the CPU against float64 (forward and backward)
  auto [out32, g32] = run_with_grads(c, DType::f32, Device::cpu());
  auto [o64, g64] = run_with_grads(c, DType::f64, Device::cpu());
  CHECK(rel_max_diff(out32, o64) <= c.device_tol * 10);
  for (size_t i = 0; i < g32.size(); ++i) {
    if (!g64[i].defined()) continue;
    INFO("float32 gradient of input " << i);
    REQUIRE(g32[i].defined());
    CHECK(rel_max_diff(g32[i], g64[i]) <= c.device_tol * 10);
  }
  // 4. every other backend against the CPU, float32
  for (Device d : other_backends()) {
    INFO("backend " << d.str());
    auto [od, gd] = run_with_grads(c, DType::f32, d);
    CHECK(rel_max_diff(od, out32) <= c.device_tol);
    for (size_t i = 0; i < gd.size(); ++i) {
      if (!g32[i].defined()) continue;
      INFO("gradient of input " << i);
      REQUIRE(gd[i].defined());
      CHECK(rel_max_diff(gd[i], g32[i]) <= c.device_tol);
    }
  }
}

}  // namespace sl::test
