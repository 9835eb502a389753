// A node of the define-by-run graph: the op that made a tensor, the tensors it read, and how to send a
// gradient back to them. The engine (engine.cpp) sorts nodes topologically and runs their backward.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace sl {

struct Node {
  std::string name;            // op name, for error messages and graph dumps
  std::vector<Tensor> inputs;  // the op's tensor inputs (edges to parents)
  // Given d(loss)/d(output), returns d(loss)/d(input_i) for each input (undefined where none is needed).
  std::function<std::vector<Tensor>(const Tensor& grad_out)> backward;
};

// --- grad mode: record graphs or not (thread-local) ---------------------------
bool grad_enabled();
void set_grad_enabled(bool on);

// Scope in which ops record no graph (evaluation, attack targets, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when an op over these inputs must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Attaches a node to `out` when any input requires grad and grad mode is on; returns out.
// Op implementations call it as: return record("relu", {x}, y, [y = y.detach()](const Tensor& g){ ... });
// A backward that needs the output captures y.detach(), never y itself: y owns the node, so that would be a
// reference cycle and the graph would never be freed.
Tensor record(const char* name, std::vector<Tensor> inputs, Tensor out,
              std::function<std::vector<Tensor>(const Tensor&)> backward);

}  // namespace sl
