// The ops imported models need, through the op harness (each against a naive float64 loop written here, a
// finite-difference gradient check in double, and CUDA against the CPU where a GPU is present): conv2d and
// conv_transpose2d with the general geometry (non-square kernels, strides and padding per side, dilation, groups),
// max and average pooling with padding, dilation and ceil mode, global average pooling, tanh, leaky ReLU, softmax
// along any axis, broadcasting add and the per-channel affine of batch normalisation; and their errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "kernels/dispatch.h"
#include "tests/op_harness.h"

using namespace sl;
using namespace sl::test;

namespace {

Tensor arg(const std::vector<Tensor>& in, size_t i) { return i < in.size() ? in[i] : Tensor(); }

ConvArgs geometry(int sh, int sw, int pt, int pl, int pb, int pr, int dh, int dw, int groups, int oph = 0,
                  int opw = 0) {
  ConvArgs a;
  a.stride = sh;
  a.stride_w = sw;
  a.pad = pt;
  a.pad_left = pl;
  a.pad_bottom = pb;
  a.pad_right = pr;
  a.dilation_h = dh;
  a.dilation_w = dw;
  a.groups = groups;
  a.output_padding = oph;
  a.output_padding_w = opw;
  return a;
}

// y[n, co, oh, ow] = b[co] + sum_{ci in co's group, i, j} w[co, ci', i, j] x[n, ci, oh sh - pt + i dh, ow sw - pl + j
// dw]
Tensor conv2d_ref(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), CO = w.size(0), CG = w.size(1),
                KH = w.size(2), KW = w.size(3), G = a.groups, COG = CO / G;
  const int64_t OH = (H + a.pt() + a.pb() - (KH - 1) * a.dilation_h - 1) / a.sh() + 1;
  const int64_t OW = (W + a.pl() + a.pr() - (KW - 1) * a.dilation_w - 1) / a.sw() + 1;
  auto vx = x.to_vector(), vw = w.to_vector();
  std::vector<double> vb = b.defined() ? b.to_vector() : std::vector<double>(size_t(CO), 0.0);
  std::vector<double> y(size_t(N * CO * OH * OW));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t co = 0; co < CO; ++co)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = vb[size_t(co)];
          const int64_t g = co / COG;
          for (int64_t c = 0; c < CG; ++c)
            for (int64_t i = 0; i < KH; ++i)
              for (int64_t j = 0; j < KW; ++j) {
                const int64_t ih = oh * a.sh() - a.pt() + i * a.dilation_h,
                              iw = ow * a.sw() - a.pl() + j * a.dilation_w;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += vx[size_t(((n * C + g * CG + c) * H + ih) * W + iw)] *
                       vw[size_t(((co * CG + c) * KH + i) * KW + j)];
              }
          y[size_t(((n * CO + co) * OH + oh) * OW + ow)] = acc;
        }
  return Tensor::from_vector(y, Shape{N, CO, OH, OW}, DType::f64);
}

// Scatter form: every input pixel adds its weighted kernel into the output (weight [Cin, Cout / G, kh, kw]).
Tensor conv_transpose2d_ref(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a) {
  const int64_t N = x.size(0), CI = x.size(1), H = x.size(2), W = x.size(3), G = a.groups, COG = w.size(1),
                CO = COG * G, CIG = CI / G, KH = w.size(2), KW = w.size(3);
  const int64_t OH = (H - 1) * a.sh() - a.pt() - a.pb() + (KH - 1) * a.dilation_h + 1 + a.oph();
  const int64_t OW = (W - 1) * a.sw() - a.pl() - a.pr() + (KW - 1) * a.dilation_w + 1 + a.opw();
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
          const int64_t g = ci / CIG;
          for (int64_t c = 0; c < COG; ++c)
            for (int64_t i = 0; i < KH; ++i)
              for (int64_t j = 0; j < KW; ++j) {
                const int64_t oh = ih * a.sh() - a.pt() + i * a.dilation_h,
                              ow = iw * a.sw() - a.pl() + j * a.dilation_w;
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                y[size_t(((n * CO + g * COG + c) * OH + oh) * OW + ow)] +=
                    v * vw[size_t(((ci * COG + c) * KH + i) * KW + j)];
              }
        }
  return Tensor::from_vector(y, Shape{N, CO, OH, OW}, DType::f64);
}

