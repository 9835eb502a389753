// Used when splitleak is built without CUDA: every device call says so.
#include "tensor/cuda_runtime.h"
#include "tensor/error.h"

namespace sl::cuda_rt {

static const char* kMsg = "this splitleak was built without CUDA (configure with -DSPLITLEAK_CUDA=ON on a machine with nvcc)";

bool available() { return false; }
Allocator& allocator(int) { throw DeviceError(kMsg); }
void copy(void*, Device, const void*, Device, size_t) { throw DeviceError(kMsg); }
void zero(void*, Device, size_t) { throw DeviceError(kMsg); }
void synchronize() {}

}  // namespace sl::cuda_rt
