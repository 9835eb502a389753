// Layer ops (linear, conv2d, conv_transpose2d, max_pool2d) through the op harness, each against a naive
// float64 loop written here; the raw GEMM against a triple loop; the conv kernels at sizes that exercise
// column blocking and batch threading; and the errors the layer ops raise.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "kernels/cpu/gemm.h"
#include "kernels/dispatch.h"
#include "kernels/winograd_f43.h"
#include "tests/op_harness.h"

using namespace sl;
using namespace sl::test;

namespace {

Tensor arg(const std::vector<Tensor>& in, size_t i) { return i < in.size() ? in[i] : Tensor(); }

// ---- naive references (float64, plain loops over to_vector() copies) -------------------------------------
Tensor linear_ref(const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  auto vx = x.to_vector(), vw = w.to_vector();
  std::vector<double> vb = b.defined() ? b.to_vector() : std::vector<double>(size_t(out), 0.0);
  std::vector<double> y(size_t(n * out));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = vb[size_t(o)];
      for (int64_t k = 0; k < in; ++k) s += vx[size_t(i * in + k)] * vw[size_t(o * in + k)];
      y[size_t(i * out + o)] = s;
    }
  return Tensor::from_vector(y, Shape{n, out}, DType::f64);
}

Tensor conv2d_ref(const Tensor& x, const Tensor& w, const Tensor& b, int s, int p) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), CO = w.size(0), k = w.size(2);
  const int64_t OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
  auto vx = x.to_vector(), vw = w.to_vector();
  std::vector<double> vb = b.defined() ? b.to_vector() : std::vector<double>(size_t(CO), 0.0);
  std::vector<double> y(size_t(N * CO * OH * OW));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t co = 0; co < CO; ++co)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = vb[size_t(co)];
          for (int64_t ci = 0; ci < C; ++ci)
            for (int64_t kh = 0; kh < k; ++kh)
              for (int64_t kw = 0; kw < k; ++kw) {
                const int64_t ih = oh * s - p + kh, iw = ow * s - p + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += vx[size_t(((n * C + ci) * H + ih) * W + iw)] * vw[size_t(((co * C + ci) * k + kh) * k + kw)];
              }
          y[size_t(((n * CO + co) * OH + oh) * OW + ow)] = acc;
        }
  return Tensor::from_vector(y, Shape{N, CO, OH, OW}, DType::f64);
}

// Scatter form: every input pixel adds its weighted kernel into the output.
Tensor conv_transpose2d_ref(const Tensor& x, const Tensor& w, const Tensor& b, int s, int p, int op) {
  const int64_t N = x.size(0), CI = x.size(1), H = x.size(2), W = x.size(3), CO = w.size(1), k = w.size(2);
  const int64_t OH = (H - 1) * s - 2 * p + k + op, OW = (W - 1) * s - 2 * p + k + op;
  auto vx = x.to_vector(), vw = w.to_vector();
  std::vector<double> y(size_t(N * CO * OH * OW), 0.0);
  if (b.defined()) {
    auto vb = b.to_vector();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t co = 0; co < CO; ++co)
        for (int64_t q = 0; q < OH * OW; ++q) y[size_t((n * CO + co) * OH * OW + q)] = vb[size_t(co)];
  }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t ci = 0; ci < CI; ++ci)
      for (int64_t ih = 0; ih < H; ++ih)
        for (int64_t iw = 0; iw < W; ++iw) {
          const double v = vx[size_t(((n * CI + ci) * H + ih) * W + iw)];
          for (int64_t co = 0; co < CO; ++co)
            for (int64_t kh = 0; kh < k; ++kh)
              for (int64_t kw = 0; kw < k; ++kw) {
                const int64_t oh = ih * s - p + kh, ow = iw * s - p + kw;
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                y[size_t(((n * CO + co) * OH + oh) * OW + ow)] += v * vw[size_t(((ci * CO + co) * k + kh) * k + kw)];
              }
        }
  return Tensor::from_vector(y, Shape{N, CO, OH, OW}, DType::f64);
}

Tensor max_pool2d_ref(const Tensor& x, int k, int s) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = (H - k) / s + 1, OW = (W - k) / s + 1;
  auto vx = x.to_vector();
  std::vector<double> y(size_t(N * C * OH * OW));
  for (int64_t pl = 0; pl < N * C; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double m = -std::numeric_limits<double>::infinity();
        for (int kh = 0; kh < k; ++kh)
          for (int kw = 0; kw < k; ++kw) m = std::max(m, vx[size_t((pl * H + oh * s + kh) * W + ow * s + kw)]);
        y[size_t((pl * OH + oh) * OW + ow)] = m;
      }
  return Tensor::from_vector(y, Shape{N, C, OH, OW}, DType::f64);
}