// Pool output size with ceil mode's rule (the last window starts inside the input or its leading padding).
int64_t pool_out(int64_t in, int k, int s, int p0, int p1, int d, bool ceil_mode) {
  const double room = double(in + p0 + p1 - (k - 1) * d - 1);
  int64_t out = int64_t(ceil_mode ? std::ceil(room / s) : std::floor(room / s)) + 1;
  if (ceil_mode && (out - 1) * s >= in + p0) --out;
  return out;
}

Tensor pool2d_ref(const Tensor& x, const PoolArgs& p) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = pool_out(H, p.kh, p.sh, p.pt, p.pb, p.dh, p.ceil_mode);
  const int64_t OW = pool_out(W, p.kw, p.sw, p.pl, p.pr, p.dw, p.ceil_mode);
  auto vx = x.to_vector();
  std::vector<double> y(size_t(N * C * OH * OW));
  for (int64_t pl = 0; pl < N * C; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double m = -std::numeric_limits<double>::infinity(), s = 0;
        int64_t inside = 0, padded = 0;
        for (int i = 0; i < p.kh; ++i)
          for (int j = 0; j < p.kw; ++j) {
            const int64_t ih = oh * p.sh - p.pt + i * p.dh, iw = ow * p.sw - p.pl + j * p.dw;
            if (ih >= -p.pt && ih < H + p.pb && iw >= -p.pl && iw < W + p.pr) ++padded;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            const double v = vx[size_t((pl * H + ih) * W + iw)];
            m = std::max(m, v);
            s += v;
            ++inside;
          }
        y[size_t((pl * OH + oh) * OW + ow)] =
            p.mode == PoolMode::max ? m : s / double(p.count_include_pad ? padded : inside);
      }
  return Tensor::from_vector(y, Shape{N, C, OH, OW}, DType::f64);
}

Tensor map_ref(const Tensor& x, double (*f)(double, double), double a) {
  auto v = x.to_vector();
  for (double& e : v) e = f(e, a);
  return Tensor::from_vector(v, x.shape(), DType::f64);
}

Tensor softmax_ref(const Tensor& x, int axis) {
  const int r = int(x.dim()), ax = axis < 0 ? axis + r : axis;
  int64_t outer = 1, c = x.size(ax), inner = 1;
  for (int d = 0; d < ax; ++d) outer *= x.size(d);
  for (int d = ax + 1; d < r; ++d) inner *= x.size(d);
  auto v = x.to_vector();
  std::vector<double> y(v.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double m = -INFINITY, s = 0;
      for (int64_t j = 0; j < c; ++j) m = std::max(m, v[size_t((o * c + j) * inner + i)]);
      for (int64_t j = 0; j < c; ++j) s += std::exp(v[size_t((o * c + j) * inner + i)] - m);
      for (int64_t j = 0; j < c; ++j)
        y[size_t((o * c + j) * inner + i)] = std::exp(v[size_t((o * c + j) * inner + i)] - m) / s;
    }
  return Tensor::from_vector(y, x.shape(), DType::f64);
}

