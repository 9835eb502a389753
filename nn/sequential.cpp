#include "nn/sequential.h"

#include <cstdlib>
#include <sstream>

#include "nn/layers.h"

namespace sl {

namespace {
// SPLITLEAK_FUSE_POOL=0 runs Conv2d + ReLU + MaxPool2d as the pair and the pool (for A/B runs).
bool fuse_pool() {
  static const bool on = [] {
    const char* v = std::getenv("SPLITLEAK_FUSE_POOL");
    return !(v && v[0] == '0' && v[1] == 0);
  }();
  return on;
}
}  // namespace

Sequential& Sequential::add(std::string name, std::shared_ptr<Module> layer) {
  register_child(std::move(name), std::move(layer));
  return *this;
}

Tensor Sequential::run(const Tensor& x, size_t last) {
  Tensor y = x;
  const auto& layers = children();
  for (size_t i = 0; i <= last && i < layers.size(); ++i) {
    Module* m = layers[i].second.get();
    const bool relu_next = i + 1 <= last && i + 1 < layers.size() && dynamic_cast<ReLU*>(layers[i + 1].second.get());
    if (relu_next) {
      auto* pool =
          i + 2 <= last && i + 2 < layers.size() ? dynamic_cast<MaxPool2d*>(layers[i + 2].second.get()) : nullptr;
      if (auto* c = dynamic_cast<Conv2d*>(m); c && pool && fuse_pool()) {
        y = c->forward_relu_pool(y, pool->kernel, pool->stride);
        i += 2;
        continue;
      }
      if (auto* c = dynamic_cast<Conv2d*>(m)) {
        y = c->forward_relu(y);
        ++i;
        continue;
      }
      if (auto* l = dynamic_cast<Linear*>(m)) {
        y = l->forward_relu(y);
        ++i;
        continue;
      }
    }
    y = m->forward(y);
  }
  return y;
}

Tensor Sequential::forward(const Tensor& x) { return children().empty() ? x : run(x, children().size() - 1); }

Tensor Sequential::forward_until(const Tensor& x, const std::string& name) { return run(x, index_of(name)); }

std::vector<std::string> Sequential::layer_names() const {
  std::vector<std::string> names;
  for (auto& [name, layer] : children()) names.push_back(name);
  return names;
}

size_t Sequential::index_of(const std::string& name) const {
  for (size_t i = 0; i < children().size(); ++i)
    if (children()[i].first == name) return i;
  std::string valid;
  for (auto& n : layer_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw ValueError(str("no layer named '", name, "'; the layers are: ", valid.empty() ? "(none)" : valid));
}

std::shared_ptr<Module> Sequential::layer(const std::string& name) const { return children()[index_of(name)].second; }

SplitModel Sequential::split(const std::string& name) const {
  size_t last = index_of(name);
  SplitModel s{std::make_shared<Sequential>(), std::make_shared<Sequential>()};
  for (size_t i = 0; i < children().size(); ++i) {
    auto& [n, layer] = children()[i];
    (i <= last ? s.head : s.tail)->add(n, layer);
  }
  s.head->train(is_training());
  s.tail->train(is_training());
  return s;
}

Shape Sequential::output_shape(const Shape& in) const {
  Shape s = in;
  for (auto& [name, layer] : children()) s = layer->output_shape(s);
  return s;
}

std::vector<std::pair<std::string, Shape>> Sequential::output_shapes(const Shape& in) const {
  std::vector<std::pair<std::string, Shape>> out;
  Shape s = in;
  for (auto& [name, layer] : children()) {
    s = layer->output_shape(s);
    out.emplace_back(name, s);
  }
  return out;
}

std::string Sequential::describe() const { return str("Sequential(", size(), " layers)"); }

std::string Sequential::summary(const Shape& in) const {
  std::ostringstream os;
  Shape s = in;
  for (auto& [name, layer] : children()) {
    s = layer->output_shape(s);
    os << name << std::string(name.size() < 8 ? 8 - name.size() : 1, ' ') << layer->describe() << "  " << s.str()
       << "\n";
  }
  return os.str();
}

}  // namespace sl
