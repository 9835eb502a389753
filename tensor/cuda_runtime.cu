// The CUDA side of the storage seam (tensor/cuda_runtime.h): device discovery, one stream per device (the
// engine's single stream: every kernel, copy and memset of that device runs on it, in order), a stream-ordered
// caching allocator per device (tensor/cuda_stats.h says how it rounds and reuses), copies and zeroing, and the
// checked-call helpers of tensor/cuda_check.cuh.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensor/cuda_check.cuh"
#include "tensor/cuda_runtime.h"
#include "tensor/cuda_stats.h"
#include "tensor/error.h"

namespace sl::cuda_rt {

// ---- checked calls ---------------------------------------------------------------------------------------------
namespace {
std::string call_name(const char* call) {  // "cudaMemcpyAsync(dst, ...)" -> "cudaMemcpyAsync"
  const char* paren = std::strchr(call, '(');
  return paren ? std::string(call, size_t(paren - call)) : std::string(call);
}
const char* short_file(const char* file) {  // path relative to the repository where possible
  const char* p = std::strstr(file, "/tensor/");
  if (!p) p = std::strstr(file, "/kernels/");
  return p ? p + 1 : file;
}
bool sync_after_launch() {
  static const bool on = [] {
    const char* v = std::getenv("SPLITLEAK_CUDA_SYNC");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}
}  // namespace

void check_call(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  throw DeviceError(str(call_name(call), ": ", cudaGetErrorString(e), " [", short_file(file), ":", line, "]"));
}

void check_launch(const char* kernel) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw DeviceError(str(kernel, ": ", cudaGetErrorString(e)));
  if (sync_after_launch()) {
    e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw DeviceError(str(kernel, ": ", cudaGetErrorString(e), " (while running; SPLITLEAK_CUDA_SYNC=1)"));
    }
  }
}

// ---- discovery ---------------------------------------------------------------------------------------------------
namespace {
struct Discovery {
  int count = 0;
  std::string why;  // why no device is usable
};
const Discovery& discovery() {
  static const Discovery d = [] {
    Discovery r;
    try {
      int n = 0;
      cudaError_t e = cudaGetDeviceCount(&n);
      if (e != cudaSuccess) {
        cudaGetLastError();
        r.why = str("cudaGetDeviceCount: ", cudaGetErrorString(e));
      } else if (n <= 0) {
        r.why = "no CUDA device is visible";
      } else {
        r.count = n;
      }
    } catch (...) {
      r.count = 0;
      r.why = "the CUDA runtime failed to start";
    }
    return r;
  }();
  return d;
}

void require_device(int device) {
  const Discovery& d = discovery();
  if (d.count == 0) throw DeviceError(str("cuda:", device, ": no GPU available (", d.why, ")"));
  if (device < 0 || device >= d.count)
    throw DeviceError(str("cuda:", device, ": no such device (", d.count, " visible)"));
}

void set_device(int device) {
  int cur = -1;
  if (cudaGetDevice(&cur) != cudaSuccess || cur != device) SL_CUDA_CHECK(cudaSetDevice(device));
}
}  // namespace

bool available() {
  try {
    return discovery().count > 0;
  } catch (...) {
    return false;
  }
}

// ---- the caching allocator -------------------------------------------------------------------------------------
size_t size_class(size_t bytes) {
  if (bytes <= 512) return 512;
  // 2^e < bytes <= 2^(e+1): classes are 5/4, 6/4, 7/4 and 8/4 of 2^e.
  int e = 63 - __builtin_clzll(uint64_t(bytes - 1));
  size_t step = size_t(1) << (e - 2);
  return (bytes + step - 1) / step * step;
}

namespace {

class CachingAllocator final : public Allocator {
 public:
  CachingAllocator(int device, cudaStream_t stream) : device_(device), stream_(stream) {}

  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    const size_t cls = size_class(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.num_allocs;
    const int pool = pool_;
    auto& list = free_[key(pool, cls)];
    void* p = nullptr;
    if (!list.empty()) {
      p = list.back();
      list.pop_back();
      ++stats_.num_cache_hits;
      stats_.bytes_cached -= cls;
    } else {
      p = fresh_block(cls);
    }
    live_[p] = Block{cls, pool};
    stats_.bytes_in_use += cls;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    return p;
  }

