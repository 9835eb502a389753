// Replaying a fixed-shape step from a CUDA graph, so a small model pays one launch per step instead of dozens.
//
// CapturedStep wraps a step function (typically zero_grad -> forward -> loss -> backward -> optimizer step) that
// reads its inputs from tensors it keeps at fixed addresses ("static inputs": copy each new batch into them
// before the call). On CUDA the engine decides how each call runs:
//   calls 1 .. warmup   eager, with a private allocator pool of the capture active (tensor/cuda_stats.h), so
//                       every block the step needs already sits in that pool and its persistent state (optimizer
//                       moments, gradients) is created;
//   call warmup + 1     the step is recorded into a CUDA graph (nothing runs while recording), then replayed once;
//   later calls         the graph is replayed: one cudaGraphLaunch, no host work besides it.
// On the CPU, without CUDA, with SPLITLEAK_CUDA_GRAPHS=0 in the environment, or after a failed capture, every
// call simply runs the step. A failed capture (the step synchronised or read a device value on the host, say) is
// reported once on stderr with the reason, the step is then run eagerly so that no call is lost, and the object
// stays eager.
//
// What a captured step may do: queue device work (kernels, device copies, memsets) and allocate/free device
// tensors. What it must not do: copy host data to the device or read device data on the host (both throw while
// capturing), draw random numbers whose seed/offset should change per call (the graph replays the same values),
// or depend on host values that change between calls (shapes, flags, SGD's lr: call invalidate() after such a
// change; Adam keeps lr and step counts on the device, nn/optim.h). Tensors the step assigns to variables outside
// itself (loss, logits, the parameters' .grad) are the graph's own buffers after the capture: a replay refreshes
// them, as long as no eager run of the step (ShapedStep's odd-shaped batches) has reassigned them in between.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace sl {

namespace cuda_rt {
struct Graph;
}

class CapturedStep {
 public:
  // device: where the step's tensors live (graphs only for CUDA devices). warmup >= 1 eager calls come first.
  CapturedStep(std::function<void()> step, Device device, int warmup = 2);
  ~CapturedStep();
  CapturedStep(const CapturedStep&) = delete;
  CapturedStep& operator=(const CapturedStep&) = delete;

  void operator()();  // one step (eager, capture + replay, or replay)
  // Drops the graph: the next calls warm up and capture again (after a host-side change the graph baked in).
  void invalidate();

  bool graph_enabled() const { return enabled_; }  // false: every call is eager (and why: fallback_reason())
  bool replaying() const { return graph_ != nullptr; }
  const std::string& fallback_reason() const { return reason_; }
  int64_t calls() const { return calls_; }
  int64_t replays() const { return replays_; }
  int64_t captures() const { return captures_; }
  size_t graph_nodes() const;  // nodes (kernels, copies, memsets) in the current graph; 0 without one

 private:
  void capture();
  void disable(const std::string& why);

  std::function<void()> step_;
  Device device_;
  int warmup_;
  bool enabled_ = false;
  int pool_ = 0;
  int eager_since_invalidate_ = 0;
  cuda_rt::Graph* graph_ = nullptr;
  std::string reason_;
  int64_t calls_ = 0, replays_ = 0, captures_ = 0;
};

// A CapturedStep fed with batches: step(inputs) runs on device tensors of a fixed shape. run(batch) copies a
// batch of the first batch's shapes into static device inputs and calls the captured step; a batch of any other
// shape (the last, partial batch of an epoch) is moved to the device and run eagerly through the same function.
// On the CPU every call is eager on the batch itself.
class ShapedStep {
 public:
  using Fn = std::function<void(const std::vector<Tensor>& inputs)>;
  ShapedStep(Fn step, Device device, int warmup = 2);
  void run(const std::vector<Tensor>& batch);
  void invalidate();
  const CapturedStep* captured() const { return captured_.get(); }  // null until the first fixed-shape batch
  int64_t eager_calls() const { return eager_calls_; }

 private:
  Fn step_;
  Device device_;
  int warmup_;
  std::vector<Tensor> static_inputs_;
  std::unique_ptr<CapturedStep> captured_;
  int64_t eager_calls_ = 0;
};

}  // namespace sl