// max(v, 0) elementwise (the reference of the fused ReLU epilogues)
Tensor relu_ref(const Tensor& t) {
  auto v = t.to_vector();
  for (double& e : v) e = e > 0 ? e : 0;
  return Tensor::from_vector(v, t.shape(), DType::f64);
}

// Random float32 tensor (via the float64 generator).
Tensor randn32(const Shape& s, Generator& g) { return randn(s, g).to(DType::f32); }

}  // namespace

TEST_CASE("linear passes the op harness", "[layers]") {
  Generator g(101);
  std::vector<OpCase> cases;
  cases.push_back({"linear N1 5->3 bias",
                   {randn({1, 5}, g), randn({3, 5}, g), randn({3}, g)},
                   [](auto& in) { return linear(in[0], in[1], in[2]); },
                   [](auto& in) { return linear_ref(in[0], in[1], in[2]); }});
  cases.push_back({"linear N7 13->11 no bias",
                   {randn({7, 13}, g), randn({11, 13}, g)},
                   [](auto& in) { return linear(in[0], in[1], Tensor()); },
                   [](auto& in) { return linear_ref(in[0], in[1], Tensor()); }});
  cases.push_back({"linear N9 37->19 bias",
                   {randn({9, 37}, g), randn({19, 37}, g), randn({19}, g)},
                   [](auto& in) { return linear(in[0], in[1], in[2]); },
                   [](auto& in) { return linear_ref(in[0], in[1], in[2]); }});
  // the fused ReLU epilogue (Sequential's Linear + ReLU)
  cases.push_back({"linear+relu N9 37->19 bias",
                   {randn({9, 37}, g), randn({19, 37}, g), randn({19}, g)},
                   [](auto& in) { return linear(in[0], in[1], in[2], true); },
                   [](auto& in) { return relu_ref(linear_ref(in[0], in[1], in[2])); }});
  cases.push_back({"linear+relu N3 6->5 no bias",
                   {randn({3, 6}, g), randn({5, 6}, g)},
                   [](auto& in) { return linear(in[0], in[1], Tensor(), true); },
                   [](auto& in) { return relu_ref(linear_ref(in[0], in[1], Tensor())); }});
  for (auto& c : cases) run_op_case(c);
}

TEST_CASE("conv2d passes the op harness", "[layers]") {
  Generator g(202);
  struct Cfg {
    int64_t n, cin, h, w, cout;
    int k, s, p;
    bool bias;
  };
  const std::vector<Cfg> cfgs = {
      {1, 2, 7, 9, 3, 3, 1, 1, true},     // batch 1, odd sizes, padding 1
      {2, 3, 9, 7, 4, 3, 2, 2, false},    // stride 2, padding 2, no bias
      {2, 3, 5, 6, 2, 1, 1, 0, true},     // 1x1 (pointwise path)
      {3, 2, 9, 8, 3, 5, 1, 0, true},     // k5, batch 3
      {2, 1, 10, 11, 2, 5, 2, 1, false},  // k5 stride 2 padding 1
      {1, 2, 4, 4, 2, 5, 1, 1, true},     // kernel wider than the input, fits the padding
  };
  for (const auto& c : cfgs) {
    std::vector<Tensor> in;
    in.reserve(3);
    in.push_back(randn({c.n, c.cin, c.h, c.w}, g));
    in.push_back(randn({c.cout, c.cin, c.k, c.k}, g));
    if (c.bias) in.push_back(randn({c.cout}, g));
    const int s = c.s, p = c.p;
    std::string name = "conv2d N" + std::to_string(c.n) + " " + std::to_string(c.cin) + "->" + std::to_string(c.cout) +
                       " " + std::to_string(c.h) + "x" + std::to_string(c.w) + " k" + std::to_string(c.k) + " s" +
                       std::to_string(s) + " p" + std::to_string(p) + (c.bias ? " bias" : " no bias");
    run_op_case({name, in, [s, p](auto& v) { return conv2d(v[0], v[1], arg(v, 2), s, p); },
                 [s, p](auto& v) { return conv2d_ref(v[0], v[1], arg(v, 2), s, p); }});
    // the fused ReLU epilogue (Sequential's Conv2d + ReLU)
    run_op_case({name + " +relu", in, [s, p](auto& v) { return conv2d(v[0], v[1], arg(v, 2), s, p, true); },
                 [s, p](auto& v) { return relu_ref(conv2d_ref(v[0], v[1], arg(v, 2), s, p)); }});
  }
}

