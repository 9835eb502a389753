// Op-harness cases for the elementwise ops, reductions, losses, softmax and TV, each against a naive
// float64 reference written here; plus the random fills and the autograd engine itself.
#include <catch2/catch.hpp>
#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tests/op_harness.h"

using namespace sl;
using namespace sl::test;

namespace {

// Naive references on float64 CPU tensors.
Tensor map_ref(const Tensor& a, double (*f)(double)) {
  auto v = a.to_vector();
  for (auto& x : v) x = f(x);
  return Tensor::from_vector(v, a.shape(), DType::f64);
}
Tensor zip_ref(const Tensor& a, const Tensor& b, double (*f)(double, double)) {
  auto va = a.to_vector(), vb = b.to_vector();
  for (size_t i = 0; i < va.size(); ++i) va[i] = f(va[i], vb[i]);
  return Tensor::from_vector(va, a.shape(), DType::f64);
}
Tensor scalar_ref(double v) { return Tensor::from_vector({v}, Shape{}, DType::f64); }

double tv_ref(const Tensor& x, double beta, double eps) {
  int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  double sh = 0, sw = 0, s = 0;
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b < c; ++b)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          double v = x.at({a, b, i, j});
          double dh = i + 1 < h ? x.at({a, b, i + 1, j}) - v : 0;
          double dw = j + 1 < w ? x.at({a, b, i, j + 1}) - v : 0;
          sh += dh * dh;
          sw += dw * dw;
          if (i + 1 < h && j + 1 < w) s += std::pow(dh * dh + dw * dw + eps, beta / 2);
        }
  if (beta == 2.0) return (sh / double(c * (h - 1) * w) + sw / double(c * h * (w - 1))) / double(n);
  return s / double(n);
}

}  // namespace

