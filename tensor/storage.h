// Storage: a refcounted, 64-byte-aligned block of bytes on one device, and the allocators behind it.
#pragma once
#include <cstddef>
#include <memory>

#include "tensor/device.h"

namespace sl {

// Hands out raw device memory. The CPU one is 64-byte aligned; the CUDA one is a stream-ordered cache.
struct Allocator {
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
};

Allocator& cpu_allocator();
// The allocator for a device; throws DeviceError when that device cannot be used.
Allocator& allocator_for(Device d);

// Copies bytes between any two devices (host<->device, device<->device); synchronous for the host side.
void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
// Sets bytes to zero on any device.
void zero_bytes(void* dst, Device dev, size_t bytes);

struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device;
  Allocator* alloc = nullptr;

  Storage(size_t nbytes, Device dev);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

}  // namespace sl
