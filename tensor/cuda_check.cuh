// Checked CUDA calls and launches for the CUDA backend (tensor/cuda_runtime.cu and kernels/cuda/*.cu).
// Every failure throws sl::DeviceError whose message starts with the CUDA call or the kernel that failed:
//   SL_CUDA_CHECK(cudaMemsetAsync(p, 0, n, s));  ->  "cudaMemsetAsync: invalid argument [kernels/cuda/x.cu:12]"
//   k<<<g, b, 0, s>>>(...); SL_CUDA_LAUNCH("conv2d_forward_tiled");
//                                             ->  "conv2d_forward_tiled: too many resources requested for launch"
// With the environment variable SPLITLEAK_CUDA_SYNC=1 every launch also waits for its kernel, so a fault inside
// a kernel (illegal address, ...) is reported under that kernel's name instead of at the next synchronisation.
#pragma once
#include <cuda_runtime.h>

#include "tensor/device.h"
#include "tensor/error.h"

namespace sl::cuda_rt {

// Throws DeviceError "<call name>: <CUDA error string> [file:line]" unless e == cudaSuccess.
void check_call(cudaError_t e, const char* call, const char* file, int line);
// After a launch: throws DeviceError "<kernel>: <CUDA error string>" if the launch (or, with
// SPLITLEAK_CUDA_SYNC=1, the kernel) failed.
void check_launch(const char* kernel);

// The engine's stream on device d (created on first use); makes d the current device of the calling thread.
cudaStream_t stream_for(Device d);
// Multiprocessor count of device d (cached).
int sm_count(Device d);
// kTileCounters zeroed 32-bit counters of device d, created with the device's state (never inside a graph
// capture). Kernels that finish work in the "last block to arrive" pattern take a ticket here and reset their
// counter to zero before they end, so the buffer is all zero between launches (launches run in stream order).
constexpr int kTileCounters = 1 << 16;
unsigned* tile_counters(Device d);

}  // namespace sl::cuda_rt

#define SL_CUDA_CHECK(call) ::sl::cuda_rt::check_call((call), #call, __FILE__, __LINE__)
#define SL_CUDA_LAUNCH(kernel_name) ::sl::cuda_rt::check_launch(kernel_name)
