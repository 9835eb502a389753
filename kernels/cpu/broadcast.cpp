// Broadcasting and per-channel kernels on the CPU:
//   add_broadcast   out[o] = a[o . sa] + b[o . sb]                (kernels/broadcast.h: strides 0 where broadcast)
//   sum_to_shape    out[k] = sum over the reduced dims of g        (in double, in index order)
//   channel_affine  y[n, c, q] = x[n, c, q] * scale[c] + shift[c]
//                   gx = gy * scale[c],  gscale[c] = sum_{n, q} gy x,  gshift[c] = sum_{n, q} gy   (double sums)
//   channel_l1_clip y[n, c, q] = x[n, c, q] * f[n, c],  f = min(1, bound / sum_q |x[n, c, q]|)   (CIS's clip)
//                   gx = f gy - [f < 1] f^2 / bound * sign(x) * sum_q gy x                       (double sums)
#include "kernels/broadcast.h"

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace sl::cpu {

namespace {
void check_contig(const Tensor& t, const char* op, const char* name) {
  SL_CHECK(t.defined(), ValueError, op, ": ", name, " is undefined");
  SL_CHECK(t.is_contiguous(), ValueError, op, ": ", name, " must be contiguous");
}

// [N, C, Q] view of a channel tensor x (rank >= 2): Q = the product of the dims after C.
struct Planes {
  int64_t n, c, q;
};
Planes planes_of(const Tensor& x, const Tensor& scale, const char* op) {
  SL_CHECK(x.dim() >= 2, ShapeError, op, ": input ", x.str(), " must have a channel dim [N, C, ...]");
  SL_CHECK(scale.dim() == 1 && scale.size(0) == x.size(1), ShapeError, op, ": scale ", scale.str(), " must have ",
           x.size(1), " elements");
  const int64_t n = x.size(0), c = x.size(1);
  return {n, c, n * c == 0 ? 0 : x.numel() / (n * c)};
}
}  // namespace

void add_broadcast(const Tensor& a, const Tensor& b, Tensor& out) {
  check_contig(a, "add_broadcast", "a");
  check_contig(b, "add_broadcast", "b");
  const bcast::Index ix = bcast::index_of(a.shape(), b.shape(), out.shape(), "add_broadcast");
  dispatch_float(out, "add_broadcast", [&](auto t) {
    using T = decltype(t);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    const int64_t n = out.numel();
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
    for (int64_t o = 0; o < n; ++o) {
      int64_t ia, ib;
      ix.offsets(o, ia, ib);
      po[o] = pa[ia] + pb[ib];
    }
  });
}

void sum_to_shape(const Tensor& g, Tensor& out) {
  check_contig(g, "sum_to_shape", "gradient");
  check_contig(out, "sum_to_shape", "output");
  const bcast::Reduce r = bcast::reduce_of(g.shape(), out.shape(), "sum_to_shape");
  SL_CHECK(r.kept == out.numel(), ShapeError, "sum_to_shape: output ", out.str(), " does not fit ", g.str());
  dispatch_float(g, "sum_to_shape", [&](auto t) {
    using T = decltype(t);
    const T* pg = g.data<T>();
    T* po = out.data<T>();
#pragma omp parallel for if (g.numel() > kParallelGrain) schedule(static)
    for (int64_t k = 0; k < r.kept; ++k) {
      const int64_t base = r.kept_offset(k);
      double s = 0;
      for (int64_t q = 0; q < r.reduced; ++q) s += double(pg[base + r.reduced_offset(q)]);
      po[k] = T(s);
    }
  });
}

void channel_affine_forward(const Tensor& x, const Tensor& scale, const Tensor& shift, Tensor& y) {
  const Planes p = planes_of(x, scale, "channel_affine");
  check_shape(shift, scale.shape(), "channel_affine shift");
  dispatch_float(x, "channel_affine", [&](auto t) {
    using T = decltype(t);
    const T* px = x.data<T>();
    const T* ps = scale.data<T>();
    const T* pt = shift.data<T>();
    T* py = y.data<T>();
#pragma omp parallel for if (x.numel() > kParallelGrain) schedule(static)
    for (int64_t pl = 0; pl < p.n * p.c; ++pl) {
      const T s = ps[pl % p.c], h = pt[pl % p.c];
      const T* xr = px + pl * p.q;
      T* yr = py + pl * p.q;
      for (int64_t i = 0; i < p.q; ++i) yr[i] = xr[i] * s + h;
    }
  });
}

void channel_affine_backward(const Tensor& x, const Tensor& scale, const Tensor& gy, Tensor& gx, Tensor& gscale,
                             Tensor& gshift) {
  const Planes p = planes_of(x, scale, "channel_affine_backward");
  dispatch_float(x, "channel_affine_backward", [&](auto t) {
    using T = decltype(t);
    const T* px = x.data<T>();
    const T* ps = scale.data<T>();
    const T* pg = gy.data<T>();
    if (gx.defined()) {
      T* o = gx.data<T>();
#pragma omp parallel for if (x.numel() > kParallelGrain) schedule(static)
      for (int64_t pl = 0; pl < p.n * p.c; ++pl) {
        const T s = ps[pl % p.c];
        for (int64_t i = 0; i < p.q; ++i) o[pl * p.q + i] = pg[pl * p.q + i] * s;
      }
    }
    if (!gscale.defined() && !gshift.defined()) return;
#pragma omp parallel for if (x.numel() > kParallelGrain) schedule(static)
    for (int64_t c = 0; c < p.c; ++c) {
      double sx = 0, s1 = 0;
      for (int64_t n = 0; n < p.n; ++n) {
        const int64_t off = (n * p.c + c) * p.q;
        for (int64_t i = 0; i < p.q; ++i) {
          sx += double(pg[off + i]) * double(px[off + i]);
          s1 += double(pg[off + i]);
        }
      }
      if (gscale.defined()) gscale.data<T>()[c] = T(sx);
      if (gshift.defined()) gshift.data<T>()[c] = T(s1);
    }
  });
}

void channel_l1_clip_forward(const Tensor& x, double bound, Tensor& y, Tensor& factor) {
  SL_CHECK(x.dim() >= 2, ShapeError, "channel_l1_clip: input ", x.str(), " must be [N, C, ...]");
  const int64_t maps = x.size(0) * x.size(1), q = maps == 0 ? 0 : x.numel() / maps;
  check_shape(factor, Shape{x.size(0), x.size(1)}, "channel_l1_clip factor");
  dispatch_float(x, "channel_l1_clip", [&](auto t) {
    using T = decltype(t);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    T* pf = factor.data<T>();
#pragma omp parallel for if (x.numel() > kParallelGrain) schedule(static)
    for (int64_t m = 0; m < maps; ++m) {
      const T* xr = px + m * q;
      double s = 0;
      for (int64_t i = 0; i < q; ++i) s += std::abs(double(xr[i]));
      const T f = T(s > bound ? bound / s : 1.0);
      pf[m] = f;
      T* yr = py + m * q;
      for (int64_t i = 0; i < q; ++i) yr[i] = xr[i] * f;
    }
  });
}

void channel_l1_clip_backward(const Tensor& x, const Tensor& factor, const Tensor& gy, double bound, Tensor& gx) {
  SL_CHECK(x.dim() >= 2, ShapeError, "channel_l1_clip_backward: input ", x.str(), " must be [N, C, ...]");
  const int64_t maps = x.size(0) * x.size(1), q = maps == 0 ? 0 : x.numel() / maps;
  check_shape(factor, Shape{x.size(0), x.size(1)}, "channel_l1_clip_backward factor");
  dispatch_float(x, "channel_l1_clip_backward", [&](auto t) {
    using T = decltype(t);
    const T* px = x.data<T>();
    const T* pf = factor.data<T>();
    const T* pg = gy.data<T>();
    T* o = gx.data<T>();
#pragma omp parallel for if (x.numel() > kParallelGrain) schedule(static)
    for (int64_t m = 0; m < maps; ++m) {
      const int64_t at = m * q;
      const double f = double(pf[m]);
      double c = 0;  // f^2 / bound * sum(gy x): the part from the derivative of the factor
      if (f < 1) {
        double dot = 0;
        for (int64_t i = 0; i < q; ++i) dot += double(pg[at + i]) * double(px[at + i]);
        c = f * f / bound * dot;
      }
      for (int64_t i = 0; i < q; ++i) {
        const double xi = double(px[at + i]);
        o[at + i] = T(f * double(pg[at + i]) - c * double((xi > 0) - (xi < 0)));
      }
    }
  });
}

}  // namespace sl::cpu