TEST_CASE("conv_transpose2d passes the op harness", "[layers]") {
  Generator g(303);
  struct Cfg {
    int64_t n, cin, h, w, cout;
    int k, s, p, op;
    bool bias;
  };
  const std::vector<Cfg> cfgs = {
      {2, 3, 4, 5, 2, 3, 2, 1, 1, true},   // stride 2, padding 1, output padding 1
      {1, 2, 3, 3, 3, 3, 1, 0, 0, false},  // plain, no bias
      {2, 2, 3, 4, 2, 4, 2, 1, 0, true},   // even kernel, stride 2
      {1, 3, 3, 2, 2, 3, 3, 2, 2, false},  // stride 3, output padding 2
      {2, 3, 4, 3, 2, 1, 1, 0, 0, true},   // 1x1
  };
  for (const auto& c : cfgs) {
    std::vector<Tensor> in = {randn({c.n, c.cin, c.h, c.w}, g), randn({c.cin, c.cout, c.k, c.k}, g)};
    if (c.bias) in.push_back(randn({c.cout}, g));
    const int s = c.s, p = c.p, op = c.op;
    std::string name = "conv_transpose2d N" + std::to_string(c.n) + " " + std::to_string(c.cin) + "->" +
                       std::to_string(c.cout) + " k" + std::to_string(c.k) + " s" + std::to_string(s) + " p" +
                       std::to_string(p) + " op" + std::to_string(op) + (c.bias ? " bias" : " no bias");
    run_op_case({name, in, [s, p, op](auto& v) { return conv_transpose2d(v[0], v[1], arg(v, 2), s, p, op); },
                 [s, p, op](auto& v) { return conv_transpose2d_ref(v[0], v[1], arg(v, 2), s, p, op); }});
  }
}

TEST_CASE("max_pool2d passes the op harness", "[layers]") {
  Generator g(404);
  struct Cfg {
    int64_t n, c, h, w;
    int k, s;
  };
  const std::vector<Cfg> cfgs = {{2, 3, 6, 7, 2, 2}, {1, 2, 7, 9, 3, 2}, {2, 1, 5, 5, 2, 1}, {1, 2, 8, 8, 2, 2}};
  for (const auto& c : cfgs) {
    const int k = c.k, s = c.s;
    std::string name = "max_pool2d " + std::to_string(k) + "/" + std::to_string(s) + " " + std::to_string(c.h) + "x" +
                       std::to_string(c.w);
    run_op_case({name,
                 {randn({c.n, c.c, c.h, c.w}, g)},
                 [k, s](auto& v) { return max_pool2d(v[0], k, s); },
                 [k, s](auto& v) { return max_pool2d_ref(v[0], k, s); }});
  }
}

TEST_CASE("conv2d_relu_pool passes the op harness", "[layers]") {
  Generator g(505);
  struct Cfg {
    int64_t n, cin, h, w, cout;
    int k, s, p, pk, ps;
    bool bias;
  };
  const std::vector<Cfg> cfgs = {
      {2, 2, 8, 10, 3, 3, 1, 0, 2, 2, true},  // LeNet-like: 2x2 / 2 windows tile the conv output
      {1, 3, 9, 7, 2, 3, 1, 1, 2, 2, false},  // odd conv output (the last row / column in no window)
      {2, 1, 9, 9, 2, 3, 2, 1, 3, 2, true},   // stride-2 conv, overlapping 3x3 / 2 windows
  };
  for (const auto& c : cfgs) {
    std::vector<Tensor> in = {randn({c.n, c.cin, c.h, c.w}, g), randn({c.cout, c.cin, c.k, c.k}, g)};
    if (c.bias) in.push_back(randn({c.cout}, g));
    const int s = c.s, p = c.p, pk = c.pk, ps = c.ps;
    std::string name = "conv2d_relu_pool " + std::to_string(c.cin) + "->" + std::to_string(c.cout) + " " +
                       std::to_string(c.h) + "x" + std::to_string(c.w) + " k" + std::to_string(c.k) + " s" +
                       std::to_string(s) + " p" + std::to_string(p) + " pool " + std::to_string(pk) + "/" +
                       std::to_string(ps);
    run_op_case({name, in, [=](auto& v) { return conv2d_relu_pool(v[0], v[1], arg(v, 2), s, p, pk, ps); },
                 [=](auto& v) { return max_pool2d_ref(relu_ref(conv2d_ref(v[0], v[1], arg(v, 2), s, p)), pk, ps); }});
  }
}