TEST_CASE("elementwise ops, reductions and losses pass the op harness", "[ops]") {
  Generator g(1234);
  std::vector<Shape> shapes = {Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 3, 4, 5}};
  std::vector<OpCase> cases;
  for (auto& s : shapes) {
    std::string sn = s.str();
    cases.push_back({"add " + sn,
                     {randn(s, g), randn(s, g)},
                     [](auto& in) { return add(in[0], in[1]); },
                     [](auto& in) { return zip_ref(in[0], in[1], [](double a, double b) { return a + b; }); }});
    cases.push_back({"sub " + sn,
                     {randn(s, g), randn(s, g)},
                     [](auto& in) { return sub(in[0], in[1]); },
                     [](auto& in) { return zip_ref(in[0], in[1], [](double a, double b) { return a - b; }); }});
    cases.push_back({"mul " + sn,
                     {randn(s, g), randn(s, g)},
                     [](auto& in) { return mul(in[0], in[1]); },
                     [](auto& in) { return zip_ref(in[0], in[1], [](double a, double b) { return a * b; }); }});
    cases.push_back({"scale " + sn,
                     {randn(s, g)},
                     [](auto& in) { return scale(in[0], -2.5); },
                     [](auto& in) { return map_ref(in[0], [](double a) { return -2.5 * a; }); }});
    cases.push_back({"add_scalar " + sn,
                     {randn(s, g)},
                     [](auto& in) { return add_scalar(in[0], 0.75); },
                     [](auto& in) { return map_ref(in[0], [](double a) { return a + 0.75; }); }});
    cases.push_back({"relu " + sn,
                     {randn(s, g)},
                     [](auto& in) { return relu(in[0]); },
                     [](auto& in) { return map_ref(in[0], [](double a) { return a > 0 ? a : 0.0; }); }});
    cases.push_back({"sigmoid " + sn,
                     {randn(s, g, 3.0)},
                     [](auto& in) { return sigmoid(in[0]); },
                     [](auto& in) { return map_ref(in[0], [](double a) { return 1 / (1 + std::exp(-a)); }); }});
    cases.push_back({"sum " + sn,
                     {randn(s, g)},
                     [](auto& in) { return sum(in[0]); },
                     [](auto& in) {
                       double t = 0;
                       for (double v : in[0].to_vector()) t += v;
                       return scalar_ref(t);
                     }});
    cases.push_back({"mean " + sn,
                     {randn(s, g)},
                     [](auto& in) { return mean(in[0]); },
                     [](auto& in) {
                       double t = 0;
                       for (double v : in[0].to_vector()) t += v;
                       return scalar_ref(t / double(in[0].numel()));
                     }});
    cases.push_back({"mean_sq " + sn,
                     {randn(s, g)},
                     [](auto& in) { return mean_sq(in[0]); },
                     [](auto& in) {
                       double t = 0;
                       for (double v : in[0].to_vector()) t += v * v;
                       return scalar_ref(t / double(in[0].numel()));
                     }});
    cases.push_back({"mse_loss " + sn,
                     {randn(s, g), randn(s, g)},
                     [](auto& in) { return mse_loss(in[0], in[1]); },
                     [](auto& in) {
                       auto a = in[0].to_vector(), b = in[1].to_vector();
                       double t = 0;
                       for (size_t i = 0; i < a.size(); ++i) t += (a[i] - b[i]) * (a[i] - b[i]);
                       return scalar_ref(t / double(a.size()));
                     }});
    // the weight argument (a loss scale folded into the kernels)
    cases.push_back({"mse_loss weight -2.5 " + sn,
                     {randn(s, g), randn(s, g)},
                     [](auto& in) { return mse_loss(in[0], in[1], -2.5); },
                     [](auto& in) {
                       auto a = in[0].to_vector(), b = in[1].to_vector();
                       double t = 0;
                       for (size_t i = 0; i < a.size(); ++i) t += (a[i] - b[i]) * (a[i] - b[i]);
                       return scalar_ref(-2.5 * t / double(a.size()));
                     }});
    cases.push_back({"reshape+flatten " + sn,
                     {randn(s, g)},
                     [](auto& in) {
                       return flatten(reshape(in[0], Shape{-1, 1}), 0);
                     },
                     [](auto& in) { return in[0].reshape(Shape{-1}); }});
  }
  for (int64_t n : {1, 3})
    for (int64_t c : {2, 10}) {
      std::string nm = std::to_string(n) + "x" + std::to_string(c);
      cases.push_back({"cross_entropy " + nm,
                       {randn(Shape{n, c}, g, 2.0), rand_labels(n, int(c), g)},
                       [](auto& in) { return cross_entropy(in[0], in[1]); },
                       [](auto& in) {
                         int64_t rows = in[0].size(0), cols = in[0].size(1);
                         double t = 0;
                         for (int64_t r = 0; r < rows; ++r) {
                           double se = 0;
                           for (int64_t j = 0; j < cols; ++j) se += std::exp(in[0].at({r, j}));
                           t += std::log(se) - in[0].at({r, int64_t(in[1].at({r}))});
                         }
                         return scalar_ref(t / double(rows));
                       }});
      cases.push_back({"softmax " + nm,
                       {randn(Shape{n, c}, g, 2.0)},
                       [](auto& in) { return softmax(in[0]); },
                       [](auto& in) {
                         int64_t rows = in[0].size(0), cols = in[0].size(1);
                         std::vector<double> out;
                         for (int64_t r = 0; r < rows; ++r) {
                           double se = 0;
                           for (int64_t j = 0; j < cols; ++j) se += std::exp(in[0].at({r, j}));
                           for (int64_t j = 0; j < cols; ++j) out.push_back(std::exp(in[0].at({r, j})) / se);
                         }
                         return Tensor::from_vector(out, in[0].shape(), DType::f64);
                       }});
    }
  for (Shape s : {Shape{1, 1, 2, 2}, Shape{2, 3, 5, 4}, Shape{1, 1, 7, 9}})
    for (double beta : {2.0, 1.0, 1.5}) {
      cases.push_back({"tv_loss beta " + std::to_string(beta) + " " + s.str(),
                       {randn(s, g)},
                       [beta](auto& in) { return tv_loss(in[0], beta, 1e-3); },
                       [beta](auto& in) { return scalar_ref(tv_ref(in[0], beta, 1e-3)); }});
      cases.push_back({"tv_loss weight 7 beta " + std::to_string(beta) + " " + s.str(),
                       {randn(s, g)},
                       [beta](auto& in) { return tv_loss(in[0], beta, 1e-3, 7.0); },
                       [beta](auto& in) { return scalar_ref(7.0 * tv_ref(in[0], beta, 1e-3)); }});
    }
  // Random ops: each call draws from a fresh generator with a fixed seed, so every run of the op (float64,
  // float32, finite differences, other backends) sees the same mask / noise.
  for (Shape s : {Shape{1, 5}, Shape{2, 3, 4, 5}}) {
    for (bool rescale : {false, true})
      cases.push_back({"dropout r0.3 " + std::string(rescale ? "rescaled " : "") + s.str(),
                       {randn(s, g)},
                       [rescale](auto& in) {
                         Generator d(99);
                         return dropout(in[0], 0.3, rescale, d);
                       },
                       [rescale](auto& in) {
                         auto v = in[0].to_vector();
                         for (size_t i = 0; i < v.size(); ++i)
                           v[i] = rng_uniform(99, i) < 0.3 ? 0.0 : (rescale ? v[i] / 0.7 : v[i]);
                         return Tensor::from_vector(v, in[0].shape(), DType::f64);
                       }});
    cases.push_back({"gaussian noise " + s.str(),
                     {randn(s, g)},
                     [](auto& in) {
                       Generator d(5);
                       return add_gaussian_noise(in[0], 0.7, d);
                     },
                     [](auto& in) {
                       auto v = in[0].to_vector();
                       for (size_t i = 0; i < v.size(); ++i) v[i] += 0.7 * rng_normal(5, i);
                       return Tensor::from_vector(v, in[0].shape(), DType::f64);
                     }});
    cases.push_back({"laplace noise " + s.str(),
                     {randn(s, g)},
                     [](auto& in) {
                       Generator d(6);
                       return add_laplace_noise(in[0], 0.4, d);
                     },
                     [](auto& in) {
                       auto v = in[0].to_vector();
                       for (size_t i = 0; i < v.size(); ++i) v[i] += 0.4 * rng_laplace(6, i);
                       return Tensor::from_vector(v, in[0].shape(), DType::f64);
                     }});
  }
  for (auto& c : cases) run_op_case(c);
}