// NumPy broadcasting written out: the output coordinate, clamped to 0 along an operand's size-1 dims.
Tensor add_broadcast_ref(const Tensor& a, const Tensor& b) {
  const size_t r = std::max(a.dim(), b.dim());
  std::vector<int64_t> da(r, 1), db(r, 1), d(r);
  for (size_t i = 0; i < a.dim(); ++i) da[r - a.dim() + i] = a.size(int(i));
  for (size_t i = 0; i < b.dim(); ++i) db[r - b.dim() + i] = b.size(int(i));
  for (size_t i = 0; i < r; ++i) d[i] = std::max(da[i], db[i]);
  const Shape out(d);
  auto va = a.to_vector(), vb = b.to_vector();
  std::vector<double> y(size_t(out.numel()));
  for (int64_t o = 0; o < out.numel(); ++o) {
    int64_t rest = o, ia = 0, ib = 0, sa = 1, sb = 1;
    for (size_t k = r; k-- > 0;) {
      const int64_t c = rest % d[k];
      rest /= d[k];
      ia += (da[k] == 1 ? 0 : c) * sa;
      ib += (db[k] == 1 ? 0 : c) * sb;
      sa *= da[k];
      sb *= db[k];
    }
    y[size_t(o)] = va[size_t(ia)] + vb[size_t(ib)];
  }
  return Tensor::from_vector(y, out, DType::f64);
}

Tensor channel_affine_ref(const Tensor& x, const Tensor& s, const Tensor& t) {
  auto v = x.to_vector(), vs = s.to_vector(), vt = t.to_vector();
  const int64_t C = x.size(1), Q = x.numel() / (x.size(0) * C);
  for (size_t i = 0; i < v.size(); ++i) {
    const size_t c = size_t((int64_t(i) / Q) % C);
    v[i] = v[i] * vs[c] + vt[c];
  }
  return Tensor::from_vector(v, x.shape(), DType::f64);
}

Tensor channel_l1_clip_ref(const Tensor& x, double bound) {
  auto v = x.to_vector();
  const int64_t maps = x.size(0) * x.size(1), Q = x.numel() / maps;
  for (int64_t m = 0; m < maps; ++m) {
    double l1 = 0;
    for (int64_t i = 0; i < Q; ++i) l1 += std::abs(v[size_t(m * Q + i)]);
    for (int64_t i = 0; i < Q; ++i) v[size_t(m * Q + i)] *= std::min(1.0, bound / l1);
  }
  return Tensor::from_vector(v, x.shape(), DType::f64);
}

std::string conv_name(const char* op, const Shape& x, const Shape& w, const ConvArgs& a) {
  return str(op, " x", x.str(), " w", w.str(), " s", a.sh(), "/", a.sw(), " p", a.pt(), "/", a.pl(), "/", a.pb(), "/",
             a.pr(), " d", a.dilation_h, "/", a.dilation_w, " g", a.groups, " op", a.oph(), "/", a.opw());
}

}  // namespace

TEST_CASE("conv2d with the general geometry passes the op harness", "[layers][general]") {
  Generator g(1301);
  struct Cfg {
    Shape x, w;
    ConvArgs a;
    bool bias;
  };
  const std::vector<Cfg> cfgs = {
      {{2, 3, 7, 5}, {4, 3, 3, 2}, geometry(1, 1, 0, 0, 0, 0, 1, 1, 1), true},   // non-square kernel
      {{1, 2, 7, 5}, {3, 2, 3, 3}, geometry(2, 2, 1, 0, 1, 0, 1, 1, 1), true},   // ONNX's asymmetric-padding case
      {{2, 2, 9, 8}, {2, 2, 3, 3}, geometry(2, 1, 0, 2, 1, 0, 1, 1, 1), false},  // per-axis strides, pads per side
      {{1, 3, 8, 8}, {2, 3, 3, 3}, geometry(2, 2, 1, 1, 1, 1, 2, 2, 1), true},   // dilated (PyTorch's Conv2d_dilated)
      {{2, 4, 6, 5}, {4, 2, 3, 2}, geometry(1, 1, 0, 0, 0, 0, 1, 1, 2), true},   // two groups
      {{2, 4, 6, 6}, {8, 1, 3, 3}, geometry(2, 2, 1, 1, 1, 1, 1, 1, 4), false},  // depthwise with multiplier 2
      {{1, 2, 1, 9}, {3, 2, 1, 3}, geometry(1, 2, 0, 1, 0, 2, 1, 2, 1), true},   // a 1-d conv as 1 x k
      {{2, 3, 5, 6}, {4, 3, 1, 1}, geometry(1, 1, 0, 0, 0, 0, 1, 1, 1), true},   // pointwise (the image is the matrix)
  };
  for (const auto& c : cfgs) {
    std::vector<Tensor> in;
    in.reserve(3);  // (filled one by one: GCC 12 warns about a push_back after an initializer list)
    in.push_back(randn(c.x, g));
    in.push_back(randn(c.w, g));
    if (c.bias) in.push_back(randn({c.w[0]}, g));
    const ConvArgs a = c.a;
    run_op_case({conv_name("conv2d", c.x, c.w, a), in, [a](auto& v) { return conv2d(v[0], v[1], arg(v, 2), a); },
                 [a](auto& v) { return conv2d_ref(v[0], v[1], arg(v, 2), a); }});
    ConvArgs ar = a;
    ar.relu = true;
    run_op_case({conv_name("conv2d+relu", c.x, c.w, a), in, [ar](auto& v) { return conv2d(v[0], v[1], arg(v, 2), ar); },
                 [a](auto& v) {
                   auto y = conv2d_ref(v[0], v[1], arg(v, 2), a).to_vector();
                   for (double& e : y) e = e > 0 ? e : 0;
                   return Tensor::from_vector(y, conv2d_ref(v[0], v[1], arg(v, 2), a).shape(), DType::f64);
                 }});
  }
}

