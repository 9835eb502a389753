// The backend-neutral kernel API. Every function here runs on the device of its tensors (all arguments
// on one device, one dtype: float32 or float64) by calling the same-named function of kernels/cpu/ or
// kernels/cuda/. Outputs are allocated by the caller with the right shape; kernels overwrite them (or
// accumulate where the name says so). These are raw kernels: no autograd, shapes checked by the caller
// (autograd/ops.cpp) except where a wrong shape would corrupt memory.
//
// Layouts: images NCHW; conv2d weight [Cout, Cin / groups, kh, kw]; conv_transpose2d weight [Cin, Cout / groups,
// kh, kw] (PyTorch's layouts); linear weight [out, in]; labels int32 [N]. Scalars (losses, their incoming
// gradient) are 0-d tensors on the same device, so GPU code never has to sync to read them.
#pragma once
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace sl {

// The geometry of a conv2d / conv_transpose2d. The first four fields are the square case of the models (one
// stride, the same padding on every side); the rest extend it to ONNX's Conv / ConvTranspose: a column stride,
// padding per side, dilation, channel groups. Unset extensions take the square case's value, so
// ConvArgs{stride, pad, output_padding} means what it always meant.
struct ConvArgs {
  int stride = 1;          // rows (and columns unless stride_w > 0)
  int pad = 0;             // every side (the top only, where a per-side pad below is set)
  int output_padding = 0;  // conv_transpose2d only: rows (and columns unless output_padding_w >= 0)
  bool relu = false;       // conv2d_forward only: the output goes through ReLU (max(v, 0); NaN -> 0) in the epilogue
  int stride_w = 0;        // > 0: the column stride
  int pad_left = -1, pad_bottom = -1, pad_right = -1;  // >= 0: that side's padding
  int dilation_h = 1, dilation_w = 1;                  // distance between kernel taps
  int groups = 1;             // channels split into this many groups, each convolved with its own filters only
  int output_padding_w = -1;  // >= 0: conv_transpose2d's column output padding

  int sh() const { return stride; }
  int sw() const { return stride_w > 0 ? stride_w : stride; }
  int pt() const { return pad; }
  int pl() const { return pad_left >= 0 ? pad_left : pad; }
  int pb() const { return pad_bottom >= 0 ? pad_bottom : pad; }
  int pr() const { return pad_right >= 0 ? pad_right : pad; }
  int oph() const { return output_padding; }
  int opw() const { return output_padding_w >= 0 ? output_padding_w : output_padding; }
  // The square case: one stride, one padding, no dilation, one group (what the tuned CUDA paths take).
  bool uniform() const {
    return sw() == sh() && pl() == pt() && pb() == pt() && pr() == pt() && dilation_h == 1 && dilation_w == 1 &&
           groups == 1 && opw() == oph();
  }
};

// Output size of a conv2d / max-pool along one axis, and of a conv_transpose2d.
inline int64_t conv_out_size(int64_t in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }
inline int64_t conv_transpose_out_size(int64_t in, int k, int stride, int pad, int out_pad) {
  return (in - 1) * stride - 2 * pad + k + out_pad;
}
// The same with padding per side and dilation: a kernel of k taps spans (k - 1) dilation + 1 positions.
// (conv_out_size_ext is < 1 when the window does not fit the padded input.)
inline int64_t conv_out_size_ext(int64_t in, int k, int stride, int pad_begin, int pad_end, int dilation) {
  const int64_t span = int64_t(k - 1) * dilation + 1, room = in + pad_begin + pad_end - span;
  return room < 0 ? 0 : room / stride + 1;
}
inline int64_t conv_transpose_out_size_ext(int64_t in, int k, int stride, int pad_begin, int pad_end, int dilation,
                                           int out_pad) {
  return (in - 1) * stride - pad_begin - pad_end + int64_t(k - 1) * dilation + 1 + out_pad;
}

// The geometry of a 2-d pooling window (ONNX MaxPool / AveragePool / GlobalAveragePool): kh x kw taps, dilated,
// strided, over the input with padding per side that never contributes a value (max ignores it; average divides by
// the taps inside the input, or with count_include_pad by the taps inside the padded input).
enum class PoolMode : uint8_t { max, avg };
struct PoolArgs {
  PoolMode mode = PoolMode::max;
  int kh = 1, kw = 1, sh = 1, sw = 1;
  int pt = 0, pl = 0, pb = 0, pr = 0;
  int dh = 1, dw = 1;
  bool ceil_mode = false;  // the output size rounds up (a last, partial window), as PyTorch: it starts in the input
  bool count_include_pad = false;
};
// Output size of a pooling window along one axis (0 when no window fits).
inline int64_t pool_out_size(int64_t in, int k, int stride, int pad_begin, int pad_end, int dilation, bool ceil_mode) {
  const int64_t span = int64_t(k - 1) * dilation + 1, room = in + pad_begin + pad_end - span;
  if (room < 0) return 0;
  int64_t out = (ceil_mode ? (room + stride - 1) / stride : room / stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad_begin) --out;  // the last window must start inside
  return out;
}

struct SgdArgs {
  double lr = 0.01, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};
struct AdamArgs {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool amsgrad = false;
};

// Arithmetic of float32 matrix products on CUDA (convolutions and GEMMs; the CPU always computes in float32):
//   fp32    FFMA in float32 (the default);
//   tf32    tensor cores on operands rounded to TF32 (10-bit mantissa): ~1e-3 relative error, several times faster;
//   tf32x3  ("3xtf32") tensor cores, each operand split into TF32 high and low parts, three products per term:
//           float32-level error (compare PyTorch's allow_tf32 flags and cuBLAS's 3xTF32 mode).
// Separate settings for convolutions (conv2d and conv_transpose2d) and for GEMMs (gemm, linear), as PyTorch keeps
// cudnn.allow_tf32 and matmul.allow_tf32. Process-wide; float64 is never affected.
enum class MatmulPrecision : uint8_t { fp32, tf32, tf32x3 };
struct MatmulPrecisions {
  MatmulPrecision conv = MatmulPrecision::fp32, gemm = MatmulPrecision::fp32;
};
namespace kern {
void set_cuda_matmul_precision(MatmulPrecisions p);
MatmulPrecisions cuda_matmul_precision();
}  // namespace kern
// "fp32", "tf32" or "3xtf32" (ValueError otherwise), and back.
MatmulPrecision parse_matmul_precision(const std::string& s);
const char* matmul_precision_name(MatmulPrecision p);

namespace kern {
// The functions, each documented where it is declared:
#include "kernels/backend_api.inc"
}  // namespace kern
}  // namespace sl
