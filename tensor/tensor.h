// Tensor: an N-d view (shape, strides, offset) of refcounted storage, float32/float64 (int32 for labels),
// on the CPU or a CUDA device, with the autograd fields (requires_grad, grad, grad_fn) the engine needs.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/error.h"
#include "tensor/shape.h"
#include "tensor/storage.h"

namespace sl {

struct Node;  // autograd graph node (autograd/node.h)

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  std::vector<int64_t> strides;  // in elements
  DType dtype = DType::f32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor (null for leaves)
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // --- creation -------------------------------------------------------------
  static Tensor empty(const Shape& s, DType t = DType::f32, Device d = Device::cpu());
  static Tensor zeros(const Shape& s, DType t = DType::f32, Device d = Device::cpu());
  static Tensor ones(const Shape& s, DType t = DType::f32, Device d = Device::cpu());
  static Tensor full(const Shape& s, double value, DType t = DType::f32, Device d = Device::cpu());
  // Copies values (converted to dtype t) into a new CPU tensor of shape s; throws ShapeError on a size mismatch.
  static Tensor from_vector(const std::vector<double>& v, const Shape& s, DType t = DType::f32);
  static Tensor from_vector(const std::vector<float>& v, const Shape& s);
  static Tensor from_labels(const std::vector<int32_t>& v);  // 1-d int32
  static Tensor scalar(double v, DType t = DType::f32, Device d = Device::cpu());

  // --- inspection -----------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  int64_t size(int i) const { return impl_->shape.dim(i); }
  size_t dim() const { return impl_->shape.rank(); }
  int64_t numel() const { return impl_->shape.numel(); }
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->storage->device; }
  const std::vector<int64_t>& strides() const { return impl_->strides; }
  int64_t offset() const { return impl_->offset; }
  bool is_contiguous() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }
  // Typed pointer to the first element; throws ValueError when T does not match dtype.
  template <class T>
  T* data() const;
  void* raw_data() const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  std::string str() const;  // "float32[32, 1, 28, 28] on cpu"

  // --- element access (CPU only; reads copy from device) --------------------
  double item() const;                    // single-element tensor -> double
  std::vector<double> to_vector() const;  // all elements, row-major, as double
  double at(std::initializer_list<int64_t> idx) const;

  // --- views and copies -----------------------------------------------------
  Tensor reshape(const Shape& s) const;  // zero-copy when contiguous; -1 allowed once
  Tensor flatten(int start_dim = 1) const;
  Tensor slice(int64_t begin, int64_t end) const;  // rows [begin,end) of dim 0, zero-copy
  Tensor contiguous() const;
  Tensor clone() const;       // deep copy, same device/dtype, no autograd history
  Tensor to(Device d) const;  // copy to another device (self if already there)
  Tensor to(DType t) const;   // convert dtype (self if already that)
  Tensor detach() const;      // shares storage, no autograd history

  // --- in place (no autograd) ----------------------------------------------
  Tensor& fill_(double v);
  Tensor& zero_();
  Tensor& copy_(const Tensor& src);  // same shape; any devices/dtypes (f32<->f64 on CPU)

  // --- autograd -------------------------------------------------------------
  bool requires_grad() const { return impl_->requires_grad; }
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const { return Tensor(impl_->grad); }
  void zero_grad() { impl_->grad.reset(); }
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  // Runs reverse-mode autodiff from this tensor; a non-scalar root needs an explicit seed gradient.
  void backward(const Tensor& seed = Tensor(), bool retain_graph = false) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Throws ShapeError naming `what` if t's shape is not s.
void check_shape(const Tensor& t, const Shape& s, const char* what);
// Throws ValueError if a and b differ in device or dtype.
void check_same(const Tensor& a, const Tensor& b, const char* what);

}  // namespace sl