  // Stream-ordered free: the block is reusable at once by later work on the same stream.
  void deallocate(void* p, size_t) override {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours (never happens through Storage)
    Block b = it->second;
    live_.erase(it);
    if (released_.count(b.pool)) b.pool = 0;
    free_[key(b.pool, b.cls)].push_back(p);
    stats_.bytes_in_use -= b.cls;
    stats_.bytes_cached += b.cls;
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    AllocatorStats s = stats_;
    s.bytes_reserved = s.bytes_in_use + s.bytes_cached;
    return s;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

  int create_pool() {
    std::lock_guard<std::mutex> lock(mu_);
    return ++last_pool_;
  }
  void set_active_pool(int pool) {
    std::lock_guard<std::mutex> lock(mu_);
    SL_CHECK(pool >= 0 && pool <= last_pool_ && !released_.count(pool), ValueError, "cuda:", device_,
             ": no live allocator pool ", pool);
    pool_ = pool;
  }
  int active_pool() {
    std::lock_guard<std::mutex> lock(mu_);
    return pool_;
  }
  void release_pool(int pool) {
    std::lock_guard<std::mutex> lock(mu_);
    if (pool <= 0 || pool > last_pool_) return;
    released_[pool] = true;
    if (pool_ == pool) pool_ = 0;
    for (auto it = free_.begin(); it != free_.end();) {
      if (int(it->first >> 56) == pool) {
        auto& dst = free_[key(0, it->first & ((uint64_t(1) << 56) - 1))];
        dst.insert(dst.end(), it->second.begin(), it->second.end());
        it = free_.erase(it);
      } else {
        ++it;
      }
    }
  }

 private:
  struct Block {
    size_t cls;
    int pool;
  };
  static uint64_t key(int pool, size_t cls) { return (uint64_t(pool) << 56) | uint64_t(cls); }

  void* fresh_block(size_t cls) {
    set_device(device_);
    // During graph capture (autograd/graph_step.h) a miss is legal but rare (the capture's warm-up fills the pool):
    // cudaMalloc is no stream operation, so this thread's capture mode is relaxed around it, and the block simply
    // belongs to the capturing pool from then on. Out of memory while capturing cannot release the cache (that
    // needs a stream synchronisation), so it fails at once.
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    const bool capturing = cudaStreamIsCapturing(stream_, &cap) == cudaSuccess && cap != cudaStreamCaptureStatusNone;
    void* p = nullptr;
    cudaError_t e;
    if (capturing) {
      cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
      SL_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
      e = cudaMalloc(&p, cls);
      SL_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
      ++stats_.num_capture_malloc;
    } else {
      e = cudaMalloc(&p, cls);
    }
    if (e == cudaErrorMemoryAllocation && !capturing) {  // give the cache back to the driver and try once more
      cudaGetLastError();
      release_cached_locked();
      e = cudaMalloc(&p, cls);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw DeviceError(str("cudaMalloc: ", cudaGetErrorString(e), " (", cls, " bytes on cuda:", device_, ", ",
                            stats_.bytes_in_use, " in use, ", stats_.bytes_cached, " cached)"));
    }
    ++stats_.num_cuda_malloc;
    return p;
  }

  // Frees every cached block (after the stream has finished with them).
  void release_cached_locked() {
    set_device(device_);
    SL_CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (auto& [k, list] : free_) {
      for (void* p : list) {
        SL_CUDA_CHECK(cudaFree(p));
        ++stats_.num_cuda_free;
      }
      list.clear();
    }
    stats_.bytes_cached = 0;
  }

  int device_;
  cudaStream_t stream_;
  std::mutex mu_;
  std::unordered_map<uint64_t, std::vector<void*>> free_;
  std::unordered_map<void*, Block> live_;
  std::unordered_map<int, bool> released_;
  AllocatorStats stats_;
  int pool_ = 0;
  int last_pool_ = 0;
};

// Per-device state, created on first use and never destroyed: storages freed during static destruction still
// find their allocator (the memory itself goes back to the driver when the process ends).
// Host -> device copies up to kSlotBytes go through a ring of pinned buffers: the host data is copied into the
// next slot, the device copy is queued on the engine's stream and an event recorded after it; a slot is reused
// only once its event has completed. So a training loop that uploads each batch never waits for the GPU to
// finish the previous step (it waits only when it runs kSlots copies ahead of the GPU).
struct Staging {
  static constexpr size_t kSlotBytes = size_t(4) << 20;
  static constexpr int kSlots = 8;
  void* host[kSlots] = {};
  cudaEvent_t done[kSlots] = {};
  bool pending[kSlots] = {};
  int next = 0;
  std::mutex mu;
};

struct DeviceState {
  cudaStream_t stream = nullptr;
  CachingAllocator* alloc = nullptr;
  int sms = 0;
  unsigned* counters = nullptr;  // kTileCounters, zero between launches
  Staging staging;
};

std::mutex g_state_mu;
std::vector<DeviceState*>& states() {
  static auto* v = new std::vector<DeviceState*>();
  return *v;
}

DeviceState& state(int device) {
  require_device(device);
  std::lock_guard<std::mutex> lock(g_state_mu);
  auto& v = states();
  if (v.size() < size_t(discovery().count)) v.resize(size_t(discovery().count), nullptr);
  if (!v[size_t(device)]) {
    set_device(device);
    auto* s = new DeviceState();
    SL_CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    SL_CUDA_CHECK(cudaDeviceGetAttribute(&s->sms, cudaDevAttrMultiProcessorCount, device));
    s->alloc = new CachingAllocator(device, s->stream);
    SL_CUDA_CHECK(cudaMalloc(&s->counters, sizeof(unsigned) * kTileCounters));
    SL_CUDA_CHECK(cudaMemset(s->counters, 0, sizeof(unsigned) * kTileCounters));
    SL_CUDA_CHECK(cudaDeviceSynchronize());
    v[size_t(device)] = s;
  }
  return *v[size_t(device)];
}

}  // namespace

Allocator& allocator(int device) { return *state(device).alloc; }

cudaStream_t stream_for(Device d) {
  SL_CHECK(d.is_cuda(), DeviceError, "stream_for: ", d.str(), " is not a CUDA device");
  DeviceState& s = state(d.index);
  set_device(d.index);
  return s.stream;
}

int sm_count(Device d) { return state(d.index).sms; }
unsigned* tile_counters(Device d) { return state(d.index).counters; }

AllocatorStats allocator_stats(int device) { return state(device).alloc->stats(); }
void empty_cache(int device) { state(device).alloc->empty_cache(); }
int create_pool(int device) { return state(device).alloc->create_pool(); }
void set_active_pool(int device, int pool) { state(device).alloc->set_active_pool(pool); }
int active_pool(int device) { return state(device).alloc->active_pool(); }
void release_pool(int device, int pool) { state(device).alloc->release_pool(pool); }

// ---- copies ------------------------------------------------------------------------------------------------------
namespace {
bool capturing_on(cudaStream_t s) {
  cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
  return cudaStreamIsCapturing(s, &cap) == cudaSuccess && cap != cudaStreamCaptureStatusNone;
}

// Host -> device through the pinned ring (see Staging); false when the copy is too large for a slot.
bool staged_upload(void* dst, Device dd, const void* src, size_t bytes) {
  DeviceState& st = state(dd.index);
  Staging& r = st.staging;
  if (bytes > Staging::kSlotBytes) return false;
  std::lock_guard<std::mutex> lock(r.mu);
  set_device(dd.index);
  const int k = r.next;
  r.next = (k + 1) % Staging::kSlots;
  if (!r.host[k]) {
    SL_CUDA_CHECK(cudaMallocHost(&r.host[k], Staging::kSlotBytes));
    SL_CUDA_CHECK(cudaEventCreateWithFlags(&r.done[k], cudaEventDisableTiming));
  }
  if (r.pending[k]) SL_CUDA_CHECK(cudaEventSynchronize(r.done[k]));  // the slot's previous copy has been read
  std::memcpy(r.host[k], src, bytes);
  SL_CUDA_CHECK(cudaMemcpyAsync(dst, r.host[k], bytes, cudaMemcpyHostToDevice, st.stream));
  SL_CUDA_CHECK(cudaEventRecord(r.done[k], st.stream));
  r.pending[k] = true;
  return true;
}
}  // namespace

void copy(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  if (bytes == 0) return;
  if (dd.is_cuda() && sd.is_cpu()) {  // host -> device: the host buffer is free again when this returns
    cudaStream_t s = stream_for(dd);
    SL_CHECK(!capturing_on(s), DeviceError, "cuda:", dd.index, ": host-to-device copy of ", bytes,
             " bytes while a CUDA graph is being captured (copy into the step's static inputs before the step)");
    if (staged_upload(dst, dd, src, bytes)) return;
    SL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
    SL_CUDA_CHECK(cudaStreamSynchronize(s));
  } else if (dd.is_cpu() && sd.is_cuda()) {  // device -> host, after all queued work on the source's stream
    cudaStream_t s = stream_for(sd);
    SL_CHECK(!capturing_on(s), DeviceError, "cuda:", sd.index, ": device-to-host copy of ", bytes,
             " bytes while a CUDA graph is being captured (a captured step must not read results on the host)");
    SL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
    SL_CUDA_CHECK(cudaStreamSynchronize(s));
  } else if (dd == sd) {  // same device: queued on its stream
    SL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_for(dd)));
  } else {  // between two GPUs: both streams drained, the copy done when this returns
    cudaStream_t ds = stream_for(dd);
    SL_CUDA_CHECK(cudaStreamSynchronize(ds));
    cudaStream_t ss = stream_for(sd);
    SL_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dd.index, src, sd.index, bytes, ss));
    SL_CUDA_CHECK(cudaStreamSynchronize(ss));
  }
}