TEST_CASE("cross entropy is stable for huge logits", "[ops]") {
  Tensor z = Tensor::from_vector(std::vector<double>{1000, -1000, 0, 500}, Shape{2, 2});
  Tensor y = Tensor::from_labels({1, 0});  // losses 2000 and 500
  double l = cross_entropy(z, y).item();
  CHECK(std::isfinite(l));
  CHECK(l == Approx(1250.0).epsilon(1e-9));
}

TEST_CASE("cross entropy rejects labels out of range and mismatched shapes", "[ops]") {
  Tensor z = Tensor::zeros(Shape{2, 3});
  CHECK_THROWS_WITH(cross_entropy(z, Tensor::from_labels({0, 3})), Catch::Contains("label 3"));
  CHECK_THROWS_AS(cross_entropy(z, Tensor::from_labels({0})), ShapeError);
  CHECK_THROWS_AS(add(Tensor::zeros(Shape{2}), Tensor::zeros(Shape{3})), ShapeError);
  CHECK_THROWS_AS(add(Tensor::zeros(Shape{2}), Tensor::zeros(Shape{2}, DType::f64)), ValueError);
}

TEST_CASE("random fills are reproducible, thread-count independent and have the right moments", "[ops][rng]") {
  Generator g1(42), g2(42);
  Tensor a = Tensor::empty(Shape{100000});
  Tensor b = Tensor::empty(Shape{100000});
  kern::fill_normal(a, g1.seed(), g1.take(100000), 0, 1);
  kern::fill_normal(b, g2.seed(), g2.take(100000), 0, 1);
  CHECK(rel_max_diff(a, b) == 0.0);
  // Element i depends only on (seed, offset + i): a shifted draw lines up with the original.
  Tensor c = Tensor::empty(Shape{10});
  kern::fill_normal(c, 42, 5, 0, 1);
  for (int i = 0; i < 10; ++i) CHECK(c.at({i}) == a.at({i + 5}));
  auto v = a.to_vector();
  double m = 0, s2 = 0;
  for (double x : v) {
    m += x;
    s2 += x * x;
  }
  m /= double(v.size());
  s2 = s2 / double(v.size()) - m * m;
  CHECK(std::fabs(m) < 0.02);
  CHECK(std::fabs(s2 - 1) < 0.02);
  // Laplace(0, b): mean |x| = b; variance 2 b^2.
  kern::fill_laplace(a, 7, 0, 0, 0.5);
  double ma = 0;
  for (double x : a.to_vector()) ma += std::fabs(x);
  CHECK(std::fabs(ma / 100000 - 0.5) < 0.01);
  // Dropout mask: share of zeros ~ rate; kept values 1 or 1/(1-r).
  kern::dropout_mask(a, 9, 0, 0.3, true);
  double zeros = 0;
  bool kept_scaled = true;
  for (double x : a.to_vector()) {
    if (x == 0)
      zeros += 1;
    else
      kept_scaled = kept_scaled && std::fabs(x - 1 / 0.7) < 1e-6;
  }
  CHECK(kept_scaled);
  CHECK(std::fabs(zeros / 100000 - 0.3) < 0.01);
  kern::dropout_mask(a, 9, 0, 0.3, false);
  bool binary = true;
  for (double x : a.to_vector()) binary = binary && (x == 0 || x == 1);
  CHECK(binary);
}

