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

void adam_step_multi(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                     const std::vector<Tensor>& m, const std::vector<Tensor>& v, const std::vector<Tensor>& vmax,
                     const AdamArgs& a, int64_t step);

}  // namespace sl::cuda