TEST_CASE("max_pool2d indices: flat h*W+w in the plane, first of ties, NaN propagates", "[layers]") {
  // one plane 3x4, window 2, stride 2 -> 1x2
  Tensor x = Tensor::from_vector(std::vector<double>{1, 5, 2, 2,  //
                                                     5, 0, 2, 2,  //
                                                     9, 9, 9, 9},
                                 Shape{1, 1, 3, 4}, DType::f32);
  Tensor y = Tensor::empty({1, 1, 1, 2}), idx = Tensor::empty({1, 1, 1, 2}, DType::i32);
  kern::max_pool2d_forward(x, 2, 2, y, idx);
  CHECK(y.to_vector() == std::vector<double>{5, 2});
  CHECK(idx.to_vector() == std::vector<double>{1, 2});  // the first 5 (row 0) and the first 2
  x = Tensor::from_vector(std::vector<double>{1, NAN, 3, 4}, Shape{1, 1, 2, 2}, DType::f64);
  y = Tensor::empty({1, 1, 1, 1}, DType::f64);
  idx = Tensor::empty({1, 1, 1, 1}, DType::i32);
  kern::max_pool2d_forward(x, 2, 2, y, idx);
  CHECK(std::isnan(y.item()));
  CHECK(idx.item() == 1);

  // Wide rows (the vectorised 2x2 path) with many ties and a few NaNs, against the rule written out here;
  // the backward puts each gradient at its index and zeros elsewhere (odd width/height: last column/row zero).
  for (DType dt : {DType::f32, DType::f64}) {
    const int64_t H = 5, W = 37, OH = 2, OW = 18;
    std::vector<double> v(size_t(H * W));
    for (size_t i = 0; i < v.size(); ++i) v[i] = double((i * 7919) % 5);  // values 0..4: ties everywhere
    v[3] = v[40] = v[77] = NAN;
    Tensor xt = Tensor::from_vector(v, Shape{1, 1, H, W}, dt);
    Tensor yt = Tensor::empty({1, 1, OH, OW}, dt), it = Tensor::empty({1, 1, OH, OW}, DType::i32);
    kern::max_pool2d_forward(xt, 2, 2, yt, it);
    auto vy = yt.to_vector(), vi = it.to_vector();
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t bi = 2 * oh * W + 2 * ow;
        for (int64_t q : {bi + 1, bi + W, bi + W + 1}) {
          const double a = v[size_t(q)], b = v[size_t(bi)];
          if (a > b || (std::isnan(a) && !std::isnan(b))) bi = q;
        }
        INFO(dtype_name(dt) << " output " << oh << "," << ow);
        CHECK(vi[size_t(oh * OW + ow)] == double(bi));
        const double want = v[size_t(bi)], got = vy[size_t(oh * OW + ow)];
        CHECK((got == want || (std::isnan(got) && std::isnan(want))));
      }
    Tensor gyt = Tensor::from_vector(std::vector<double>(size_t(OH * OW), 1.0), Shape{1, 1, OH, OW}, dt);
    Tensor gxt = Tensor::full({1, 1, H, W}, 7.0, dt);
    kern::max_pool2d_backward(gyt, it, 2, 2, gxt);
    std::vector<double> want(size_t(H * W), 0.0);
    for (double i : vi) want[size_t(i)] += 1.0;
    CHECK(gxt.to_vector() == want);
  }
}

