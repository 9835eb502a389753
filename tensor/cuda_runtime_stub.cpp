// Used when splitleak is built without CUDA: every CUDA entry point says so.
#include "tensor/cuda_runtime.h"
#include "tensor/error.h"

namespace sl::cuda_rt {

static const char* kMsg =
    "this splitleak was built without CUDA (configure with -DSPLITLEAK_CUDA=ON on a machine with nvcc)";

bool available() { return false; }
Allocator& allocator(int) { throw DeviceError(kMsg); }
void copy(void*, Device, const void*, Device, size_t) { throw DeviceError(kMsg); }
void zero(void*, Device, size_t) { throw DeviceError(kMsg); }
void fill(void*, Device, DType, int64_t, double) { throw DeviceError(kMsg); }
void synchronize() {}
void begin_capture(Device) { throw DeviceError(kMsg); }
Graph* end_capture(Device) { throw DeviceError(kMsg); }
void abort_capture(Device) {}
bool is_capturing(Device) { return false; }
void replay(Graph*) { throw DeviceError(kMsg); }
void destroy(Graph*) {}
size_t graph_nodes(const Graph*) { return 0; }

}  // namespace sl::cuda_rt
