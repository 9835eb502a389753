// Elementwise ops, reductions, losses and noise with their backward rules (layers: ops_layers.cpp).
#include "autograd/ops.h"

#include <cmath>

#include "autograd/ops_common.h"
#include "kernels/broadcast.h"

namespace sl {

using detail::check_float;
using detail::check_pair;
using detail::empty_like;
using detail::scalar_like;

Tensor add(const Tensor& a0, const Tensor& b0) {
  check_pair(a0, b0, "add");
  Tensor a = a0.contiguous(), b = b0.contiguous(), y = empty_like(a);
  kern::add(a, b, y);
  return record("add", {a0, b0}, y, [](const Tensor& g) { return std::vector<Tensor>{g, g}; });
}

Tensor sub(const Tensor& a0, const Tensor& b0) {
  check_pair(a0, b0, "sub");
  Tensor a = a0.contiguous(), b = b0.contiguous(), y = empty_like(a);
  kern::sub(a, b, y);
  return record("sub", {a0, b0}, y, [](const Tensor& g) {
    Tensor gb = empty_like(g);
    kern::scale(g, -1.0, gb);
    return std::vector<Tensor>{g, gb};
  });
}

Tensor mul(const Tensor& a0, const Tensor& b0) {
  check_pair(a0, b0, "mul");
  Tensor a = a0.contiguous(), b = b0.contiguous(), y = empty_like(a);
  kern::mul(a, b, y);
  bool ga = a0.requires_grad(), gb = b0.requires_grad();
  return record("mul", {a0, b0}, y, [a, b, ga, gb](const Tensor& g) {
    Tensor da, db;
    if (ga) {
      da = empty_like(g);
      kern::mul(g, b, da);
    }
    if (gb) {
      db = empty_like(g);
      kern::mul(g, a, db);
    }
    return std::vector<Tensor>{da, db};
  });
}

Tensor scale(const Tensor& a0, double s) {
  check_float(a0, "scale");
  Tensor a = a0.contiguous(), y = empty_like(a);
  kern::scale(a, s, y);
  return record("scale", {a0}, y, [s](const Tensor& g) {
    Tensor d = empty_like(g);
    kern::scale(g, s, d);
    return std::vector<Tensor>{d};
  });
}

Tensor add_scalar(const Tensor& a0, double s) {
  check_float(a0, "add_scalar");
  Tensor a = a0.contiguous(), y = empty_like(a);
  kern::add_scalar(a, s, y);
  return record("add_scalar", {a0}, y, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor relu(const Tensor& x0) {
  check_float(x0, "relu");
  Tensor x = x0.contiguous(), y = empty_like(x);
  kern::relu_forward(x, y);
  return record("relu", {x0}, y, [y = y.detach()](const Tensor& g) {  // detached: no cycle through y
    Tensor d = empty_like(g);
    kern::relu_backward(y, g, d);
    return std::vector<Tensor>{d};
  });
}

Tensor sigmoid(const Tensor& x0) {
  check_float(x0, "sigmoid");
  Tensor x = x0.contiguous(), y = empty_like(x);
  kern::sigmoid_forward(x, y);
  return record("sigmoid", {x0}, y, [y = y.detach()](const Tensor& g) {
    Tensor d = empty_like(g);
    kern::sigmoid_backward(y, g, d);
    return std::vector<Tensor>{d};
  });
}

Tensor tanh(const Tensor& x0) {
  check_float(x0, "tanh");
  Tensor x = x0.contiguous(), y = empty_like(x);
  kern::tanh_forward(x, y);
  return record("tanh", {x0}, y, [y = y.detach()](const Tensor& g) {
    Tensor d = empty_like(g);
    kern::tanh_backward(y, g.contiguous(), d);
    return std::vector<Tensor>{d};
  });
}

Tensor leaky_relu(const Tensor& x0, double alpha) {
  check_float(x0, "leaky_relu");
  SL_CHECK(std::isfinite(alpha), ValueError, "leaky_relu: alpha must be finite, got ", alpha);
  Tensor x = x0.contiguous(), y = empty_like(x);
  kern::leaky_relu_forward(x, alpha, y);
  return record("leaky_relu", {x0}, y, [x, alpha](const Tensor& g) {
    Tensor d = empty_like(g);
    kern::leaky_relu_backward(x, alpha, g.contiguous(), d);
    return std::vector<Tensor>{d};
  });
}

Tensor add_broadcast(const Tensor& a0, const Tensor& b0) {
  check_float(a0, "add_broadcast", "first input");
  check_float(b0, "add_broadcast", "second input");
  check_same(a0, b0, "add_broadcast");
  if (a0.shape() == b0.shape()) return add(a0, b0);
  const Shape out = bcast::broadcast_shape(a0.shape(), b0.shape(), "add_broadcast");
  Tensor a = a0.contiguous(), b = b0.contiguous();
  Tensor y = Tensor::empty(out, a.dtype(), a.device());
  kern::add_broadcast(a, b, y);
  const Shape sa = a.shape(), sb = b.shape();
  const bool ga = a0.requires_grad(), gb = b0.requires_grad();
  return record("add_broadcast", {a0, b0}, y, [sa, sb, out, ga, gb](const Tensor& g0) {
    const Tensor g = g0.contiguous();
    auto reduce = [&](const Shape& s) {
      if (s == out) return g;
      Tensor d = Tensor::empty(s, g.dtype(), g.device());
      kern::sum_to_shape(g, d);
      return d;
    };
    return std::vector<Tensor>{ga ? reduce(sa) : Tensor(), gb ? reduce(sb) : Tensor()};
  });
}

Tensor channel_affine(const Tensor& x0, const Tensor& s0, const Tensor& t0) {
  const char* op = "channel_affine";
  check_float(x0, op);
  check_float(s0, op, "scale");
  check_float(t0, op, "shift");
  SL_CHECK(x0.dim() >= 2, ShapeError, op, ": input ", x0.shape().str(), " must be [N, C, ...]");
  SL_CHECK(s0.dim() == 1 && s0.size(0) == x0.size(1) && t0.shape() == s0.shape(), ShapeError, op, ": scale ",
           s0.shape().str(), " and shift ", t0.shape().str(), " must both be [", x0.size(1), "] for input ",
           x0.shape().str());
  check_same(x0, s0, op);
  check_same(x0, t0, op);
  Tensor x = x0.contiguous(), sc = s0.contiguous(), sh = t0.contiguous(), y = empty_like(x);
  kern::channel_affine_forward(x, sc, sh, y);
  const bool gx = x0.requires_grad(), gs = s0.requires_grad(), gt = t0.requires_grad();
  return record(op, {x0, s0, t0}, y, [x, sc, gx, gs, gt](const Tensor& g) {
    Tensor dx = gx ? empty_like(x) : Tensor(), ds = gs ? empty_like(sc) : Tensor(), dt = gt ? empty_like(sc) : Tensor();
    kern::channel_affine_backward(x, sc, g.contiguous(), dx, ds, dt);
    return std::vector<Tensor>{dx, ds, dt};
  });
}

Tensor channel_l1_clip(const Tensor& x0, double bound) {
  const char* op = "channel_l1_clip";
  check_float(x0, op);
  SL_CHECK(x0.dim() >= 2, ShapeError, op, ": input ", x0.shape().str(), " must be [N, C, ...]");
  SL_CHECK(std::isfinite(bound) && bound > 0, ValueError, op, ": the bound must be finite and > 0, got ", bound);
  Tensor x = x0.contiguous(), y = empty_like(x);
  Tensor f = Tensor::empty(Shape{x.size(0), x.size(1)}, x.dtype(), x.device());
  kern::channel_l1_clip_forward(x, bound, y, f);
  return record(op, {x0}, y, [x, f, bound](const Tensor& g) {
    Tensor d = empty_like(x);
    kern::channel_l1_clip_backward(x, f, g.contiguous(), bound, d);
    return std::vector<Tensor>{d};
  });
}

Tensor reshape(const Tensor& x, const Shape& s) {
  Tensor y = x.reshape(s);
  Shape in = x.shape();
  return record("reshape", {x}, y, [in](const Tensor& g) { return std::vector<Tensor>{g.reshape(in)}; });
}

Tensor flatten(const Tensor& x, int start_dim) {
  Tensor y = x.flatten(start_dim);
  Shape in = x.shape();
  return record("flatten", {x}, y, [in](const Tensor& g) { return std::vector<Tensor>{g.reshape(in)}; });
}

Tensor sum(const Tensor& x0) {
  check_float(x0, "sum");
  Tensor x = x0.contiguous(), y = scalar_like(x);
  kern::sum(x, y);
  Shape in = x.shape();
  return record("sum", {x0}, y, [in](const Tensor& g) {
    Tensor d = Tensor::empty(in, g.dtype(), g.device());
    kern::fill_from_scalar(g, 1.0, d);
    return std::vector<Tensor>{d};
  });
}

Tensor mean(const Tensor& x0) {
  check_float(x0, "mean");
  SL_CHECK(x0.numel() > 0, ShapeError, "mean of an empty tensor ", x0.str());
  Tensor x = x0.contiguous(), s = scalar_like(x), y = scalar_like(x);
  kern::sum(x, s);
  double n = double(x.numel());
  kern::scale(s, 1.0 / n, y);
  Shape in = x.shape();
  return record("mean", {x0}, y, [in, n](const Tensor& g) {
    Tensor d = Tensor::empty(in, g.dtype(), g.device());
    kern::fill_from_scalar(g, 1.0 / n, d);
    return std::vector<Tensor>{d};
  });
}

Tensor mean_sq(const Tensor& x0) {
  check_float(x0, "mean_sq");
  Tensor x = x0.contiguous(), y = scalar_like(x);
  kern::mean_sq_forward(x, y);
  return record("mean_sq", {x0}, y, [x](const Tensor& g) {
    Tensor d = empty_like(x);
    kern::mean_sq_backward(x, g, d);
    return std::vector<Tensor>{d};
  });
}

Tensor mse_loss(const Tensor& a0, const Tensor& b0, double weight) {
  check_pair(a0, b0, "mse_loss");
  Tensor a = a0.contiguous(), b = b0.contiguous(), y = scalar_like(a);
  kern::mse_forward(a, b, y, weight);
  bool gb = b0.requires_grad();
  return record("mse_loss", {a0, b0}, y, [a, b, gb, weight](const Tensor& g) {
    Tensor da = empty_like(a), db;
    kern::mse_backward(a, b, g, da, weight);
    if (gb) {
      db = empty_like(a);
      kern::scale(da, -1.0, db);
    }
    return std::vector<Tensor>{da, db};
  });
}

Tensor cross_entropy(const Tensor& z0, const Tensor& labels0) {
  check_float(z0, "cross_entropy", "logits");
  SL_CHECK(z0.dim() == 2, ShapeError, "cross_entropy: logits must be [N, C], got ", z0.shape().str());
  SL_CHECK(labels0.defined() && labels0.dtype() == DType::i32, ValueError, "cross_entropy: labels must be int32");
  SL_CHECK(labels0.dim() == 1 && labels0.size(0) == z0.size(0), ShapeError, "cross_entropy: ", z0.size(0),
           " rows of logits but labels ", labels0.shape().str());
  SL_CHECK(labels0.device() == z0.device(), ValueError, "cross_entropy: labels on ", labels0.device().str(),
           ", logits on ", z0.device().str());
  Tensor z = z0.contiguous(), labels = labels0.contiguous(), y = scalar_like(z), probs = empty_like(z);
  kern::cross_entropy_forward(z, labels, y, probs);
  return record("cross_entropy", {z0}, y, [probs, labels](const Tensor& g) {
    Tensor d = empty_like(probs);
    kern::cross_entropy_backward(probs, labels, g, d);
    return std::vector<Tensor>{d};
  });
}

Tensor softmax(const Tensor& x0, int axis) {
  check_float(x0, "softmax");
  SL_CHECK(x0.dim() >= 1 && x0.numel() > 0, ShapeError, "softmax: needs a non-empty tensor, got ", x0.shape().str());
  const int r = int(x0.dim());
  SL_CHECK(axis >= -r && axis < r, ValueError, "softmax: axis ", axis, " out of range for ", x0.shape().str());
  Tensor x = x0.contiguous(), y = empty_like(x);
  kern::softmax_forward(x, y, axis);
  return record("softmax", {x0}, y, [y = y.detach(), axis](const Tensor& g) {
    Tensor d = empty_like(y);
    kern::softmax_backward(y, g.contiguous(), d, axis);
    return std::vector<Tensor>{d};
  });
}

Tensor tv_loss(const Tensor& x0, double beta, double eps, double weight) {
  check_float(x0, "tv_loss");
  SL_CHECK(x0.dim() == 4, ShapeError, "tv_loss: needs an image batch [N, C, H, W], got ", x0.shape().str());
  SL_CHECK(beta > 0 && eps >= 0, ValueError, "tv_loss: needs beta > 0 and eps >= 0, got beta ", beta, ", eps ", eps);
  SL_CHECK(beta >= 2 || eps > 0, ValueError, "tv_loss: beta ", beta, " < 2 needs a smoothing eps > 0");
  Tensor x = x0.contiguous(), y = scalar_like(x);
  kern::tv_forward(x, beta, eps, y, weight);
  return record("tv_loss", {x0}, y, [x, beta, eps, weight](const Tensor& g) {
    Tensor d = empty_like(x);
    kern::tv_backward(x, beta, eps, g, d, weight);
    return std::vector<Tensor>{d};
  });
}

Tensor dropout(const Tensor& x0, double rate, bool rescale, Generator& gen) {
  check_float(x0, "dropout");
  SL_CHECK(rate >= 0 && rate <= 1, ValueError, "dropout: rate must be in [0, 1], got ", rate);
  Tensor x = x0.contiguous(), mask = empty_like(x), y = empty_like(x);
  kern::dropout_mask(mask, gen.seed(), gen.take(uint64_t(x.numel())), rate, rescale);
  kern::mul(x, mask, y);
  return record("dropout", {x0}, y, [mask](const Tensor& g) {
    Tensor d = empty_like(g);
    kern::mul(g, mask, d);
    return std::vector<Tensor>{d};
  });
}

namespace {
template <class Fill>
Tensor add_noise(const Tensor& x0, const char* op, Fill fill) {
  check_float(x0, op);
  Tensor x = x0.contiguous(), noise = empty_like(x), y = empty_like(x);
  fill(noise);
  kern::add(x, noise, y);
  return record(op, {x0}, y, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}
}  // namespace

Tensor add_gaussian_noise(const Tensor& x, double sigma, Generator& gen) {
  SL_CHECK(sigma >= 0, ValueError, "gaussian noise: sigma must be >= 0, got ", sigma);
  return add_noise(x, "gaussian_noise",
                   [&](Tensor& n) { kern::fill_normal(n, gen.seed(), gen.take(uint64_t(n.numel())), 0.0, sigma); });
}

Tensor add_laplace_noise(const Tensor& x, double b, Generator& gen) {
  SL_CHECK(b >= 0, ValueError, "laplace noise: scale must be >= 0, got ", b);
  return add_noise(x, "laplace_noise",
                   [&](Tensor& n) { kern::fill_laplace(n, gen.seed(), gen.take(uint64_t(n.numel())), 0.0, b); });
}

Tensor argmax_rows(const Tensor& x0) {
  check_float(x0, "argmax_rows");
  SL_CHECK(x0.dim() == 2, ShapeError, "argmax_rows: needs [N, C], got ", x0.shape().str());
  Tensor x = x0.contiguous(), idx = Tensor::empty(Shape{x.size(0)}, DType::i32, x.device());
  kern::argmax_rows(x, idx);
  return idx;
}

}  // namespace sl
