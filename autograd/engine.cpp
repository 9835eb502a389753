// The backward engine: topological sort from the root, gradients summed per tensor, leaves accumulate
// into .grad, and the graph is freed afterwards unless asked to keep it.
#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"
#include "kernels/dispatch.h"

namespace sl {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (auto* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

Tensor record(const char* name, std::vector<Tensor> inputs, Tensor out,
              std::function<std::vector<Tensor>(const Tensor&)> backward) {
  if (!g_grad_enabled) return out;
  bool any = false;
  for (auto& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) return out;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.impl()->grad_fn = node;
  out.impl()->requires_grad = true;
  return out;
}

void Tensor::backward(const Tensor& seed, bool retain_graph) const {
  SL_CHECK(requires_grad(), ValueError, "backward() on a tensor that does not require grad (", str(), ")");
  Tensor g0 = seed;
  if (!g0.defined()) {
    SL_CHECK(numel() == 1, ShapeError, "backward() on a non-scalar ", str(), " needs a seed gradient");
    g0 = Tensor::ones(shape(), dtype(), device());
  }
  check_shape(g0, shape(), "backward seed");

  // Post-order DFS (iterative) over tensors that require grad.
  std::vector<TensorImpl*> order;
  std::unordered_set<TensorImpl*> seen;
  std::vector<std::pair<TensorImpl*, size_t>> stack{{impl(), 0}};
  seen.insert(impl());
  while (!stack.empty()) {
    auto& [t, i] = stack.back();
    Node* n = t->grad_fn.get();
    if (n && i < n->inputs.size()) {
      TensorImpl* in = n->inputs[i++].impl();
      if (in && in->requires_grad && seen.insert(in).second) stack.push_back({in, 0});
    } else {
      order.push_back(t);
      stack.pop_back();
    }
  }

  std::unordered_map<TensorImpl*, Tensor> grads;
  grads[impl()] = g0;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    TensorImpl* t = *it;
    auto gi = grads.find(t);
    if (gi == grads.end()) continue;  // no path from the root carried a gradient here
    Tensor g = gi->second;
    grads.erase(gi);
    Node* n = t->grad_fn.get();
    if (!n) {  // leaf: accumulate
      if (!t->grad) {
        // Adopt the incoming gradient when nothing else can see it (its tensor and storage are referenced only
        // here, so later in-place accumulation cannot leak into another tensor); otherwise copy it. Saves one
        // device copy per parameter per step.
        const bool sole = g.impl_ptr().use_count() == 1 && g.impl()->storage.use_count() == 1 && g.is_contiguous() &&
                          !g.impl()->grad_fn && !g.requires_grad() && g.offset() == 0;
        t->grad = sole ? g.impl_ptr() : g.clone().impl_ptr();
      } else {
        Tensor acc(t->grad);
        kern::add_inplace(acc, g);
      }
      continue;
    }
    SL_CHECK(n->backward, ValueError, "backward through '", n->name,
             "' a second time: the graph was freed (pass retain_graph=true to keep it)");
    std::vector<Tensor> gin = n->backward(g);
    for (size_t k = 0; k < n->inputs.size() && k < gin.size(); ++k) {
      TensorImpl* in = n->inputs[k].impl();
      if (!in || !in->requires_grad || !gin[k].defined()) continue;
      check_shape(gin[k], in->shape, n->name.c_str());
      auto& slot = grads[in];
      if (!slot.defined()) {
        slot = gin[k];
      } else {
        if (slot.impl()->storage.use_count() > 1 || !slot.is_contiguous()) slot = slot.clone();
        kern::add_inplace(slot, gin[k]);
      }
    }
  }
  if (!retain_graph) {
    for (TensorImpl* t : order) {
      if (auto& n = t->grad_fn) {
        n->backward = nullptr;
        n->inputs.clear();
      }
    }
  }
}

}  // namespace sl
