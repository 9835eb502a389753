// Fused multi-tensor optimizer steps for the CUDA backend: every parameter of a model updated by one kernel
// launch (up to kMultiTensorMax tensors per launch; more take several). Same math, in double per element, as
// sgd_step / adam_step of kernels/backend_api.inc. All tensors on one CUDA device, one dtype (float32 or
// float64), contiguous; the i-th entries of the lists belong together (same numel). Lists the update does not use
// may be empty: momentum_bufs when momentum == 0, vmax when !amsgrad.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/dispatch.h"

namespace sl::cuda {

constexpr int kMultiTensorMax = 48;

void sgd_step_multi(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                    const std::vector<Tensor>& momentum_bufs, const SgdArgs& a, bool first_step);

void adam_step_multi(const std::vector<Tensor>& params, const std::vector<Tensor>& grads, const std::vector<Tensor>& m,
                     const std::vector<Tensor>& v, const std::vector<Tensor>& vmax, const AdamArgs& a, int64_t step);

// Adam whose learning rate and step counts live in device memory, so that one recorded launch stays right when
// it is replayed from a CUDA graph (autograd/graph_step.h): lr is float64 [1] (a.lr is ignored); tensor i's step count
// is steps[slots[i]] (float64 [any], exact up to 2^53). Each launch reads t = count + 1, computes the bias
// corrections 1 - beta^t in the kernel, and its last block writes the incremented counts back. ticket is int32
// [1], zero between launches (the launch leaves it zero), owned by the caller. Same per-element math as adam_step.
void adam_step_multi_device(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                            const std::vector<Tensor>& m, const std::vector<Tensor>& v, const std::vector<Tensor>& vmax,
                            const AdamArgs& a, const Tensor& lr, const Tensor& steps, const std::vector<int>& slots,
                            const Tensor& ticket);

}  // namespace sl::cuda