TEST_CASE("conv2d's general form gives the square form's bits where both apply", "[layers][general]") {
  Generator g(1302);
  Tensor x = randn({2, 3, 9, 8}, g).to(DType::f32), w = randn({4, 3, 3, 3}, g).to(DType::f32),
         b = randn({4}, g).to(DType::f32);
  ConvArgs a = geometry(2, 2, 1, 1, 1, 1, 1, 1, 1);
  CHECK(rel_max_diff(conv2d(x, w, b, a), conv2d(x, w, b, 2, 1)) == 0.0);
  for (Device d : other_backends()) {
    Tensor xd = x.to(d), wd = w.to(d), bd = b.to(d);
    CHECK(rel_max_diff(conv2d(xd, wd, bd, a).to(Device::cpu()), conv2d(xd, wd, bd, 2, 1).to(Device::cpu())) == 0.0);
  }
}

TEST_CASE("conv_transpose2d with the general geometry passes the op harness", "[layers][general]") {
  Generator g(1303);
  struct Cfg {
    Shape x, w;
    ConvArgs a;
    bool bias;
  };
  const std::vector<Cfg> cfgs = {
      {{1, 3, 7, 6}, {3, 2, 3, 3}, geometry(3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1), true},   // PyTorch's ConvTranspose2d
      {{1, 1, 3, 3}, {1, 2, 3, 3}, geometry(3, 2, 1, 2, 1, 2, 1, 1, 1), false},        // ONNX's convtranspose_pads
      {{1, 1, 3, 3}, {1, 1, 2, 2}, geometry(1, 1, 0, 0, 0, 0, 2, 2, 1), true},         // dilated
      {{2, 4, 3, 4}, {4, 3, 3, 2}, geometry(2, 1, 0, 1, 1, 0, 1, 1, 2, 1, 0), true},   // groups, non-square
      {{1, 2, 3, 3}, {2, 1, 3, 3}, geometry(3, 2, 0, 0, 0, 0, 1, 1, 1, 1, 1), false},  // output padding per axis
  };
  for (const auto& c : cfgs) {
    std::vector<Tensor> in;
    in.reserve(3);
    in.push_back(randn(c.x, g));
    in.push_back(randn(c.w, g));
    if (c.bias) in.push_back(randn({c.w[1] * c.a.groups}, g));
    const ConvArgs a = c.a;
    run_op_case({conv_name("conv_transpose2d", c.x, c.w, a), in,
                 [a](auto& v) { return conv_transpose2d(v[0], v[1], arg(v, 2), a); },
                 [a](auto& v) { return conv_transpose2d_ref(v[0], v[1], arg(v, 2), a); }});
  }
}

