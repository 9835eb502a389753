// The seam between tensor storage and the CUDA runtime. Built without CUDA, every call but available(),
// synchronize() and is_capturing() throws DeviceError; with CUDA, tensor/cuda_runtime.cu implements it (caching
// allocator, copies, streams, graph capture of the engine's stream).
#pragma once
#include <cstddef>
#include <cstdint>

#include "tensor/device.h"
#include "tensor/storage.h"

namespace sl::cuda_rt {

bool available();                  // a GPU answers; never throws
Allocator& allocator(int device);  // stream-ordered caching allocator of that device
// Host -> device copies return as soon as the host buffer may be reused (small ones are staged through pinned
// memory and queued on the engine's stream: no wait for the GPU); device -> host copies wait for the data.
void copy(void* dst, Device dd, const void* src, Device sd, size_t bytes);
void zero(void* dst, Device dev, size_t bytes);
// Sets n elements of dtype t at dst to value, with a kernel on the engine's stream (no host round trip).
void fill(void* dst, Device dev, DType t, int64_t n, double value);
void synchronize();  // waits for the engine's stream

// ---- CUDA graphs of the engine's stream (autograd/graph_step.h builds on these)
// ---------------------------------------- begin_capture starts recording everything queued on the device's stream
// (nothing runs); end_capture stops and instantiates the recording. Host -> device copies, synchronisation and host
// reads of device memory are refused while capturing. abort_capture ends a capture that failed half-way and discards
// it.
struct Graph;
void begin_capture(Device d);
Graph* end_capture(Device d);
void abort_capture(Device d);
bool is_capturing(Device d);  // false when CUDA is not built in
void replay(Graph* g);        // queues the whole graph on its device's stream
void destroy(Graph* g);       // waits for the stream, then frees the graph
size_t graph_nodes(const Graph* g);

}  // namespace sl::cuda_rt
