#include "nn/module.h"

namespace sl {

namespace {

// Makes `param` hold `moved`'s data (same shape, new device or dtype) without changing which TensorImpl it
// is, so every holder of the parameter sees the change. The gradient, if any, is converted the same way.
void replace_data(Tensor& param, const Tensor& moved, const Tensor& moved_grad) {
  TensorImpl* p = param.impl();
  p->storage = moved.impl()->storage;
  p->offset = moved.offset();
  p->strides = moved.strides();
  p->dtype = moved.dtype();
  p->grad = moved_grad.defined() ? moved_grad.impl_ptr() : nullptr;
}

}  // namespace

void Module::reset_parameters(Generator& gen) {
  for (auto& [name, child] : children_) child->reset_parameters(gen);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [name, t] : params_) out.emplace_back(name, *t);
  for (auto& [cname, child] : children_)
    for (auto& [pname, t] : child->named_parameters()) out.emplace_back(cname + "." + pname, t);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& t : parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(Device d) {
  for (Tensor& t : parameters()) {
    if (t.device() == d) continue;
    replace_data(t, t.to(d), t.grad().defined() ? t.grad().to(d) : Tensor());
  }
}

void Module::to(DType dt) {
  SL_CHECK(dt != DType::i32, ValueError, "parameters must be float32 or float64, not int32");
  for (Tensor& t : parameters()) {
    if (t.dtype() == dt) continue;
    replace_data(t, t.to(dt), t.grad().defined() ? t.grad().to(dt) : Tensor());
  }
}

void Module::zero_grad() {
  for (Tensor& t : parameters()) t.zero_grad();
}

void Module::register_parameter(std::string name, Tensor* t) {
  SL_CHECK(t && t->defined(), ValueError, "parameter '", name, "' is undefined");
  t->requires_grad_(true);
  params_.emplace_back(std::move(name), t);
}

void Module::register_child(std::string name, std::shared_ptr<Module> m) {
  SL_CHECK(m != nullptr, ValueError, "child module '", name, "' is null");
  SL_CHECK(!name.empty() && name.find('.') == std::string::npos, ValueError, "module name '", name,
           "' must be non-empty and contain no '.'");
  for (auto& [n, c] : children_) SL_CHECK(n != name, ValueError, "a module named '", name, "' already exists");
  children_.emplace_back(std::move(name), std::move(m));
}

}  // namespace sl