TEST_CASE("pool2d (max and average, padding, dilation, ceil mode) passes the op harness", "[layers][general]") {
  Generator g(1304);
  auto P = [](PoolMode m, int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr, int dh, int dw, bool ceil,
              bool cip) {
    PoolArgs p;
    p.mode = m;
    p.kh = kh, p.kw = kw, p.sh = sh, p.sw = sw, p.pt = pt, p.pl = pl, p.pb = pb, p.pr = pr, p.dh = dh, p.dw = dw;
    p.ceil_mode = ceil;
    p.count_include_pad = cip;
    return p;
  };
  struct Cfg {
    Shape x;
    PoolArgs p;
  };
  const PoolMode mx = PoolMode::max, av = PoolMode::avg;
  const std::vector<Cfg> cfgs = {
      {{1, 2, 7, 7}, P(mx, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, false)},  // PyTorch's MaxPool2d (padded)
      {{1, 1, 4, 4}, P(mx, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, true, false)},   // ceil mode
      {{1, 2, 6, 7}, P(mx, 2, 2, 1, 1, 0, 0, 0, 0, 2, 2, false, false)},  // dilation
      {{2, 1, 5, 6}, P(mx, 3, 2, 2, 1, 0, 1, 2, 0, 1, 1, false, false)},  // non-square, pads per side
      {{1, 2, 6, 6}, P(mx, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, false, false)},  // the models' pool (tuned kernel)
      {{1, 2, 6, 6}, P(av, 3, 3, 1, 1, 2, 2, 2, 2, 1, 1, false, false)},  // average, padding excluded
      {{1, 2, 6, 6}, P(av, 3, 3, 1, 1, 2, 2, 2, 2, 1, 1, false, true)},   // count_include_pad
      {{1, 1, 5, 5}, P(av, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true, true)},    // ceil mode + count_include_pad
      {{2, 3, 6, 6}, P(av, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, false, false)},  // AvgPool2d(2)
      {{1, 2, 5, 7}, P(av, 2, 3, 2, 1, 1, 0, 0, 2, 1, 1, true, false)},   // asymmetric everything
  };
  for (const auto& c : cfgs) {
    const PoolArgs p = c.p;
    const std::string name = str(p.mode == mx ? "max" : "avg", "_pool2d x", c.x.str(), " k", p.kh, "x", p.kw, " s",
                                 p.sh, "/", p.sw, " p", p.pt, "/", p.pl, "/", p.pb, "/", p.pr, " d", p.dh, "/", p.dw,
                                 p.ceil_mode ? " ceil" : "", p.count_include_pad ? " count_include_pad" : "");
    run_op_case({name,
                 {randn(c.x, g)},
                 [p](auto& v) { return pool2d(v[0], p); },
                 [p](auto& v) { return pool2d_ref(v[0], p); }});
  }
  // global average pooling: the mean of each plane
  run_op_case(
      {"global_avg_pool2d 2x3x5x4",
       {randn({2, 3, 5, 4}, g)},
       [](auto& v) { return global_avg_pool2d(v[0]); },
       [P](auto& v) { return pool2d_ref(v[0], P(PoolMode::avg, 5, 4, 1, 1, 0, 0, 0, 0, 1, 1, false, false)); }});
}

TEST_CASE("tanh, leaky_relu and softmax along an axis pass the op harness", "[ops][general]") {
  Generator g(1305);
  run_op_case({"tanh 3x4x5",
               {randn({3, 4, 5}, g, 2.0)},
               [](auto& v) { return sl::tanh(v[0]); },
               [](auto& v) {
                 return map_ref(
                     v[0], [](double e, double) { return std::tanh(e); }, 0);
               }});
  for (double alpha : {0.01, 0.5, -0.2}) {
    run_op_case({str("leaky_relu alpha ", alpha),
                 {randn({3, 4, 5}, g)},
                 [alpha](auto& v) { return leaky_relu(v[0], alpha); },
                 [alpha](auto& v) {
                   return map_ref(
                       v[0], [](double e, double a) { return e > 0 ? e : a * e; }, alpha);
                 }});
  }
  for (int axis : {0, 1, 2, -1, -3}) {
    run_op_case({str("softmax 3x4x5 axis ", axis),
                 {randn({3, 4, 5}, g, 3.0)},
                 [axis](auto& v) { return softmax(v[0], axis); },
                 [axis](auto& v) { return softmax_ref(v[0], axis); }});
  }
}