void zero(void* dst, Device dev, size_t bytes) {
  if (bytes == 0) return;
  SL_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_for(dev)));
}

namespace {
template <class T>
__global__ void fill_kernel(T* p, int64_t n, T v) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = v;
}
}  // namespace

void fill(void* dst, Device dev, DType t, int64_t n, double value) {
  if (n <= 0) return;
  cudaStream_t s = stream_for(dev);
  const unsigned blocks = unsigned(std::min<int64_t>((n + 255) / 256, int64_t(sm_count(dev)) * 8));
  switch (t) {
    case DType::f32:
      fill_kernel<float><<<blocks, 256, 0, s>>>(static_cast<float*>(dst), n, float(value));
      break;
    case DType::f64:
      fill_kernel<double><<<blocks, 256, 0, s>>>(static_cast<double*>(dst), n, value);
      break;
    case DType::i32:
      fill_kernel<int32_t><<<blocks, 256, 0, s>>>(static_cast<int32_t*>(dst), n, int32_t(value));
      break;
  }
  check_launch("fill");
}

// ---- CUDA graphs ---------------------------------------------------------------------------------------------------
struct Graph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  Device device;
  size_t nodes = 0;
};

void begin_capture(Device d) {
  cudaStream_t s = stream_for(d);
  SL_CHECK(!capturing_on(s), DeviceError, d.str(), ": a CUDA graph capture is already under way");
  // Thread-local mode: a forbidden call (a synchronisation, a pageable copy) from this thread fails the capture
  // instead of silently running; other threads (data loading) are unaffected.
  SL_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
}