TEST_CASE("layer ops send gradients only where asked, and accept non-contiguous inputs", "[layers]") {
  Generator g(505);
  // An attack: the image requires grad, the weights do not.
  Tensor x = randn({2, 3, 6, 6}, g).requires_grad_(true);
  Tensor w = randn({4, 3, 3, 3}, g), b = randn({4}, g);
  Tensor out = sum(conv2d(x, w, b, 1, 1));
  out.backward();
  CHECK(x.grad().defined());
  CHECK_FALSE(w.grad().defined());
  // Only the bias requires grad: its gradient is the output-size count per channel.
  Tensor b2 = Tensor::zeros({4}, DType::f64).requires_grad_(true);
  sum(conv2d(randn({2, 3, 6, 6}, g), w, b2, 2, 0)).backward();
  REQUIRE(b2.grad().defined());
  CHECK(b2.grad().to_vector() == std::vector<double>(4, 2.0 * 2 * 2));
  Tensor lb = Tensor::zeros({5}, DType::f64).requires_grad_(true);
  sum(linear(randn({3, 7}, g), randn({5, 7}, g), lb)).backward();
  CHECK(lb.grad().to_vector() == std::vector<double>(5, 3.0));

  // A strided view [1, 2, 5, 5] of a [1, 2, 5, 10] tensor (every other column).
  Tensor base = randn({1, 2, 5, 10}, g);
  auto impl = std::make_shared<TensorImpl>(*base.impl());
  impl->shape = Shape{1, 2, 5, 5};
  impl->strides = {100, 50, 10, 2};
  Tensor view(impl);
  REQUIRE_FALSE(view.is_contiguous());
  Tensor wv = randn({3, 2, 3, 3}, g);
  CHECK(rel_max_diff(conv2d(view, wv, Tensor(), 1, 1), conv2d(view.contiguous(), wv, Tensor(), 1, 1)) == 0.0);
  CHECK(rel_max_diff(max_pool2d(view, 2, 2), max_pool2d(view.contiguous(), 2, 2)) == 0.0);
  view.requires_grad_(true);
  sum(conv2d(view, wv, Tensor(), 1, 1)).backward();
  REQUIRE(view.grad().defined());
  CHECK(view.grad().shape() == Shape{1, 2, 5, 5});
}

TEST_CASE("layer ops reject bad shapes and arguments with clear errors", "[layers]") {
  Generator g(606);
  Tensor x = randn({2, 3, 8, 8}, g), w = randn({4, 3, 3, 3}, g);
  CHECK_THROWS_AS(conv2d(x, randn({4, 2, 3, 3}, g), Tensor(), 1, 0), ShapeError);
  CHECK_THROWS_WITH(conv2d(x, randn({4, 2, 3, 3}, g), Tensor(), 1, 0), Catch::Contains("3 channels"));
  CHECK_THROWS_AS(conv2d(randn({2, 3, 8}, g), w, Tensor(), 1, 0), ShapeError);
  CHECK_THROWS_AS(conv2d(x, randn({4, 3, 9, 9}, g), Tensor(), 1, 0), ShapeError);  // kernel > input
  CHECK_NOTHROW(conv2d(x, randn({4, 3, 9, 9}, g), Tensor(), 1, 1));                // fits with padding
  CHECK_THROWS_AS(conv2d(x, w, Tensor(), 0, 0), ValueError);
  CHECK_THROWS_AS(conv2d(x, w, Tensor(), 1, -1), ValueError);
  // the fused conv + ReLU + pool checks the conv's arguments and then the pool's, naming itself
  CHECK_THROWS_WITH(conv2d_relu_pool(x, randn({4, 2, 3, 3}, g), Tensor(), 1, 0, 2, 2),
                    Catch::Contains("conv2d_relu_pool") && Catch::Contains("3 channels"));
  CHECK_THROWS_AS(conv2d_relu_pool(x, w, Tensor(), 1, 0, 7, 7), ShapeError);  // 6x6 conv output, 7x7 window
  CHECK_THROWS_AS(conv2d_relu_pool(x, w, Tensor(), 1, 0, 2, 0), ValueError);
  CHECK_THROWS_AS(conv2d(x, w, randn({3}, g), 1, 0), ShapeError);            // bias size
  CHECK_THROWS_AS(conv2d(x.to(DType::f32), w, Tensor(), 1, 0), ValueError);  // dtype mismatch
  CHECK_NOTHROW(conv2d(x, randn({4, 3, 3, 2}, g), Tensor(), 1, 0));          // non-square (test_ops_general)
  CHECK_THROWS_AS(linear(randn({2, 5}, g), randn({3, 6}, g), Tensor()), ShapeError);
  CHECK_THROWS_WITH(linear(randn({2, 5}, g), randn({3, 6}, g), Tensor()), Catch::Contains("5 features"));
  CHECK_THROWS_AS(linear(randn({2, 5, 1}, g), randn({3, 5}, g), Tensor()), ShapeError);
  CHECK_THROWS_AS(conv_transpose2d(x, randn({4, 3, 3, 3}, g), Tensor(), 1, 0, 0), ShapeError);  // Cin mismatch
  CHECK_THROWS_AS(conv_transpose2d(x, randn({3, 2, 3, 3}, g), Tensor(), 2, 0, 2), ValueError);  // op >= stride
  CHECK_THROWS_AS(max_pool2d(x, 9, 1), ShapeError);
  CHECK_THROWS_AS(max_pool2d(x, 2, 0), ValueError);
  CHECK_THROWS_AS(max_pool2d(Tensor::from_labels({1, 2}), 1, 1), ValueError);
}

