// The CPU backend: hand-written kernels, multi-threaded with OpenMP, float32 and float64.
// One file per op family (elementwise.cpp, reduce.cpp, loss.cpp, gemm.cpp, conv2d.cpp,
// conv_transpose2d.cpp, pool.cpp, pool2d.cpp, broadcast.cpp, random.cpp, optim.cpp); the API is kernels/dispatch.h's.
#pragma once
#include "kernels/dispatch.h"

namespace sl::cpu {
#include "kernels/backend_api.inc"
}  // namespace sl::cpu
