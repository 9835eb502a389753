// The CUDA backend: hand-written kernels, float32 and float64, all queued on the engine's stream of the tensors'
// device (tensor/cuda_runtime.cu). One file per op family, named as in kernels/cpu/ (elementwise.cu, random.cu,
// reduce.cu, loss.cu, optim.cu, gemm.cu, conv2d.cu, conv_transpose2d.cu, pool.cu, pool2d.cu, broadcast.cu; the
// general convolution geometry in conv_general.cu); the API is kernels/dispatch.h's.
// Fused multi-tensor optimizer steps: kernels/cuda/optim_multi.h.
#pragma once
#include "kernels/dispatch.h"

namespace sl::cuda {
#include "kernels/backend_api.inc"

// Test hook: launches a kernel with an impossible block size, so the launch check throws
// DeviceError("debug_invalid_launch: invalid configuration argument").
void debug_invalid_launch();
// Test hook: forces the GEMM engine's tile configuration for float (0 .. kGemmConfigs-1, the list in
// kernels/cuda/igemm.cuh; -1: the cost model's choice) and its split-K factor (0: the cost model's), for every
// later gemm/linear/conv call.
constexpr int kGemmConfigs = 9;
void debug_force_gemm_plan(int cfg, int slices);
// Test hook: forces the tensor-core path's tile (0: 128x128, 1: 64x128; -1: its cost model's choice) and split-K
// factor (0: 1) while the matmul precision is tf32 or 3xtf32 (kern::set_cuda_matmul_precision).
void debug_force_mma_plan(int cfg, int slices);
// Test hook: the direct small-channel convolution (kernels/cuda/conv_direct.cuh): -1 its own choice, 0 never,
// 1..debug_conv_direct_blocks() always where it applies, with that register block (conv_direct.cuh's kBlocks).
void debug_force_conv_direct(int mode);
int debug_conv_direct_blocks();
// Test hook: the Winograd F(4x4, 3x3) path of 3x3 stride-1 float convolutions (kernels/cuda/conv_winograd.cuh):
// -1 its own choice, 0 never, 1 wherever it applies.
void debug_force_conv_winograd(int mode);
}  // namespace sl::cuda
