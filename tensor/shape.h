// Shape: the extent of each dimension of a tensor, outermost first.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace sl {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> d) : dims_(d) {}
  explicit Shape(std::vector<int64_t> d) : dims_(std::move(d)) {}

  size_t rank() const { return dims_.size(); }
  int64_t operator[](size_t i) const { return dims_[i]; }
  int64_t& operator[](size_t i) { return dims_[i]; }
  // Dimension i, negative counts from the end (-1 is the last).
  int64_t dim(int i) const { return dims_[i < 0 ? dims_.size() + i : i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : dims_) n *= d;
    return n;
  }
  const std::vector<int64_t>& dims() const { return dims_; }
  bool operator==(const Shape& o) const { return dims_ == o.dims_; }
  bool operator!=(const Shape& o) const { return dims_ != o.dims_; }
  // "[32, 1, 28, 28]"
  std::string str() const {
    std::string s = "[";
    for (size_t i = 0; i < dims_.size(); ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
    return s + "]";
  }
  // Row-major (C order) strides in elements.
  std::vector<int64_t> contiguous_strides() const {
    std::vector<int64_t> st(dims_.size());
    int64_t s = 1;
    for (size_t i = dims_.size(); i-- > 0;) {
      st[i] = s;
      s *= dims_[i];
    }
    return st;
  }

 private:
  std::vector<int64_t> dims_;
};

}  // namespace sl
