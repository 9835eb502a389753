// The seam between tensor storage and the CUDA runtime. Built without CUDA, every call but available()
// throws DeviceError; with CUDA, tensor/cuda_runtime.cu implements it (caching allocator, copies, streams).
#pragma once
#include <cstddef>

#include "tensor/device.h"
#include "tensor/storage.h"

namespace sl::cuda_rt {

bool available();                       // a GPU answers; never throws
Allocator& allocator(int device);       // stream-ordered caching allocator of that device
void copy(void* dst, Device dd, const void* src, Device sd, size_t bytes);
void zero(void* dst, Device dev, size_t bytes);
void synchronize();                     // waits for the engine's stream

}  // namespace sl::cuda_rt