// ---- GEMM --------------------------------------------------------------------------------------------------
namespace {

template <class T>
void check_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, double beta, Generator& g,
                int64_t pad = 0) {
  INFO("gemm " << (sizeof(T) == 4 ? "float" : "double") << " ta=" << ta << " tb=" << tb << " m=" << m << " n=" << n
               << " k=" << k << " alpha=" << alpha << " beta=" << beta << " pad=" << pad);
  const int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
  const int64_t lda = ac + pad, ldb = bc + pad, ldc = n + pad;  // pad > 0: sub-matrices of wider arrays
  auto rnd = [&](int64_t count) {
    Tensor t = randn({std::max<int64_t>(count, 1)}, g);
    auto v = t.to_vector();
    return std::vector<T>(v.begin(), v.begin() + count);
  };
  std::vector<T> A = rnd(ar * lda), B = rnd(br * ldb), C = rnd(m * ldc);
  const std::vector<T> C0 = C;
  sl::cpu::gemm_raw<T>(ta, tb, m, n, k, T(alpha), A.data(), lda, B.data(), ldb, T(beta), C.data(), ldc, true);
  const double eps = sizeof(T) == 4 ? 2e-6 : 1e-14;
  double worst = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0, mag = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double a = ta ? A[size_t(p * lda + i)] : A[size_t(i * lda + p)];
        const double b = tb ? B[size_t(j * ldb + p)] : B[size_t(p * ldb + j)];
        s += a * b;
        mag += std::fabs(a * b);
      }
      const double c0 = C0[size_t(i * ldc + j)];
      const double ref = alpha * s + (beta == 0 ? 0.0 : beta * c0);
      const double tol = eps * (double(k) + 2) * (std::fabs(alpha) * mag + std::fabs(beta * c0) + 1e-30);
      worst = std::max(worst, std::fabs(double(C[size_t(i * ldc + j)]) - ref) / tol);
    }
  CHECK(worst <= 1.0);
  // the padding columns of C are untouched
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = n; j < ldc; ++j) CHECK(C[size_t(i * ldc + j)] == C0[size_t(i * ldc + j)]);
}

}  // namespace

TEST_CASE("gemm matches a naive triple loop: all transposes, ragged sizes, alpha/beta", "[gemm]") {
  Generator g(707);
  struct Size {
    int64_t m, n, k;
  };
  const std::vector<Size> sizes = {{1, 1, 1},       {17, 33, 65},  {130, 7, 300}, {6, 16, 256}, {7, 17, 257},
                                   {200, 300, 270}, {5, 2100, 20}, {64, 3, 1},    {3, 64, 2}};
  const double ab[][2] = {{1.0, 0.0}, {0.5, -1.5}, {-2.0, 1.0}};
  int combo = 0;
  for (const auto& s : sizes)
    for (int t = 0; t < 4; ++t) {
      const auto& c = ab[combo++ % 3];
      check_gemm<float>(t & 1, t & 2, s.m, s.n, s.k, c[0], c[1], g);
      check_gemm<double>(t & 1, t & 2, s.m, s.n, s.k, c[0], c[1], g);
    }
  // leading dimensions wider than the matrices
  check_gemm<float>(false, true, 23, 41, 29, 1.0, 0.5, g, 3);
  check_gemm<double>(true, false, 23, 41, 29, 1.0, 0.0, g, 5);
}

