// Helpers shared by the CUDA kernel files: dtype dispatch, launch helpers, scratch memory from the caching
// allocator, fast integer division, and the deterministic block/grid reductions (warp shuffles).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda.h"
#include "tensor/cuda_check.cuh"
#include "tensor/cuda_runtime.h"

namespace sl::cuda {

// Calls f(T{}) with T = float or double according to t's dtype; int32 is an error.
template <class F>
decltype(auto) dispatch_float(const Tensor& t, const char* op, F&& f) {
  switch (t.dtype()) {
    case DType::f32:
      return f(float{});
    case DType::f64:
      return f(double{});
    default:
      throw ValueError(str(op, ": expects float32 or float64, got ", dtype_name(t.dtype())));
  }
}

// Calls fn<float>(args...) or fn<double>(args...) by the dtype of `tensor` (nvcc allows no __device__ lambda
// inside a generic lambda, so the typed bodies are function templates).
#define SL_CUDA_DISPATCH(tensor, opname, fn, ...)                                                         \
  do {                                                                                                    \
    switch ((tensor).dtype()) {                                                                           \
      case ::sl::DType::f32:                                                                              \
        return fn<float>(__VA_ARGS__);                                                                    \
      case ::sl::DType::f64:                                                                              \
        return fn<double>(__VA_ARGS__);                                                                   \
      default:                                                                                            \
        throw ::sl::ValueError(                                                                           \
            ::sl::str(opname, ": expects float32 or float64, got ", ::sl::dtype_name((tensor).dtype()))); \
    }                                                                                                     \
  } while (0)

inline cudaStream_t stream_of(const Tensor& t) { return cuda_rt::stream_for(t.device()); }

// Index arithmetic inside the kernels is 32-bit where a tensor fits; this says so or throws.
inline void check_int32(int64_t n, const char* op) {
  SL_CHECK(n < (int64_t(1) << 31), ValueError, op, ": ", n, " elements exceed the CUDA backend's 2^31 limit");
}

// Scratch device memory from the caching allocator, returned (stream-ordered) when it goes out of scope.
class DeviceBuffer {
 public:
  DeviceBuffer(Device d, size_t bytes) : alloc_(&cuda_rt::allocator(d.index)), bytes_(bytes) {
    p_ = alloc_->allocate(bytes);
  }
  ~DeviceBuffer() { alloc_->deallocate(p_, bytes_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  Allocator* alloc_;
  size_t bytes_;
  void* p_ = nullptr;
};

// ---- element loops -------------------------------------------------------------------------------------------
template <class F>
__global__ void for_each_kernel(int64_t n, F f) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) f(i);
}

// Runs f(i) for i in [0, n) on t's device (one thread per element, grid-stride beyond 8 blocks per SM x 2048).
template <class F>
void for_each(const Tensor& on, int64_t n, const char* name, F f) {
  if (n <= 0) return;
  constexpr int kThreads = 256;
  cudaStream_t s = stream_of(on);
  int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t(cuda_rt::sm_count(on.device())) * 16);
  for_each_kernel<<<unsigned(blocks), kThreads, 0, s>>>(n, f);
  SL_CUDA_LAUNCH(name);
}

// ---- reductions ------------------------------------------------------------------------------------------------
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); the result is valid in every thread.
// Same tree for the same launch shape: deterministic.
template <class T>
__device__ T block_sum(T v) {
  __shared__ T part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // part[] may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  T t = lane < nwarps ? part[lane] : T(0);
  return warp_sum(t);
}

constexpr int kReduceThreads = 256;

// Counts the blocks of a reduction that have stored their partial sums; the last block resets it to 0. One per
// device and translation unit: the reductions of a device run one after another on its stream.
static __device__ unsigned g_reduce_ticket = 0;

// Block b sums f(i) over its grid-stride share and stores it in partial[b]; the block that finishes last (it
// draws the last ticket, after every other block's partial is visible) adds the partials in index order and
// calls fin(total). With one block, fin(total) directly. One launch: no second pass to wait for.
template <class F, class Fin>
__global__ void __launch_bounds__(kReduceThreads) reduce_kernel(int64_t n, F f, Fin fin, double* partial) {
  // the thread's terms in index order; four evaluated ahead of their adds, so their loads are in flight together
  const int64_t stride = int64_t(gridDim.x) * kReduceThreads;
  int64_t i = int64_t(blockIdx.x) * kReduceThreads + threadIdx.x;
  double acc = 0;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const double a0 = f(i), a1 = f(i + stride), a2 = f(i + 2 * stride), a3 = f(i + 3 * stride);
    acc += a0;
    acc += a1;
    acc += a2;
    acc += a3;
  }
  for (; i < n; i += stride) acc += f(i);
  acc = block_sum(acc);
  if (gridDim.x == 1) {
    if (threadIdx.x == 0) fin(acc);
    return;
  }
  __shared__ bool last;
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = acc;
    __threadfence();
    last = atomicAdd(&g_reduce_ticket, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  double total = 0;
  for (int b = threadIdx.x; b < int(gridDim.x); b += kReduceThreads) total += __ldcg(partial + b);
  total = block_sum(total);
  if (threadIdx.x == 0) {
    fin(total);
    g_reduce_ticket = 0;
  }
}

// total = sum of f(i) (double) for i in [0, n), then fin(total) runs once on the device. The grid depends on n
// only, so the result is the same on every run and every GPU model.
template <class F, class Fin>
void reduce_sum(const Tensor& on, int64_t n, const char* name, F f, Fin fin) {
  cudaStream_t s = stream_of(on);
  int64_t blocks = std::clamp<int64_t>((n + kReduceThreads * 8 - 1) / (kReduceThreads * 8), 1, 1024);
  DeviceBuffer part(on.device(), blocks > 1 ? size_t(blocks) * sizeof(double) : 0);
  reduce_kernel<<<unsigned(blocks), kReduceThreads, 0, s>>>(n, f, fin, blocks > 1 ? part.as<double>() : nullptr);
  SL_CUDA_LAUNCH(name);
}

// ---- fast division by a run-time constant (n < 2^31) ------------------------------------------------------------
// q = (umulhi(n, m) + n) >> s with s = ceil(log2 d), m = floor(2^32 (2^s - d) / d) + 1.
// 1 in device memory: the "ones" column of the weight-gradient GEMMs that also produce the bias gradient (the
// tensor-core path copies every operand element from an address).
static __device__ float g_one_f = 1.0f;  // one copy per translation unit (no -rdc)
static __device__ double g_one_d = 1.0;
template <class T>
__device__ __forceinline__ const T* one_ptr() {
  if constexpr (sizeof(T) == 4)
    return reinterpret_cast<const T*>(&g_one_f);
  else
    return reinterpret_cast<const T*>(&g_one_d);
}

struct FastDiv {
  uint32_t d = 1, m = 0, s = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t divisor) : d(divisor) {
    s = 0;
    while ((uint64_t(1) << s) < divisor) ++s;
    m = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << s) - divisor)) / divisor + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> s; }
  __device__ __forceinline__ void divmod(uint32_t n, uint32_t& q, uint32_t& r) const {
    q = div(n);
    r = n - q * d;
  }
};

}  // namespace sl::cuda