TEST_CASE("add_broadcast and channel_affine pass the op harness", "[ops][general]") {
  Generator g(1306);
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{3, 4, 5}, {5}},       {{3, 4, 5}, {4, 1}}, {{2, 3, 4, 4}, {3, 1, 1}},   {{1, 4}, {3, 1}},
      {{2, 1, 3}, {1, 4, 1}}, {{3, 4}, {}},        {{2, 3, 2, 2}, {2, 3, 2, 2}}};
  for (const auto& [sa, sb] : shapes)
    run_op_case({str("add_broadcast ", sa.str(), " + ", sb.str()),
                 {randn(sa, g), randn(sb, g)},
                 [](auto& v) { return add_broadcast(v[0], v[1]); },
                 [](auto& v) { return add_broadcast_ref(v[0], v[1]); }});
  for (const Shape& s : {Shape{2, 3, 4, 5}, Shape{4, 3}, Shape{2, 3, 7}})
    run_op_case({str("channel_affine ", s.str()),
                 {randn(s, g), randn({s[1]}, g), randn({s[1]}, g)},
                 [](auto& v) { return channel_affine(v[0], v[1], v[2]); },
                 [](auto& v) { return channel_affine_ref(v[0], v[1], v[2]); }});
}

TEST_CASE("channel_l1_clip (CIS's clip) passes the op harness, with clipped and unclipped maps", "[ops][general]") {
  Generator g(1309);
  // N(0, 1) entries: a map of Q elements has an L1 norm near 0.8 Q, so these bounds clip about half the maps.
  const std::vector<std::pair<Shape, double>> cases = {
      {{2, 3, 4, 4}, 10.0}, {{4, 3}, 0.7}, {{2, 3, 7}, 5.5}, {{3, 2, 5, 5}, 1e6}, {{2, 4, 3, 3}, 0.5}};
  for (const auto& [s, bound] : cases) {
    Tensor x = randn(s, g);
    int64_t clipped = 0;
    {
      const Tensor f = channel_l1_clip_ref(x, bound);
      auto a = x.to_vector(), b = f.to_vector();
      for (size_t i = 0; i < a.size(); ++i) clipped += a[i] != b[i];
    }
    INFO(s.str() << " bound " << bound << ": " << clipped << " of " << s.numel() << " entries scaled");
    if (bound < 1e6) CHECK(clipped > 0);
    if (bound >= 1e6) CHECK(clipped == 0);
    run_op_case({str("channel_l1_clip ", s.str(), " bound ", bound),
                 {x},
                 [bound](auto& v) { return channel_l1_clip(v[0], bound); },
                 [bound](auto& v) { return channel_l1_clip_ref(v[0], bound); }});
  }
  // Every map's L1 norm ends at most the bound, and a clipped one exactly at it.
  Tensor y = channel_l1_clip(randn({3, 5, 6, 6}, g, 2.0), 10.0);
  auto v = y.to_vector();
  for (int64_t m = 0; m < 15; ++m) {
    double l1 = 0;
    for (int64_t i = 0; i < 36; ++i) l1 += std::abs(v[size_t(m * 36 + i)]);
    CHECK(l1 == Approx(10.0).epsilon(1e-12));
  }
  CHECK_THROWS_AS(channel_l1_clip(randn({3, 4}, g), 0.0), ValueError);
  CHECK_THROWS_AS(channel_l1_clip(randn({3, 4}, g), NAN), ValueError);
  CHECK_THROWS_AS(channel_l1_clip(randn({12}, g), 1.0), ShapeError);
}

