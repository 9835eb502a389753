// Statistics and controls of the CUDA caching allocator (tensor/cuda_runtime.cu). Plain C++: no CUDA headers.
// Only defined when splitleak is built with CUDA (SPLITLEAK_WITH_CUDA); callers guard with that macro.
//
// The allocator keeps one cache per device. A request is rounded up to a size class (four classes per power of
// two, at least 512 bytes: at most 25% slack) and served from that class's free list; only a miss calls
// cudaMalloc. A freed block goes back to its class's list at once: all work runs in order on the engine's single
// stream, so a later kernel that reuses the block runs after every kernel that used it before (stream order).
// A steady-state training step therefore makes no cudaMalloc/cudaFree calls.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sl::cuda_rt {

struct AllocatorStats {
  size_t bytes_in_use = 0;    // handed out and not yet freed (size classes, not requested bytes)
  size_t bytes_cached = 0;    // free blocks held in the cache
  size_t bytes_reserved = 0;  // in_use + cached: what cudaMalloc has given us
  size_t peak_bytes_in_use = 0;
  uint64_t num_allocs = 0;          // allocate() calls
  uint64_t num_cache_hits = 0;      // allocate() calls served from the cache
  uint64_t num_cuda_malloc = 0;     // cudaMalloc calls made
  uint64_t num_cuda_free = 0;       // cudaFree calls made (empty_cache, or a retry after out-of-memory)
  uint64_t num_capture_malloc = 0;  // of num_cuda_malloc, those made while a CUDA graph was being captured
};

// Current statistics of device `device`'s allocator; throws DeviceError when that device cannot be used.
AllocatorStats allocator_stats(int device = 0);
// Waits for the device's stream, then returns every cached (free) block to the driver.
void empty_cache(int device = 0);
// The size class a request of `bytes` is rounded up to.
size_t size_class(size_t bytes);

// Private pools (for CUDA-graph capture, autograd/graph_step.h). While a pool is active on a device, its allocations
// come from and go back to that pool's own free lists (a block remembers its pool), so memory a captured graph
// uses is never handed to other work. A capture's warm-up runs with the pool active, so the capture itself
// finds every block in the pool; a miss during capture still works (cudaMalloc with the thread's capture mode
// relaxed) and is counted in num_capture_malloc. Pool 0 is the default pool.
int create_pool(int device = 0);             // a new, empty private pool id (> 0)
void set_active_pool(int device, int pool);  // 0 returns to the default pool
int active_pool(int device = 0);
// Moves a private pool's free blocks into the default pool (blocks still in use return there when freed).
void release_pool(int device, int pool);

}  // namespace sl::cuda_rt
