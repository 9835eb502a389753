#include "tensor/tensor.h"

#include <cmath>
#include <cstring>

#include "tensor/cuda_runtime.h"

namespace sl {

namespace {

std::shared_ptr<TensorImpl> make_impl(const Shape& s, DType t, Device d) {
  for (auto n : s.dims()) SL_CHECK(n >= 0, ShapeError, "negative dimension in shape ", s.str());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(s.numel()) * dtype_size(t), d);
  impl->shape = s;
  impl->strides = s.contiguous_strides();
  impl->dtype = t;
  return impl;
}

template <class T>
void fill_cpu(T* p, int64_t n, double v) {
  for (int64_t i = 0; i < n; ++i) p[i] = T(v);
}

// Reads element i (row-major logical index) of a strided CPU tensor as double.
double read_strided(const Tensor& t, int64_t linear) {
  const auto& sh = t.shape();
  const auto& st = t.strides();
  int64_t off = t.offset();
  for (size_t d = sh.rank(); d-- > 0;) {
    off += (linear % sh[d]) * st[d];
    linear /= sh[d];
  }
  const char* base = static_cast<const char*>(t.impl()->storage->data);
  switch (t.dtype()) {
    case DType::f32:
      return reinterpret_cast<const float*>(base)[off];
    case DType::f64:
      return reinterpret_cast<const double*>(base)[off];
    case DType::i32:
      return reinterpret_cast<const int32_t*>(base)[off];
  }
  return 0;
}

template <class T>
void write_from_doubles(T* p, const std::vector<double>& v) {
  for (size_t i = 0; i < v.size(); ++i) p[i] = T(v[i]);
}

void write_doubles(const Tensor& dst, const std::vector<double>& v) {
  switch (dst.dtype()) {
    case DType::f32:
      write_from_doubles(dst.data<float>(), v);
      break;
    case DType::f64:
      write_from_doubles(dst.data<double>(), v);
      break;
    case DType::i32:
      write_from_doubles(dst.data<int32_t>(), v);
      break;
  }
}

}  // namespace

Tensor Tensor::empty(const Shape& s, DType t, Device d) { return Tensor(make_impl(s, t, d)); }

Tensor Tensor::zeros(const Shape& s, DType t, Device d) {
  Tensor r = empty(s, t, d);
  zero_bytes(r.raw_data(), d, r.nbytes());
  return r;
}

Tensor Tensor::ones(const Shape& s, DType t, Device d) { return full(s, 1.0, t, d); }

Tensor Tensor::full(const Shape& s, double value, DType t, Device d) {
  Tensor r = empty(s, t, d);
  r.fill_(value);
  return r;
}

Tensor Tensor::from_vector(const std::vector<double>& v, const Shape& s, DType t) {
  SL_CHECK(int64_t(v.size()) == s.numel(), ShapeError, "from_vector: ", v.size(), " values do not fill shape ",
           s.str());
  Tensor r = empty(s, t);
  write_doubles(r, v);
  return r;
}

Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& s) {
  SL_CHECK(int64_t(v.size()) == s.numel(), ShapeError, "from_vector: ", v.size(), " values do not fill shape ",
           s.str());
  Tensor r = empty(s, DType::f32);
  if (!v.empty()) std::memcpy(r.raw_data(), v.data(), v.size() * sizeof(float));
  return r;
}

Tensor Tensor::from_labels(const std::vector<int32_t>& v) {
  Tensor r = empty(Shape{int64_t(v.size())}, DType::i32);
  if (!v.empty()) std::memcpy(r.raw_data(), v.data(), v.size() * sizeof(int32_t));
  return r;
}

Tensor Tensor::scalar(double v, DType t, Device d) { return full(Shape{}, v, t, d); }

bool Tensor::is_contiguous() const { return impl_->strides == impl_->shape.contiguous_strides(); }

template <class T>
T* Tensor::data() const {
  SL_CHECK(dtype() == dtype_of<T>(), ValueError, "tensor holds ", dtype_name(dtype()), ", asked for ",
           dtype_name(dtype_of<T>()));
  return static_cast<T*>(impl_->storage->data) + impl_->offset;
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int32_t* Tensor::data<int32_t>() const;

void* Tensor::raw_data() const {
  return static_cast<char*>(impl_->storage->data) + impl_->offset * int64_t(dtype_size(dtype()));
}

std::string Tensor::str() const {
  if (!defined()) return "undefined tensor";
  return ::sl::str(dtype_name(dtype()), shape().str(), " on ", device().str());
}

double Tensor::item() const {
  SL_CHECK(numel() == 1, ShapeError, "item() needs a single element, tensor is ", str());
  return to_vector()[0];
}

std::vector<double> Tensor::to_vector() const {
  Tensor c = device().is_cpu() ? *this : to(Device::cpu());
  std::vector<double> out(size_t(c.numel()));
  for (int64_t i = 0; i < c.numel(); ++i) out[size_t(i)] = read_strided(c, i);
  return out;
}

double Tensor::at(std::initializer_list<int64_t> idx) const {
  SL_CHECK(idx.size() == dim(), ShapeError, "at(): ", idx.size(), " indices for a ", dim(), "-d tensor");
  Tensor c = device().is_cpu() ? *this : to(Device::cpu());
  int64_t lin = 0;
  size_t d = 0;
  for (auto i : idx) {
    SL_CHECK(i >= 0 && i < c.shape()[d], ShapeError, "at(): index ", i, " out of range for dim ", d, " of ", c.str());
    lin = lin * c.shape()[d] + i;
    ++d;
  }
  return read_strided(c, lin);
}

Tensor Tensor::reshape(const Shape& s) const {
  std::vector<int64_t> dims = s.dims();
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      SL_CHECK(infer < 0, ShapeError, "reshape: more than one -1 in ", s.str());
      infer = int(i);
    } else {
      known *= dims[i];
    }
  }
  if (infer >= 0) {
    SL_CHECK(known > 0 && numel() % known == 0, ShapeError, "reshape: cannot infer -1 in ", s.str(), " from ", str());
    dims[size_t(infer)] = numel() / known;
  }
  Shape ns(dims);
  SL_CHECK(ns.numel() == numel(), ShapeError, "reshape: ", str(), " cannot become ", ns.str());
  Tensor src = is_contiguous() ? *this : contiguous();
  auto impl = std::make_shared<TensorImpl>(*src.impl_);
  impl->shape = ns;
  impl->strides = ns.contiguous_strides();
  impl->grad.reset();
  impl->grad_fn.reset();
  impl->requires_grad = false;
  return Tensor(impl);
}