TEST_CASE("the general ops reject bad geometry and shapes with clear errors", "[layers][general]") {
  Generator g(1307);
  Tensor x = randn({2, 4, 8, 8}, g);
  CHECK_THROWS_WITH(conv2d(x, randn({6, 3, 3, 3}, g), Tensor(), geometry(1, 1, 0, 0, 0, 0, 1, 1, 2)),
                    Catch::Contains("4 channels") && Catch::Contains("2 groups"));
  CHECK_THROWS_WITH(conv2d(x, randn({5, 2, 3, 3}, g), Tensor(), geometry(1, 1, 0, 0, 0, 0, 1, 1, 2)),
                    Catch::Contains("do not split into 2 groups"));
  CHECK_THROWS_AS(conv2d(x, randn({4, 4, 3, 3}, g), Tensor(), geometry(1, 1, -1, 0, 0, 0, 1, 1, 1)), ValueError);
  CHECK_THROWS_AS(conv2d(x, randn({4, 4, 3, 3}, g), Tensor(), geometry(0, 1, 0, 0, 0, 0, 1, 1, 1)), ValueError);
  CHECK_THROWS_AS(conv2d(x, randn({4, 4, 3, 3}, g), Tensor(), geometry(1, 1, 0, 0, 0, 0, 0, 1, 1)), ValueError);
  CHECK_THROWS_WITH(conv2d(x, randn({4, 4, 3, 3}, g), Tensor(), geometry(1, 1, 0, 0, 0, 0, 4, 4, 1)),
                    Catch::Contains("larger than the padded input"));  // dilated span 9 > 8
  CHECK_THROWS_AS(conv2d_relu_pool(x, randn({4, 4, 3, 2}, g), Tensor(), 1, 0, 2, 2), ShapeError);
  CHECK_THROWS_AS(conv_transpose2d(x, randn({4, 2, 3, 3}, g), Tensor(), geometry(2, 2, 0, 0, 0, 0, 1, 1, 1, 2, 0)),
                  ValueError);  // output padding >= stride
  CHECK_THROWS_AS(conv_transpose2d(x, randn({4, 2, 3, 3}, g), randn({3}, g), geometry(1, 1, 0, 0, 0, 0, 1, 1, 2)),
                  ShapeError);  // bias: 2 x 2 = 4 output channels
  PoolArgs p;
  p.kh = p.kw = 3;
  p.pt = 3;  // not smaller than the window
  CHECK_THROWS_WITH(pool2d(x, p), Catch::Contains("smaller than the window"));
  p.pt = 0;
  p.kh = 9;
  CHECK_THROWS_AS(pool2d(x, p), ShapeError);
  p.kh = 2;
  p.sw = 0;
  CHECK_THROWS_AS(pool2d(x, p), ValueError);
  CHECK_THROWS_AS(add_broadcast(randn({3, 4}, g), randn({3}, g)), ShapeError);
  CHECK_THROWS_AS(channel_affine(x, randn({3}, g), randn({3}, g)), ShapeError);
  CHECK_THROWS_AS(softmax(x, 4), ValueError);
  CHECK_THROWS_AS(leaky_relu(x, NAN), ValueError);
  CHECK_THROWS_AS(global_avg_pool2d(randn({2, 3}, g)), ShapeError);
}