TEST_CASE("dropout and noise ops: masks reproducible, gradient passes through the mask", "[ops]") {
  Generator g(5);
  Tensor x = test::randn(Shape{4, 6}, g).requires_grad_();
  Generator d1(11), d2(11);
  Tensor y1 = dropout(x, 0.5, false, d1);
  Tensor y2 = dropout(x, 0.5, false, d2);
  CHECK(rel_max_diff(y1, y2) == 0.0);
  sum(y1).backward();
  auto gx = x.grad().to_vector(), yv = y1.to_vector(), xv = x.to_vector();
  for (size_t i = 0; i < gx.size(); ++i) CHECK(gx[i] == (yv[i] == 0 && xv[i] != 0 ? 0.0 : 1.0));
  Generator n1(3);
  Tensor z = add_gaussian_noise(x.detach(), 0.0, n1);
  CHECK(rel_max_diff(z, x) == 0.0);
  CHECK_THROWS_AS(dropout(x, 1.5, false, n1), ValueError);
  CHECK_THROWS_AS(add_laplace_noise(x, -1, n1), ValueError);
}

TEST_CASE("gradcheck catches a wrong backward", "[autograd]") {
  // An op whose recorded backward is off by a factor 2: the checker must say so.
  auto broken = [](const std::vector<Tensor>& in) {
    Tensor y = in[0].detach().clone();
    kern::scale(in[0], 3.0, y);
    return record("broken", {in[0]}, y, [](const Tensor& g) {
      Tensor d = Tensor::empty(g.shape(), g.dtype());
      kern::scale(g, 6.0, d);
      return std::vector<Tensor>{d};
    });
  };
  Generator g(3);
  auto r = gradcheck(broken, {test::randn(Shape{4}, g)});
  CHECK_FALSE(r.ok);
  CHECK_THAT(r.detail, Catch::Contains("element"));
  auto good = gradcheck([](const std::vector<Tensor>& in) { return scale(in[0], 3.0); }, {test::randn(Shape{4}, g)});
  CHECK(good.ok);
}

TEST_CASE("autograd: shared subgraphs accumulate, inputs get gradients, graphs are freed", "[autograd]") {
  // y = (x*x + x) * x shares x three times: dy/dx = 3x^2 + 2x.
  Tensor x = Tensor::from_vector(std::vector<double>{1.0, -2.0, 0.5}, Shape{3}, DType::f64).requires_grad_();
  Tensor h = add(mul(x, x), x);
  Tensor y = sum(mul(h, x));
  y.backward();
  auto g = x.grad().to_vector();
  CHECK(g[0] == Approx(5.0));
  CHECK(g[1] == Approx(8.0));
  CHECK(g[2] == Approx(1.75));
  // A second backward through a freed graph is a clear error, not a crash.
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("second time"));
  // Gradients accumulate over backward calls.
  Tensor y2 = sum(scale(x, 2.0));
  y2.backward();
  CHECK(x.grad().to_vector()[0] == Approx(7.0));
  // A diamond: z = a + a where a = 3x -> dz/dx = 6.
  x.zero_grad();
  Tensor a = scale(x, 3.0);
  sum(add(a, a)).backward();
  CHECK(x.grad().to_vector()[1] == Approx(6.0));
  // No-grad scope records nothing.
  {
    NoGradGuard ng;
    Tensor q = mul(x, x);
    CHECK_FALSE(q.requires_grad());
    CHECK(q.is_leaf());
  }
  // retain_graph keeps it.
  x.zero_grad();
  Tensor r = sum(mul(x, x));
  r.backward(Tensor(), true);
  r.backward();
  CHECK(x.grad().to_vector()[0] == Approx(4.0));
}

TEST_CASE("tensor basics: views share storage, clone does not, errors name the problem", "[tensor]") {
  Tensor t = Tensor::from_vector(std::vector<double>{0, 1, 2, 3, 4, 5}, Shape{3, 2}, DType::f64);
  Tensor r = t.reshape(Shape{2, -1});
  CHECK(r.shape() == Shape{2, 3});
  CHECK(r.raw_data() == t.raw_data());
  Tensor s = t.slice(1, 3);
  CHECK(s.shape() == Shape{2, 2});
  CHECK(s.at({0, 0}) == 2.0);
  CHECK(s.is_contiguous());
  Tensor c = t.clone();
  CHECK(c.raw_data() != t.raw_data());
  CHECK(reinterpret_cast<uintptr_t>(t.raw_data()) % 64 == 0);
  CHECK_THROWS_AS(t.reshape(Shape{4, 2}), ShapeError);
  CHECK_THROWS_AS(t.slice(2, 4), ShapeError);
  CHECK_THROWS_AS(t.data<float>(), ValueError);
  Tensor f = t.to(DType::f32);
  CHECK(f.dtype() == DType::f32);
  CHECK(f.at({2, 1}) == 5.0);
  CHECK(Tensor::zeros(Shape{2, 2}).to_vector() == std::vector<double>(4, 0.0));
  if (!cuda_available()) {
    CHECK_THROWS_AS(t.to(Device::cuda()), DeviceError);
    WARN("CUDA not available: device tensor tests skipped");
  }
  CHECK_THROWS_AS(Device::parse("tpu"), ValueError);
}
