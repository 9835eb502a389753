// Differentiable ops: each checks its inputs (ShapeError / ValueError naming the op), runs the kernel of
// kernels/dispatch.h on the tensors' device, and records how to send gradients back (autograd/node.h).
// Any input — weights or the image itself — may require grad; attacks optimise the input this way.
#pragma once
#include "kernels/dispatch.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace sl {

// ---- elementwise (same shapes) ----------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& a, double s);
Tensor add_scalar(const Tensor& a, double s);
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator*(double s, const Tensor& a) { return scale(a, s); }
inline Tensor operator*(const Tensor& a, double s) { return scale(a, s); }
Tensor relu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double alpha = 0.01);  // x > 0 ? x : alpha x
// a + b with NumPy broadcasting (shapes aligned at their last dims, each dim equal or 1): residual and bias adds
Tensor add_broadcast(const Tensor& a, const Tensor& b);
// x * scale[c] + shift[c] for x [N, C, ...]: batch normalisation at inference (statistics folded into scale/shift)
Tensor channel_affine(const Tensor& x, const Tensor& scale, const Tensor& shift);
// CIS's clip: each (sample, channel) map of x [N, C, ...] scaled by min(1, bound / its L1 norm), so no map's L1 norm
// exceeds bound > 0 ([N, F]: one-element maps). Differentiable in x, the factor included.
Tensor channel_l1_clip(const Tensor& x, double bound);
Tensor reshape(const Tensor& x, const Shape& s);  // differentiable view
Tensor flatten(const Tensor& x, int start_dim = 1);

// ---- reductions -------------------------------------------------------------
Tensor sum(const Tensor& x);      // 0-d
Tensor mean(const Tensor& x);     // 0-d
Tensor mean_sq(const Tensor& x);  // mean(x^2), 0-d

// ---- losses (0-d results) -----------------------------------------------------
Tensor mse_loss(const Tensor& a, const Tensor& b, double weight = 1.0);  // weight * mean((a - b)^2)
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);        // logits [N,C], labels int32 [N]
Tensor softmax(const Tensor& x, int axis = -1);                          // along one dim (default: the last)
// weight * TV(x), see kern::tv_forward
Tensor tv_loss(const Tensor& x, double beta = 2.0, double eps = 1e-8, double weight = 1.0);

// ---- layers -------------------------------------------------------------------
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, bool relu = false);  // b may be undefined
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride = 1, int pad = 0, bool relu = false);
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride = 1, int pad = 0,
                        int output_padding = 0);
Tensor max_pool2d(const Tensor& x, int k, int stride);
// The general geometry of kernels/dispatch.h: any kernel size, strides, padding per side, dilation, channel groups
// (weight [C_out, C_in / groups, kh, kw]; conv_transpose2d [C_in, C_out / groups, kh, kw]); a.relu fuses a ReLU
// into conv2d. The square case runs the tuned kernels.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a);
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, const ConvArgs& a);
// Max or average pooling with the geometry of PoolArgs (max_pool2d above is its unpadded square case).
Tensor pool2d(const Tensor& x, const PoolArgs& p);
Tensor global_avg_pool2d(const Tensor& x);  // [N, C, H, W] -> [N, C, 1, 1], the mean of each plane
// max_pool2d(relu(conv2d(x, w, b, stride, pad)), pool_k, pool_stride) as one op (Sequential fuses Conv2d + ReLU +
// MaxPool2d): same values and gradients, without the full-size ReLU mask pass in the backward.
Tensor conv2d_relu_pool(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int pad, int pool_k,
                        int pool_stride);

// ---- randomness (draws from gen; the same (seed, offset) gives the same numbers on every device) --------
// Dropout mask applied always (the defense works at inference too): each element zeroed with probability
// rate; kept elements are scaled by 1/(1-rate) when rescale.
Tensor dropout(const Tensor& x, double rate, bool rescale, Generator& gen);
Tensor add_gaussian_noise(const Tensor& x, double sigma, Generator& gen);  // x + sigma N(0,1)
Tensor add_laplace_noise(const Tensor& x, double b, Generator& gen);       // x + Laplace(0, b)

// ---- no-grad helpers ------------------------------------------------------------
Tensor argmax_rows(const Tensor& x);  // [N, C] -> int32 [N] (on x's device)

}  // namespace sl
