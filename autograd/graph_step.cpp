#include "autograd/graph_step.h"

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "tensor/cuda_runtime.h"
#ifdef SPLITLEAK_WITH_CUDA
#include "tensor/cuda_stats.h"
#endif

namespace sl {

namespace {
bool graphs_allowed_by_env() {
  const char* v = std::getenv("SPLITLEAK_CUDA_GRAPHS");
  return !(v && std::strcmp(v, "0") == 0);
}

#ifdef SPLITLEAK_WITH_CUDA
// Makes `pool` the device's active allocator pool for a scope (restores the previous one, also on exceptions).
class PoolScope {
 public:
  PoolScope(int device, int pool) : device_(device), prev_(cuda_rt::active_pool(device)) {
    cuda_rt::set_active_pool(device, pool);
  }
  ~PoolScope() { cuda_rt::set_active_pool(device_, prev_); }

 private:
  int device_, prev_;
};
#endif
}  // namespace

CapturedStep::CapturedStep(std::function<void()> step, Device device, int warmup)
    : step_(std::move(step)), device_(device), warmup_(warmup < 1 ? 1 : warmup) {
  SL_CHECK(step_, ValueError, "CapturedStep: no step function");
#ifdef SPLITLEAK_WITH_CUDA
  if (!device.is_cuda()) {
    reason_ = "not a CUDA device";
  } else if (!graphs_allowed_by_env()) {
    reason_ = "SPLITLEAK_CUDA_GRAPHS=0";
  } else if (!cuda_available()) {
    reason_ = "no GPU";
  } else {
    enabled_ = true;
    pool_ = cuda_rt::create_pool(device.index);
  }
#else
  reason_ = device.is_cuda() ? "built without CUDA" : "not a CUDA device";
#endif
}

CapturedStep::~CapturedStep() {
#ifdef SPLITLEAK_WITH_CUDA
  try {
    cuda_rt::destroy(graph_);
    graph_ = nullptr;
    if (pool_ > 0) cuda_rt::release_pool(device_.index, pool_);
  } catch (...) {  // a destructor must not throw; the memory goes back to the driver at exit anyway
  }
#endif
}

size_t CapturedStep::graph_nodes() const { return cuda_rt::graph_nodes(graph_); }

void CapturedStep::disable(const std::string& why) {
  enabled_ = false;
  reason_ = why;
  std::cerr << "note: CUDA graph capture of the step failed, running it eagerly from now on (" << why << ")\n";
}

void CapturedStep::invalidate() {
  if (graph_) {
    cuda_rt::destroy(graph_);  // waits for the stream: the graph's last replay is done
    graph_ = nullptr;
  }
  eager_since_invalidate_ = 0;
}

void CapturedStep::operator()() {
  ++calls_;
  if (!enabled_) {
    step_();
    return;
  }
#ifdef SPLITLEAK_WITH_CUDA
  if (graph_) {
    cuda_rt::replay(graph_);
    ++replays_;
    return;
  }
  if (eager_since_invalidate_ < warmup_) {
    PoolScope scope(device_.index, pool_);
    step_();
    ++eager_since_invalidate_;
    return;
  }
  capture();
  if (graph_) {
    cuda_rt::replay(graph_);
    ++replays_;
  } else {
    step_();  // the capture failed and ran nothing: this call's work still has to happen
  }
#endif
}

void CapturedStep::capture() {
#ifdef SPLITLEAK_WITH_CUDA
  std::string why;
  {
    PoolScope scope(device_.index, pool_);
    try {
      cuda_rt::begin_capture(device_);
      try {
        step_();
      } catch (...) {
        cuda_rt::abort_capture(device_);
        throw;
      }
      graph_ = cuda_rt::end_capture(device_);
      ++captures_;
    } catch (const std::exception& e) {
      graph_ = nullptr;
      why = e.what();
    }
  }
  if (!graph_) disable(why.empty() ? "unknown error" : why);
#endif
}

// ---- ShapedStep ------------------------------------------------------------------------------------------------
ShapedStep::ShapedStep(Fn step, Device device, int warmup) : step_(std::move(step)), device_(device), warmup_(warmup) {
  SL_CHECK(step_, ValueError, "ShapedStep: no step function");
}

void ShapedStep::invalidate() {
  if (captured_) captured_->invalidate();
}

void ShapedStep::run(const std::vector<Tensor>& batch) {
  if (!device_.is_cuda()) {
    ++eager_calls_;
    step_(batch);
    return;
  }
  if (!captured_) {  // the first batch fixes the shapes of the static inputs
    for (auto& t : batch) static_inputs_.push_back(Tensor::empty(t.shape(), t.dtype(), device_));
    captured_ = std::make_unique<CapturedStep>([this] { step_(static_inputs_); }, device_, warmup_);
  }
  bool same = batch.size() == static_inputs_.size();
  for (size_t i = 0; same && i < batch.size(); ++i)
    same = batch[i].shape() == static_inputs_[i].shape() && batch[i].dtype() == static_inputs_[i].dtype();
  if (!same) {
    std::vector<Tensor> on_device;
    for (auto& t : batch) on_device.push_back(t.to(device_));
    ++eager_calls_;
    step_(on_device);
    return;
  }
  for (size_t i = 0; i < batch.size(); ++i) static_inputs_[i].copy_(batch[i]);
  (*captured_)();
}

}  // namespace sl