Tensor Tensor::flatten(int start_dim) const {
  std::vector<int64_t> dims;
  for (int i = 0; i < start_dim && i < int(dim()); ++i) dims.push_back(shape()[size_t(i)]);
  dims.push_back(-1);
  return reshape(Shape(dims));
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  SL_CHECK(dim() >= 1, ShapeError, "slice of a 0-d tensor");
  SL_CHECK(0 <= begin && begin <= end && end <= shape()[0], ShapeError, "slice [", begin, ", ", end,
           ") out of range for ", str());
  auto impl = std::make_shared<TensorImpl>(*impl_);
  impl->offset += begin * impl_->strides[0];
  impl->shape[0] = end - begin;
  impl->grad.reset();
  impl->grad_fn.reset();
  impl->requires_grad = false;
  return Tensor(impl);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  SL_CHECK(device().is_cpu(), DeviceError, "non-contiguous tensors exist only on the CPU");
  Tensor r = empty(shape(), dtype());
  write_doubles(r, to_vector());
  return r;
}

Tensor Tensor::clone() const {
  Tensor src = contiguous();
  Tensor r = empty(shape(), dtype(), device());
  copy_bytes(r.raw_data(), device(), src.raw_data(), device(), nbytes());
  return r;
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Tensor src = contiguous();
  Tensor r = empty(shape(), dtype(), d);
  copy_bytes(r.raw_data(), d, src.raw_data(), device(), nbytes());
  return r;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor host = device().is_cpu() ? *this : to(Device::cpu());
  Tensor r = from_vector(host.to_vector(), shape(), t);
  return device().is_cpu() ? r : r.to(device());
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>(*impl_);
  impl->grad.reset();
  impl->grad_fn.reset();
  impl->requires_grad = false;
  return Tensor(impl);
}

Tensor& Tensor::fill_(double v) {
  if (device().is_cpu() && is_contiguous()) {
    switch (dtype()) {
      case DType::f32:
        fill_cpu(data<float>(), numel(), v);
        break;
      case DType::f64:
        fill_cpu(data<double>(), numel(), v);
        break;
      case DType::i32:
        fill_cpu(data<int32_t>(), numel(), v);
        break;
    }
    return *this;
  }
  SL_CHECK(is_contiguous(), ValueError, "fill_ on a non-contiguous tensor");
  if (device().is_cuda()) {  // a kernel: no host round trip, so backward()'s seed can be captured in a CUDA graph
    cuda_rt::fill(raw_data(), device(), dtype(), numel(), v);
    return *this;
  }
  Tensor host = full(shape(), v, dtype());
  copy_bytes(raw_data(), device(), host.raw_data(), Device::cpu(), nbytes());
  return *this;
}

Tensor& Tensor::zero_() {
  SL_CHECK(is_contiguous(), ValueError, "zero_ on a non-contiguous tensor");
  zero_bytes(raw_data(), device(), nbytes());
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  SL_CHECK(src.shape() == shape(), ShapeError, "copy_: source ", src.str(), " into ", str());
  SL_CHECK(is_contiguous(), ValueError, "copy_ into a non-contiguous tensor");
  Tensor s = src.dtype() == dtype() ? src.contiguous() : src.to(dtype());
  copy_bytes(raw_data(), device(), s.raw_data(), s.device(), nbytes());
  return *this;
}

Tensor& Tensor::requires_grad_(bool on) {
  SL_CHECK(!on || dtype() != DType::i32, ValueError, "int32 tensors cannot require gradients");
  impl_->requires_grad = on;
  return *this;
}

void check_shape(const Tensor& t, const Shape& s, const char* what) {
  SL_CHECK(t.defined(), ShapeError, what, ": tensor is undefined, expected shape ", s.str());
  SL_CHECK(t.shape() == s, ShapeError, what, ": expected shape ", s.str(), ", got ", t.shape().str());
}

void check_same(const Tensor& a, const Tensor& b, const char* what) {
  SL_CHECK(a.device() == b.device(), ValueError, what, ": tensors on different devices (", a.device().str(), " vs ",
           b.device().str(), ")");
  SL_CHECK(a.dtype() == b.dtype(), ValueError, what, ": tensors of different dtypes (", dtype_name(a.dtype()), " vs ",
           dtype_name(b.dtype()), ")");
}

}  // namespace sl
