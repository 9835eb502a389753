// Elementwise kernels: out[i] = f(a[i], b[i]).  Backward rules:
//   relu:    y = max(x, 0),        dx = dy * [y > 0]
//   sigmoid: y = 1 / (1 + e^-x),   dx = dy * y * (1 - y)
//   tanh:    y = tanh(x),          dx = dy * (1 - y^2)
//   leaky:   y = x > 0 ? x : a x,  dx = dy * (x > 0 ? 1 : a)
#include <cmath>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace sl::cpu {

namespace {
template <class T, class F>
void map2(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
  int64_t n = out.numel();
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
}
template <class T, class F>
void map1(const Tensor& a, Tensor& out, F f) {
  const T* pa = a.data<T>();
  T* po = out.data<T>();
  int64_t n = out.numel();
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i]);
}
}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& out) {
  dispatch_float(a, "add", [&](auto t) {
    using T = decltype(t);
    map2<T>(a, b, out, [](T x, T y) { return x + y; });
  });
}
void sub(const Tensor& a, const Tensor& b, Tensor& out) {
  dispatch_float(a, "sub", [&](auto t) {
    using T = decltype(t);
    map2<T>(a, b, out, [](T x, T y) { return x - y; });
  });
}
void mul(const Tensor& a, const Tensor& b, Tensor& out) {
  dispatch_float(a, "mul", [&](auto t) {
    using T = decltype(t);
    map2<T>(a, b, out, [](T x, T y) { return x * y; });
  });
}
void scale(const Tensor& a, double s, Tensor& out) {
  dispatch_float(a, "scale", [&](auto t) {
    using T = decltype(t);
    T k = T(s);
    map1<T>(a, out, [k](T x) { return k * x; });
  });
}
void add_scalar(const Tensor& a, double s, Tensor& out) {
  dispatch_float(a, "add_scalar", [&](auto t) {
    using T = decltype(t);
    T k = T(s);
    map1<T>(a, out, [k](T x) { return x + k; });
  });
}
void add_inplace(Tensor& acc, const Tensor& g) { add(acc, g, acc); }
void axpy(double alpha, const Tensor& x, Tensor& y) {
  dispatch_float(x, "axpy", [&](auto t) {
    using T = decltype(t);
    T k = T(alpha);
    map2<T>(x, y, y, [k](T a, T b) { return b + k * a; });
  });
}
void relu_forward(const Tensor& x, Tensor& y) {
  dispatch_float(x, "relu", [&](auto t) {
    using T = decltype(t);
    map1<T>(x, y, [](T v) { return v > T(0) ? v : T(0); });
  });
}
void relu_backward(const Tensor& y, const Tensor& gy, Tensor& gx) {
  dispatch_float(y, "relu_backward", [&](auto t) {
    using T = decltype(t);
    map2<T>(y, gy, gx, [](T v, T g) { return v > T(0) ? g : T(0); });
  });
}
void sigmoid_forward(const Tensor& x, Tensor& y) {
  dispatch_float(x, "sigmoid", [&](auto t) {
    using T = decltype(t);
    // Stable for large |x|: e^-|x| never overflows.
    map1<T>(x, y, [](T v) {
      T e = std::exp(-std::fabs(v));
      return v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
    });
  });
}
void sigmoid_backward(const Tensor& y, const Tensor& gy, Tensor& gx) {
  dispatch_float(y, "sigmoid_backward", [&](auto t) {
    using T = decltype(t);
    map2<T>(y, gy, gx, [](T v, T g) { return g * v * (T(1) - v); });
  });
}
void tanh_forward(const Tensor& x, Tensor& y) {
  dispatch_float(x, "tanh", [&](auto t) {
    using T = decltype(t);
    map1<T>(x, y, [](T v) { return std::tanh(v); });
  });
}
void tanh_backward(const Tensor& y, const Tensor& gy, Tensor& gx) {
  dispatch_float(y, "tanh_backward", [&](auto t) {
    using T = decltype(t);
    map2<T>(y, gy, gx, [](T v, T g) { return g * (T(1) - v * v); });
  });
}
void leaky_relu_forward(const Tensor& x, double alpha, Tensor& y) {
  dispatch_float(x, "leaky_relu", [&](auto t) {
    using T = decltype(t);
    const T a = T(alpha);
    map1<T>(x, y, [a](T v) { return v > T(0) ? v : a * v; });
  });
}
void leaky_relu_backward(const Tensor& x, double alpha, const Tensor& gy, Tensor& gx) {
  dispatch_float(x, "leaky_relu_backward", [&](auto t) {
    using T = decltype(t);
    const T a = T(alpha);
    map2<T>(x, gy, gx, [a](T v, T g) { return v > T(0) ? g : a * g; });
  });
}
void mul_scalar_tensor(const Tensor& a, const Tensor& s, Tensor& out) {
  dispatch_float(a, "mul_scalar_tensor", [&](auto t) {
    using T = decltype(t);
    T k = s.data<T>()[0];
    map1<T>(a, out, [k](T x) { return k * x; });
  });
}
bool all_finite(const Tensor& x) {
  return dispatch_float(x, "all_finite", [&](auto t) {
    using T = decltype(t);
    const T* p = x.data<T>();
    int64_t n = x.numel();
    int bad = 0;
#pragma omp parallel for if (n > kParallelGrain) reduction(| : bad)
    for (int64_t i = 0; i < n; ++i) bad |= !std::isfinite(p[i]);
    return bad == 0;
  });
}

}  // namespace sl::cpu