TEST_CASE("gemm edge cases: beta = 0 ignores NaN in C, k = 0 scales C, threads give identical bits", "[gemm]") {
  const int64_t m = 37, n = 45, k = 70;
  std::vector<float> A(size_t(m * k)), B(size_t(k * n)), C(size_t(m * n), std::nanf(""));
  for (size_t i = 0; i < A.size(); ++i) A[i] = float(std::sin(double(i)));
  for (size_t i = 0; i < B.size(); ++i) B[i] = float(std::cos(double(i)));
  sl::cpu::gemm_raw<float>(false, false, m, n, k, 1.f, A.data(), k, B.data(), n, 0.f, C.data(), n, true);
  bool finite = true;
  for (float v : C) finite = finite && std::isfinite(v);
  CHECK(finite);

  std::vector<double> Cd(6, 2.0);
  double dummy = 0;
  sl::cpu::gemm_raw<double>(false, false, 2, 3, 0, 1.0, &dummy, 1, &dummy, 3, 3.0, Cd.data(), 3, true);
  CHECK(Cd == std::vector<double>(6, 6.0));
  sl::cpu::gemm_raw<double>(false, false, 2, 3, 0, 1.0, &dummy, 1, &dummy, 3, 0.0, Cd.data(), 3, true);
  CHECK(Cd == std::vector<double>(6, 0.0));

  // a product big enough to be split over threads gives the same bits as the serial run
  const int64_t M = 301, N = 257, K = 190;
  std::vector<float> a(size_t(M * K)), b(size_t(K * N)), c1(size_t(M * N)), c2(size_t(M * N));
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(std::sin(0.37 * double(i)));
  for (size_t i = 0; i < b.size(); ++i) b[i] = float(std::cos(0.11 * double(i)));
  sl::cpu::gemm_raw<float>(false, true, M, N, K, 1.f, a.data(), K, b.data(), K, 0.f, c1.data(), N, false);
  sl::cpu::gemm_raw<float>(false, true, M, N, K, 1.f, a.data(), K, b.data(), K, 0.f, c2.data(), N, true);
  CHECK(c1 == c2);

  // the tensor entry point checks shapes
  Tensor ta = Tensor::zeros({3, 4}), tb = Tensor::zeros({5, 6}), tc = Tensor::zeros({3, 6});
  CHECK_THROWS_AS(kern::gemm(ta, false, tb, false, tc, 1.0, 0.0), ShapeError);
  Tensor tb2 = Tensor::ones({4, 6});
  Tensor ta2 = Tensor::ones({3, 4});
  kern::gemm(ta2, false, tb2, false, tc, 1.0, 0.0);
  CHECK(tc.to_vector() == std::vector<double>(18, 4.0));
}

// ---- conv kernels at sizes that block the column matrix and thread over the batch -----------------------
TEST_CASE("conv kernels match the naive reference at blocked sizes, for any thread count", "[layers]") {
  Generator g(808);
  struct Cfg {
    int64_t n, cin, h, w, cout;
    int k, s, p;
  };
  // cin 64 k3: 576 column rows -> several column blocks per image; n 4 threads over the batch, n 1 and 3 do not.
  const std::vector<Cfg> cfgs = {{4, 64, 18, 20, 8, 3, 1, 1}, {1, 64, 21, 19, 5, 3, 2, 1}, {3, 32, 24, 24, 6, 5, 1, 2}};
  for (const auto& c : cfgs) {
    INFO("conv " << c.n << "x" << c.cin << "x" << c.h << "x" << c.w << " -> " << c.cout << " k" << c.k << " s" << c.s
                 << " p" << c.p);
    Tensor x = randn32({c.n, c.cin, c.h, c.w}, g), w = randn32({c.cout, c.cin, c.k, c.k}, g), b = randn32({c.cout}, g);
    ConvArgs a;
    a.stride = c.s;
    a.pad = c.p;
    const int64_t OH = conv_out_size(c.h, c.k, c.s, c.p), OW = conv_out_size(c.w, c.k, c.s, c.p);
    Tensor y = Tensor::empty({c.n, c.cout, OH, OW});
    kern::conv2d_forward(x, w, b, a, y);
    Tensor yref = conv2d_ref(x.to(DType::f64), w.to(DType::f64), b.to(DType::f64), c.s, c.p);
    CHECK(rel_max_diff(y, yref) <= 1e-5);

    // data and weight gradients against the reference through the adjoint identities
    //   <gy, conv(x)> = <conv_backward_data(gy), x>   and   = <conv_backward_weight(x, gy), w>  (no bias)
    Tensor gy = randn32(y.shape(), g);
    Tensor gx = Tensor::empty(x.shape()), gw = Tensor::empty(w.shape()), gb = Tensor::empty({c.cout});
    kern::conv2d_backward_data(gy, w, a, gx);
    kern::conv2d_backward_weight(x, gy, a, gw, gb);
    auto dot = [](const Tensor& p, const Tensor& q) {
      auto vp = p.to_vector(), vq = q.to_vector();
      double s = 0, m = 0;
      for (size_t i = 0; i < vp.size(); ++i) {
        s += vp[i] * vq[i];
        m += std::fabs(vp[i] * vq[i]);
      }
      return std::make_pair(s, m);
    };
    Tensor y0 = conv2d_ref(x.to(DType::f64), w.to(DType::f64), Tensor(), c.s, c.p);
    auto [lhs, mag] = dot(gy, y0);
    CHECK(std::fabs(dot(gx, x).first - lhs) <= 1e-5 * mag);
    CHECK(std::fabs(dot(gw, w).first - lhs) <= 1e-5 * mag);
    // gb = per-channel sums of gy
    auto vgy = gy.to_vector();
    const int64_t S = OH * OW;
    for (int64_t co = 0; co < c.cout; ++co) {
      double s = 0;
      for (int64_t n = 0; n < c.n; ++n)
        for (int64_t q = 0; q < S; ++q) s += vgy[size_t((n * c.cout + co) * S + q)];
      CHECK(std::fabs(gb.to_vector()[size_t(co)] - s) <= 1e-4 * (1 + std::fabs(s)));
    }

    // one thread gives the very same bits
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    Tensor y1 = Tensor::empty(y.shape()), gx1 = Tensor::empty(x.shape()), gw1 = Tensor::empty(w.shape()),
           gb1 = Tensor::empty({c.cout});
    kern::conv2d_forward(x, w, b, a, y1);
    kern::conv2d_backward_data(gy, w, a, gx1);
    kern::conv2d_backward_weight(x, gy, a, gw1, gb1);
    omp_set_num_threads(saved);
    CHECK(rel_max_diff(y1, y) == 0.0);
    CHECK(rel_max_diff(gx1, gx) == 0.0);
    CHECK(rel_max_diff(gw1, gw) == 0.0);
    CHECK(rel_max_diff(gb1, gb) == 0.0);
  }
}

