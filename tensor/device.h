// Device and dtype tags: where a tensor's storage lives and what its elements are.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sl {

enum class DType : uint8_t { f32, f64, i32 };  // i32 holds class labels only; arithmetic ops take f32/f64

inline size_t dtype_size(DType t) { return t == DType::f64 ? 8 : 4; }
inline const char* dtype_name(DType t) { return t == DType::f32 ? "float32" : t == DType::f64 ? "float64" : "int32"; }

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::i32;
}

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
  // "cpu", "cuda", "cuda:1"; throws ValueError otherwise.
  static Device parse(const std::string& s);
};

// True when the CUDA backend is compiled in and a GPU answers (any CUDA error means "no GPU").
bool cuda_available();

}  // namespace sl