Graph* end_capture(Device d) {
  cudaStream_t s = stream_for(d);
  cudaGraph_t g = nullptr;
  SL_CUDA_CHECK(cudaStreamEndCapture(s, &g));
  auto* r = new Graph();
  r->graph = g;
  r->device = d;
  SL_CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &r->nodes));
  cudaError_t e = cudaGraphInstantiate(&r->exec, g, 0);
  if (e != cudaSuccess) {
    cudaGetLastError();
    cudaGraphDestroy(g);
    delete r;
    check_call(e, "cudaGraphInstantiate()", __FILE__, __LINE__);
  }
  return r;
}

void abort_capture(Device d) {
  cudaStream_t s = stream_for(d);
  if (!capturing_on(s)) {
    // a capture invalidated by a forbidden call still has to be ended
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(s, &cap) != cudaSuccess || cap != cudaStreamCaptureStatusInvalidated) {
      cudaGetLastError();
      return;
    }
  }
  cudaGraph_t g = nullptr;
  cudaStreamEndCapture(s, &g);
  if (g) cudaGraphDestroy(g);
  cudaGetLastError();
}

bool is_capturing(Device d) { return d.is_cuda() && available() && capturing_on(stream_for(d)); }

void replay(Graph* g) {
  SL_CHECK(g && g->exec, ValueError, "replay of an empty CUDA graph");
  SL_CUDA_CHECK(cudaGraphLaunch(g->exec, stream_for(g->device)));
}

void destroy(Graph* g) {
  if (!g) return;
  cudaStream_t s = stream_for(g->device);
  SL_CUDA_CHECK(cudaStreamSynchronize(s));
  if (g->exec) cudaGraphExecDestroy(g->exec);
  if (g->graph) cudaGraphDestroy(g->graph);
  delete g;
}

size_t graph_nodes(const Graph* g) { return g ? g->nodes : 0; }

void synchronize() {
  if (!available()) return;
  std::vector<int> devs;
  {
    std::lock_guard<std::mutex> lock(g_state_mu);
    auto& v = states();
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i]) devs.push_back(int(i));
  }
  for (int d : devs) SL_CUDA_CHECK(cudaStreamSynchronize(stream_for(Device::cuda(d))));
}

}  // namespace sl::cuda_rt
