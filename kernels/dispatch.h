// The backend-neutral kernel API. Every function here runs on the device of its tensors (all arguments
// on one device, one dtype: float32 or float64) by calling the same-named function of kernels/cpu/ or
// kernels/cuda/. Outputs are allocated by the caller with the right shape; kernels overwrite them (or
// accumulate where the name says so). These are raw kernels: no autograd, shapes checked by the caller
// (autograd/ops.cpp) except where a wrong shape would corrupt memory.
//
// Layouts: images NCHW; conv2d weight [Cout, Cin, k, k]; conv_transpose2d weight [Cin, Cout, k, k]
// (PyTorch's layouts); linear weight [out, in]; labels int32 [N]. Scalars (losses, their incoming
// gradient) are 0-d tensors on the same device, so GPU code never has to sync to read them.
#pragma once
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace sl {

struct ConvArgs {
  int stride = 1;
  int pad = 0;
  int output_padding = 0;  // conv_transpose2d only
  bool relu = false;       // conv2d_forward only: the output goes through ReLU (max(v, 0); NaN -> 0) in the epilogue
};

// Output size of a conv2d / max-pool along one axis, and of a conv_transpose2d.
inline int64_t conv_out_size(int64_t in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }
inline int64_t conv_transpose_out_size(int64_t in, int k, int stride, int pad, int out_pad) {
  return (in - 1) * stride - 2 * pad + k + out_pad;
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
