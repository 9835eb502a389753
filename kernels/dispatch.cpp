// Routes each kernel to the backend of its tensors' device.
#include "kernels/dispatch.h"

#include "kernels/cpu/cpu.h"
#ifdef SPLITLEAK_WITH_CUDA
#include "kernels/cuda/cuda.h"
#endif

namespace sl {
MatmulPrecision parse_matmul_precision(const std::string& s) {
  if (s == "fp32") return MatmulPrecision::fp32;
  if (s == "tf32") return MatmulPrecision::tf32;
  if (s == "3xtf32" || s == "tf32x3") return MatmulPrecision::tf32x3;
  throw ValueError(str("unknown matmul precision '", s, "' (expected fp32, tf32 or 3xtf32)"));
}
const char* matmul_precision_name(MatmulPrecision p) {
  return p == MatmulPrecision::fp32 ? "fp32" : p == MatmulPrecision::tf32 ? "tf32" : "3xtf32";
}
}  // namespace sl

namespace sl::kern {

namespace {
MatmulPrecisions g_precision;
}
void set_cuda_matmul_precision(MatmulPrecisions p) { g_precision = p; }
MatmulPrecisions cuda_matmul_precision() { return g_precision; }

namespace {
[[noreturn, maybe_unused]] void no_cuda(const char* fn) {
  throw DeviceError(str(fn, ": tensor is on a CUDA device but this splitleak was built without CUDA"));
}
}  // namespace

#ifdef SPLITLEAK_WITH_CUDA
#define SL_ROUTE(dev, fn, ...) return (dev).is_cpu() ? cpu::fn(__VA_ARGS__) : cuda::fn(__VA_ARGS__)
#else
#define SL_ROUTE(dev, fn, ...)         \
  do {                                 \
    if (!(dev).is_cpu()) no_cuda(#fn); \
    return cpu::fn(__VA_ARGS__);       \
  } while (0)
#endif

void add(const Tensor& a, const Tensor& b, Tensor& out) { SL_ROUTE(a.device(), add, a, b, out); }
void sub(const Tensor& a, const Tensor& b, Tensor& out) { SL_ROUTE(a.device(), sub, a, b, out); }
void mul(const Tensor& a, const Tensor& b, Tensor& out) { SL_ROUTE(a.device(), mul, a, b, out); }
void scale(const Tensor& a, double s, Tensor& out) { SL_ROUTE(a.device(), scale, a, s, out); }
void add_scalar(const Tensor& a, double s, Tensor& out) { SL_ROUTE(a.device(), add_scalar, a, s, out); }
void add_inplace(Tensor& acc, const Tensor& g) { SL_ROUTE(acc.device(), add_inplace, acc, g); }
void axpy(double alpha, const Tensor& x, Tensor& y) { SL_ROUTE(x.device(), axpy, alpha, x, y); }
void relu_forward(const Tensor& x, Tensor& y) { SL_ROUTE(x.device(), relu_forward, x, y); }
void relu_backward(const Tensor& y, const Tensor& gy, Tensor& gx) { SL_ROUTE(y.device(), relu_backward, y, gy, gx); }
void sigmoid_forward(const Tensor& x, Tensor& y) { SL_ROUTE(x.device(), sigmoid_forward, x, y); }
void sigmoid_backward(const Tensor& y, const Tensor& gy, Tensor& gx) {
  SL_ROUTE(y.device(), sigmoid_backward, y, gy, gx);
}
void tanh_forward(const Tensor& x, Tensor& y) { SL_ROUTE(x.device(), tanh_forward, x, y); }
void tanh_backward(const Tensor& y, const Tensor& gy, Tensor& gx) { SL_ROUTE(y.device(), tanh_backward, y, gy, gx); }
void leaky_relu_forward(const Tensor& x, double alpha, Tensor& y) {
  SL_ROUTE(x.device(), leaky_relu_forward, x, alpha, y);
}
void leaky_relu_backward(const Tensor& x, double alpha, const Tensor& gy, Tensor& gx) {
  SL_ROUTE(x.device(), leaky_relu_backward, x, alpha, gy, gx);
}
void add_broadcast(const Tensor& a, const Tensor& b, Tensor& out) { SL_ROUTE(out.device(), add_broadcast, a, b, out); }
void sum_to_shape(const Tensor& g, Tensor& out) { SL_ROUTE(g.device(), sum_to_shape, g, out); }
void channel_affine_forward(const Tensor& x, const Tensor& scale, const Tensor& shift, Tensor& y) {
  SL_ROUTE(x.device(), channel_affine_forward, x, scale, shift, y);
}
void channel_affine_backward(const Tensor& x, const Tensor& scale, const Tensor& gy, Tensor& gx, Tensor& gscale,
                             Tensor& gshift) {
  SL_ROUTE(x.device(), channel_affine_backward, x, scale, gy, gx, gscale, gshift);
}
void channel_l1_clip_forward(const Tensor& x, double bound, Tensor& y, Tensor& factor) {
  SL_ROUTE(x.device(), channel_l1_clip_forward, x, bound, y, factor);
}
void channel_l1_clip_backward(const Tensor& x, const Tensor& factor, const Tensor& gy, double bound, Tensor& gx) {
  SL_ROUTE(x.device(), channel_l1_clip_backward, x, factor, gy, bound, gx);
}
void pool2d_forward(const Tensor& x, const PoolArgs& p, Tensor& y, Tensor& idx) {
  SL_ROUTE(x.device(), pool2d_forward, x, p, y, idx);
}
void pool2d_backward(const Tensor& gy, const Tensor& idx, const PoolArgs& p, Tensor& gx) {
  SL_ROUTE(gy.device(), pool2d_backward, gy, idx, p, gx);
}
void mul_scalar_tensor(const Tensor& a, const Tensor& s, Tensor& out) {
  SL_ROUTE(a.device(), mul_scalar_tensor, a, s, out);
}
bool all_finite(const Tensor& x) { SL_ROUTE(x.device(), all_finite, x); }
void fill_uniform(Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi) {
  SL_ROUTE(t.device(), fill_uniform, t, seed, offset, lo, hi);
}
void fill_normal(Tensor& t, uint64_t seed, uint64_t offset, double mean, double std) {
  SL_ROUTE(t.device(), fill_normal, t, seed, offset, mean, std);
}
void fill_laplace(Tensor& t, uint64_t seed, uint64_t offset, double loc, double scale) {
  SL_ROUTE(t.device(), fill_laplace, t, seed, offset, loc, scale);
}
void dropout_mask(Tensor& mask, uint64_t seed, uint64_t offset, double rate, bool rescale) {
  SL_ROUTE(mask.device(), dropout_mask, mask, seed, offset, rate, rescale);
}
void sum(const Tensor& x, Tensor& out) { SL_ROUTE(x.device(), sum, x, out); }
void fill_from_scalar(const Tensor& s, double factor, Tensor& out) {
  SL_ROUTE(s.device(), fill_from_scalar, s, factor, out);
}
void mean_sq_forward(const Tensor& x, Tensor& out) { SL_ROUTE(x.device(), mean_sq_forward, x, out); }
void mean_sq_backward(const Tensor& x, const Tensor& gout, Tensor& gx) {
  SL_ROUTE(x.device(), mean_sq_backward, x, gout, gx);
}
void argmax_rows(const Tensor& x, Tensor& idx) { SL_ROUTE(x.device(), argmax_rows, x, idx); }
void mse_forward(const Tensor& a, const Tensor& b, Tensor& out, double weight) {
  SL_ROUTE(a.device(), mse_forward, a, b, out, weight);
}
void mse_backward(const Tensor& a, const Tensor& b, const Tensor& gout, Tensor& ga, double weight) {
  SL_ROUTE(a.device(), mse_backward, a, b, gout, ga, weight);
}
void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& probs) {
  SL_ROUTE(logits.device(), cross_entropy_forward, logits, labels, loss, probs);
}
void cross_entropy_backward(const Tensor& probs, const Tensor& labels, const Tensor& gout, Tensor& glogits) {
  SL_ROUTE(probs.device(), cross_entropy_backward, probs, labels, gout, glogits);
}
void softmax_forward(const Tensor& x, Tensor& y, int axis) { SL_ROUTE(x.device(), softmax_forward, x, y, axis); }
void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, int axis) {
  SL_ROUTE(y.device(), softmax_backward, y, gy, gx, axis);
}
void tv_forward(const Tensor& x, double beta, double eps, Tensor& out, double weight) {
  SL_ROUTE(x.device(), tv_forward, x, beta, eps, out, weight);
}
void tv_backward(const Tensor& x, double beta, double eps, const Tensor& gout, Tensor& gx, double weight) {
  SL_ROUTE(x.device(), tv_backward, x, beta, eps, gout, gx, weight);
}
void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, double alpha, double beta) {
  SL_ROUTE(a.device(), gemm, a, trans_a, b, trans_b, c, alpha, beta);
}
void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, bool relu) {
  SL_ROUTE(x.device(), linear_forward, x, w, b, y, relu);
}
void linear_backward(const Tensor& x, const Tensor& w, const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb) {
  SL_ROUTE(x.device(), linear_backward, x, w, gy, gx, gw, gb);
}
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, Tensor& y) {
  SL_ROUTE(x.device(), conv2d_forward, x, w, b, a, y);
}
void conv2d_backward_data(const Tensor& gy, const Tensor& w, ConvArgs a, Tensor& gx) {
  SL_ROUTE(gy.device(), conv2d_backward_data, gy, w, a, gx);
}
void conv2d_backward_weight(const Tensor& x, const Tensor& gy, ConvArgs a, Tensor& gw, Tensor& gb) {
  SL_ROUTE(x.device(), conv2d_backward_weight, x, gy, a, gw, gb);
}
void conv_transpose2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, Tensor& y) {
  SL_ROUTE(x.device(), conv_transpose2d_forward, x, w, b, a, y);
}
void conv_transpose2d_backward_data(const Tensor& gy, const Tensor& w, ConvArgs a, Tensor& gx) {
  SL_ROUTE(gy.device(), conv_transpose2d_backward_data, gy, w, a, gx);
}
void conv_transpose2d_backward_weight(const Tensor& x, const Tensor& gy, ConvArgs a, Tensor& gw, Tensor& gb) {
  SL_ROUTE(x.device(), conv_transpose2d_backward_weight, x, gy, a, gw, gb);
}
void max_pool2d_forward(const Tensor& x, int k, int stride, Tensor& y, Tensor& idx) {
  SL_ROUTE(x.device(), max_pool2d_forward, x, k, stride, y, idx);
}
void max_pool2d_backward(const Tensor& gy, const Tensor& idx, int k, int stride, Tensor& gx) {
  SL_ROUTE(gy.device(), max_pool2d_backward, gy, idx, k, stride, gx);
}
void conv2d_relu_pool_forward(const Tensor& x, const Tensor& w, const Tensor& b, ConvArgs a, int k, int stride,
                              Tensor& y, Tensor& idx) {
  SL_ROUTE(x.device(), conv2d_relu_pool_forward, x, w, b, a, k, stride, y, idx);
}
void max_pool2d_relu_backward(const Tensor& gy, const Tensor& y, const Tensor& idx, int k, int stride, Tensor& gx) {
  SL_ROUTE(gy.device(), max_pool2d_relu_backward, gy, y, idx, k, stride, gx);
}
void accumulate_metrics(const Tensor& loss, const Tensor& logits, const Tensor& labels, Tensor& totals) {
  SL_ROUTE(logits.device(), accumulate_metrics, loss, logits, labels, totals);
}
void sgd_step(Tensor& param, const Tensor& grad, Tensor& momentum_buf, const SgdArgs& a, bool first_step) {
  SL_ROUTE(param.device(), sgd_step, param, grad, momentum_buf, a, first_step);
}
void adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& vmax, const AdamArgs& a, int64_t step) {
  SL_ROUTE(param.device(), adam_step, param, grad, m, v, vmax, a, step);
}

}  // namespace sl::kern