TEST_CASE("the general ops on CUDA agree with the CPU at sizes that fill the kernels' blocks", "[general][cuda]") {
  if (!gpu_ready("general ops at larger sizes")) return;
  Generator g(1308);
  const Device gpu = Device::cuda(0);
  auto agree = [&](const char* what, const Tensor& cpu, const Tensor& dev, double tol = 1e-4) {
    INFO(what);
    CHECK(rel_max_diff(dev.to(Device::cpu()), cpu) <= tol);
  };
  // conv2d and conv_transpose2d with groups, dilation, a non-square kernel, per-axis strides and pads per side:
  // forward, both gradients (the weight gradient's block sums run over 4 x 10 x 18 = 720 positions)
  const ConvArgs a = geometry(2, 1, 1, 2, 0, 3, 2, 1, 4);
  Tensor x = randn({4, 16, 20, 17}, g).to(DType::f32).requires_grad_(true);
  Tensor w = randn({8, 4, 3, 5}, g).to(DType::f32).requires_grad_(true);
  Tensor b = randn({8}, g).to(DType::f32).requires_grad_(true);
  Tensor xd = x.detach().to(gpu).requires_grad_(true), wd = w.detach().to(gpu).requires_grad_(true),
         bd = b.detach().to(gpu).requires_grad_(true);
  Tensor y = conv2d(x, w, b, a), yd = conv2d(xd, wd, bd, a);
  agree("conv2d forward", y.detach(), yd.detach());
  Tensor gy = randn(y.shape(), g).to(DType::f32);
  sum(mul(y, gy)).backward();
  sum(mul(yd, gy.to(gpu))).backward();
  agree("conv2d data gradient", x.grad(), xd.grad());
  agree("conv2d weight gradient", w.grad(), wd.grad());
  agree("conv2d bias gradient", b.grad(), bd.grad());
  const ConvArgs t = geometry(2, 3, 1, 0, 2, 1, 1, 2, 2, 1, 2);
  Tensor wt = randn({16, 3, 4, 3}, g).to(DType::f32);
  agree("conv_transpose2d forward", conv_transpose2d(x.detach(), wt, Tensor(), t),
        conv_transpose2d(xd.detach(), wt.to(gpu), Tensor(), t));
  // pooling, softmax along a middle axis, broadcasting add with its gradient, the per-channel affine's sums
  PoolArgs p;
  p.mode = PoolMode::avg;
  p.kh = 3, p.kw = 4, p.sh = 2, p.sw = 3, p.pt = 1, p.pl = 2, p.pb = 2, p.pr = 0, p.dw = 2;
  p.ceil_mode = true;
  p.count_include_pad = true;
  Tensor big = randn({3, 32, 33, 40}, g).to(DType::f32);
  agree("avg pool", pool2d(big, p), pool2d(big.to(gpu), p));
  p.mode = PoolMode::max;
  agree("max pool", pool2d(big, p), pool2d(big.to(gpu), p));
  agree("softmax axis 1", softmax(big, 1), softmax(big.to(gpu), 1), 1e-5);
  Tensor row = randn({33, 1}, g).to(DType::f32).requires_grad_(true);
  Tensor rowd = row.detach().to(gpu).requires_grad_(true);
  sum(mul(add_broadcast(big, row), big)).backward();
  sum(mul(add_broadcast(big.to(gpu), rowd), big.to(gpu))).backward();
  agree("broadcast gradient", row.grad(), rowd.grad());
  Tensor sc = randn({32}, g).to(DType::f32).requires_grad_(true), sh = randn({32}, g).to(DType::f32);
  Tensor scd = sc.detach().to(gpu).requires_grad_(true);
  sum(mul(channel_affine(big, sc, sh), big)).backward();
  sum(mul(channel_affine(big.to(gpu), scd, sh.to(gpu)), big.to(gpu))).backward();
  agree("channel affine scale gradient", sc.grad(), scd.grad());
  // CIS's clip on 32 x 33 maps of 40 (the block's loops run more than once), about half of them clipped
  Tensor cx = big.detach().requires_grad_(true), cxd = big.to(gpu).requires_grad_(true);
  Tensor cy = channel_l1_clip(cx, 1050.0), cyd = channel_l1_clip(cxd, 1050.0);
  agree("l1 clip forward", cy.detach(), cyd.detach());
  sum(mul(cy, big)).backward();
  sum(mul(cyd, big.to(gpu))).backward();
  agree("l1 clip gradient", cx.grad(), cxd.grad());
}