TEST_CASE("conv_transpose2d kernels match the naive reference at blocked sizes", "[layers]") {
  Generator g(909);
  // 48 -> 16 channels, k4 s2 (a decoder-like shape): 256 column rows x 552 positions -> two column blocks
  Tensor x = randn32({2, 48, 24, 23}, g), w = randn32({48, 16, 4, 4}, g), b = randn32({16}, g);
  ConvArgs a;
  a.stride = 2;
  a.pad = 1;
  a.output_padding = 1;
  const int64_t OH = conv_transpose_out_size(24, 4, 2, 1, 1), OW = conv_transpose_out_size(23, 4, 2, 1, 1);
  Tensor y = Tensor::empty({2, 16, OH, OW});
  kern::conv_transpose2d_forward(x, w, b, a, y);
  CHECK(rel_max_diff(y, conv_transpose2d_ref(x.to(DType::f64), w.to(DType::f64), b.to(DType::f64), 2, 1, 1)) <= 1e-5);
}

TEST_CASE("Winograd F(4x4, 3x3) transforms: a tile's correlation and its filter gradient equal the direct sums",
          "[layers][winograd]") {
  // kernels/winograd_f43.h, the code of the CUDA transform path, in double: exact up to rounding.
  namespace wf = sl::winograd;
  Generator g(43);
  for (int rep = 0; rep < 20; ++rep) {
    auto draw = [&](int n) { return test::randn({n}, g).to_vector(); };
    const std::vector<double> dv = draw(36), gv = draw(9), yv = draw(16);
    double d[6][6], f[3][3], dy[4][4], v[6][6], u[6][6], m[6][6], y[4][4], du[6][6], gm[6][6], gf[3][3];
    for (int i = 0; i < 36; ++i) d[i / 6][i % 6] = dv[size_t(i)];
    for (int i = 0; i < 9; ++i) f[i / 3][i % 3] = gv[size_t(i)];
    for (int i = 0; i < 16; ++i) dy[i / 4][i % 4] = yv[size_t(i)];
    wf::input_2d(d, v);
    wf::filter_2d(f, u);
    for (int a = 0; a < 6; ++a)
      for (int b = 0; b < 6; ++b) m[a][b] = u[a][b] * v[a][b];
    wf::output_2d(m, y);
    double worst = 0;
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) {
        double ref = 0;
        for (int a = 0; a < 3; ++a)
          for (int b = 0; b < 3; ++b) ref += f[a][b] * d[r + a][c + b];
        worst = std::max(worst, std::fabs(y[r][c] - ref));
      }
    CHECK(worst <= 1e-12);
    // filter gradient of the tile: dg[a][b] = sum_{r,c} dy[r][c] d[r + a][c + b]
    wf::grad_2d(dy, gm);
    for (int a = 0; a < 6; ++a)
      for (int b = 0; b < 6; ++b) du[a][b] = gm[a][b] * v[a][b];
    wf::filter_grad_2d(du, gf);
    worst = 0;
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) {
        double ref = 0;
        for (int r = 0; r < 4; ++r)
          for (int c = 0; c < 4; ++c) ref += dy[r][c] * d[r + a][c + b];
        worst = std::max(worst, std::fabs(gf[a][b] - ref));
      }
    CHECK(worst <= 1e-12);
  }
}
