#include "tensor/storage.h"

#include <cstdlib>
#include <cstring>

#include "tensor/cuda_runtime.h"
#include "tensor/error.h"
#include "tensor/rng.h"

namespace sl {

namespace {
struct CpuAllocator final : Allocator {
  void* allocate(size_t bytes) override {
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded ? rounded : 64);
    if (!p) throw Error(str("out of host memory allocating ", bytes, " bytes"));
    return p;
  }
  void deallocate(void* p, size_t) override { std::free(p); }
};
}  // namespace

Allocator& cpu_allocator() {
  static CpuAllocator a;
  return a;
}

Allocator& allocator_for(Device d) {
  if (d.is_cpu()) return cpu_allocator();
  return cuda_rt::allocator(d.index);
}

void copy_bytes(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  if (bytes == 0) return;
  if (dd.is_cpu() && sd.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
  cuda_rt::copy(dst, dd, src, sd, bytes);
}

void zero_bytes(void* dst, Device dev, size_t bytes) {
  if (bytes == 0) return;
  if (dev.is_cpu()) {
    std::memset(dst, 0, bytes);
    return;
  }
  cuda_rt::zero(dst, dev, bytes);
}

Storage::Storage(size_t nbytes, Device dev) : bytes(nbytes), device(dev), alloc(&allocator_for(dev)) {
  data = alloc->allocate(nbytes);
}

Storage::~Storage() {
  if (data) alloc->deallocate(data, bytes);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda" || s == "gpu") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      return cuda(std::stoi(s.substr(5)));
    } catch (...) {
    }
  }
  throw ValueError(::sl::str("unknown device '", s, "' (expected cpu, cuda or cuda:N)"));
}

bool cuda_available() { return cuda_rt::available(); }

Generator& default_generator() {
  static Generator g(0);
  return g;
}

}  // namespace sl
