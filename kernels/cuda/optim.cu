// Parameter updates (formulas in kernels/backend_api.inc; PyTorch's SGD and Adam), in double per element exactly
// as the CPU computes them. The single-tensor entries run one grid-stride kernel; the multi-tensor entries
// (kernels/cuda/optim_multi.h) pass a table of up to kMultiTensorMax tensors by value as a kernel parameter and
// let block b find its tensor by binary search over the tensors' first blocks: one launch for a whole model.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/optim_multi.h"

namespace sl::cuda {

namespace {
struct AdamConst {
  double beta1, beta2, eps, wd, step_size, bc2_sqrt;
  bool amsgrad;
};
AdamConst adam_const(const AdamArgs& a, int64_t step) {
  double bc1 = 1 - std::pow(a.beta1, double(step)), bc2 = 1 - std::pow(a.beta2, double(step));
  return {a.beta1, a.beta2, a.eps, a.weight_decay, a.lr / bc1, std::sqrt(bc2), a.amsgrad};
}

template <class T>
__device__ __forceinline__ void sgd_elem(T* p, const T* g, T* b, int64_t i, const SgdArgs& a, bool first) {
  double gi = double(g[i]) + a.weight_decay * double(p[i]);
  if (b) {
    double bi = first ? gi : a.momentum * double(b[i]) + (1 - a.dampening) * gi;
    b[i] = T(bi);
    gi = a.nesterov ? gi + a.momentum * bi : bi;
  }
  p[i] = T(double(p[i]) - a.lr * gi);
}

// One element's update from its loaded values (in double, as the CPU); writes m, v (vmax) and returns p. Every
// operation is an explicitly rounded intrinsic, so the compiler cannot fuse a multiply and an add differently in
// the per-tensor and the multi-tensor kernels: both give the same bits.
template <class T>
__device__ __forceinline__ T adam_math(T p, T g, T& m, T& v, T* vmax, const AdamConst& c) {
  const double gi = __fma_rn(c.wd, double(p), double(g));
  const double mi = __fma_rn(c.beta1, double(m), __dmul_rn(__dadd_rn(1.0, -c.beta1), gi));
  const double vi = __fma_rn(c.beta2, double(v), __dmul_rn(__dmul_rn(__dadd_rn(1.0, -c.beta2), gi), gi));
  m = T(mi);
  v = T(vi);
  double vh = vi;
  if (vmax) {
    vh = fmax(double(*vmax), vi);
    *vmax = T(vh);
  }
  const double denom = __dadd_rn(__ddiv_rn(__dsqrt_rn(vh), c.bc2_sqrt), c.eps);
  return T(__dadd_rn(double(p), -__ddiv_rn(__dmul_rn(c.step_size, mi), denom)));
}

template <class T>
__device__ __forceinline__ void adam_elem(T* p, const T* g, T* m, T* v, T* vmax, int64_t i, const AdamConst& c) {
  T mi = m[i], vi = v[i], vmi = vmax ? vmax[i] : T(0);
  p[i] = adam_math(p[i], g[i], mi, vi, vmax ? &vmi : nullptr, c);
  m[i] = mi;
  v[i] = vi;
  if (vmax) vmax[i] = vmi;
}

// ---- multi-tensor -------------------------------------------------------------------------------------------
constexpr int kMtThreads = 256, kMtChunk = kMtThreads * 4;  // elements per block

template <class T>
struct TensorTable {
  T* p[kMultiTensorMax];
  const T* g[kMultiTensorMax];
  T* s0[kMultiTensorMax];  // sgd: momentum buffer; adam: m
  T* s1[kMultiTensorMax];  // adam: v
  T* s2[kMultiTensorMax];  // adam: vmax
  int64_t n[kMultiTensorMax];
  double* step[kMultiTensorMax];  // adam_step_multi_device: the tensor's step count
  int first_block[kMultiTensorMax + 1];
  int count;
};

template <class T>
__device__ __forceinline__ int find_tensor(const TensorTable<T>& tt, int b) {
  int lo = 0, hi = tt.count - 1;  // last t with first_block[t] <= b
  while (lo < hi) {
    int mid = (lo + hi + 1) >> 1;
    if (tt.first_block[mid] <= b)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

template <class T>
__global__ void __launch_bounds__(kMtThreads)
    sgd_multi_kernel(const __grid_constant__ TensorTable<T> tt, SgdArgs a, bool first) {
  const int t = find_tensor(tt, blockIdx.x);
  const int64_t base = int64_t(blockIdx.x - tt.first_block[t]) * kMtChunk;
  const int64_t end = min(tt.n[t], base + kMtChunk);
  for (int64_t i = base + threadIdx.x; i < end; i += kMtThreads) sgd_elem(tt.p[t], tt.g[t], tt.s0[t], i, a, first);
}

// A block's chunk of Adam: each thread's kMtChunk / kMtThreads elements loaded first (every load in flight at
// once; the arrays may alias as far as the compiler knows, so a load-update-store loop would wait on each
// element's stores), then updated and stored. ready() runs between the loads and the math (the device-state
// kernel computes its bias corrections there).
constexpr int kMtPer = kMtChunk / kMtThreads;
template <class T, class Ready>
__device__ __forceinline__ void adam_chunk(const TensorTable<T>& tt, int t, Ready ready) {
  const int64_t base = int64_t(blockIdx.x - tt.first_block[t]) * kMtChunk + threadIdx.x;
  const int64_t n = tt.n[t];
  T* p = tt.p[t];
  const T* g = tt.g[t];
  T *m = tt.s0[t], *v = tt.s1[t], *vmax = tt.s2[t];
  T pv[kMtPer], gv[kMtPer], mv[kMtPer], vv[kMtPer], xv[kMtPer];
#pragma unroll
  for (int k = 0; k < kMtPer; ++k) {
    const int64_t i = base + int64_t(k) * kMtThreads;
    if (i < n) {
      pv[k] = p[i];
      gv[k] = g[i];
      mv[k] = m[i];
      vv[k] = v[i];
      xv[k] = vmax ? vmax[i] : T(0);
    }
  }
  const AdamConst c = ready();
#pragma unroll
  for (int k = 0; k < kMtPer; ++k) {
    const int64_t i = base + int64_t(k) * kMtThreads;
    if (i < n) {
      p[i] = adam_math(pv[k], gv[k], mv[k], vv[k], vmax ? &xv[k] : nullptr, c);
      m[i] = mv[k];
      v[i] = vv[k];
      if (vmax) vmax[i] = xv[k];
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kMtThreads)
    adam_multi_kernel(const __grid_constant__ TensorTable<T> tt, AdamConst c) {
  adam_chunk(tt, find_tensor(tt, blockIdx.x), [&] { return c; });
}

// Device-state Adam: block b's tensor t runs step steps[t] + 1 with lr[0]; the bias corrections are computed here
// (thread 0 of each block, shared with the block). Thread 0 of every block reads its count, then (after a fence)
// takes a ticket; the block that draws the last ticket has therefore seen all reads done, bumps every tensor's
// count once and resets the ticket for the next launch. All of it happens while the block's element loads are in
// flight, so no block waits on a fence and an atomic after its stores.
struct AdamDevConst {
  double beta1, beta2, eps, wd;
  double log_beta1, log_beta2;  // log(beta) from the host: 1 - beta^t = -expm1(t log beta), no pow() per block
};
template <class T>
__global__ void __launch_bounds__(kMtThreads)
    adam_multi_device_kernel(const __grid_constant__ TensorTable<T> tt, AdamDevConst d, const double* lr,
                             unsigned* ticket) {
  const int t = find_tensor(tt, blockIdx.x);
  __shared__ double s_step_size, s_bc2_sqrt;
  adam_chunk(tt, t, [&] {
    if (threadIdx.x == 0) {
      const double step = *tt.step[t] + 1.0;
      const double step_size = lr[0] / -expm1(step * d.log_beta1);
      s_step_size = step_size;
      s_bc2_sqrt = sqrt(-expm1(step * d.log_beta2));
      __threadfence();  // this block's read of its count is done before its ticket is taken
      if (atomicAdd(ticket, 1u) == gridDim.x - 1) {
        for (int k = 0; k < tt.count; ++k) *tt.step[k] += 1.0;
        *ticket = 0u;
        __threadfence();
      }
    }
    __syncthreads();
    AdamConst c;
    c.beta1 = d.beta1;
    c.beta2 = d.beta2;
    c.eps = d.eps;
    c.wd = d.wd;
    c.step_size = s_step_size;
    c.bc2_sqrt = s_bc2_sqrt;
    c.amsgrad = tt.s2[t] != nullptr;
    return c;
  });
}

template <class T>
T* ptr_or_null(const std::vector<Tensor>& v, size_t i) {
  return i < v.size() && v[i].defined() ? v[i].data<T>() : nullptr;
}

// Calls launch(table, blocks) for each group of up to kMultiTensorMax tensors.
template <class T, class Launch>
void for_tensor_groups(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                       const std::vector<Tensor>& s0, const std::vector<Tensor>& s1, const std::vector<Tensor>& s2,
                       const char* op, Launch launch) {
  SL_CHECK(grads.size() == params.size(), ShapeError, op, ": ", params.size(), " params but ", grads.size(), " grads");
  for (size_t start = 0; start < params.size(); start += kMultiTensorMax) {
    TensorTable<T> tt{};
    int blocks = 0;
    int count = int(std::min<size_t>(kMultiTensorMax, params.size() - start));
    int used = 0;
    for (int k = 0; k < count; ++k) {
      size_t i = start + size_t(k);
      const Tensor& p = params[i];
      SL_CHECK(p.device().is_cuda() && p.device() == params[0].device(), ValueError, op, ": every tensor must be on ",
               params[0].device().str());
      SL_CHECK(grads[i].numel() == p.numel(), ShapeError, op, ": grad ", i, " has ", grads[i].numel(),
               " elements, param ", p.numel());
      if (p.numel() == 0) continue;
      check_int32(p.numel(), op);
      tt.p[used] = p.data<T>();
      tt.g[used] = grads[i].data<T>();
      tt.s0[used] = ptr_or_null<T>(s0, i);
      tt.s1[used] = ptr_or_null<T>(s1, i);
      tt.s2[used] = ptr_or_null<T>(s2, i);
      tt.n[used] = p.numel();
      tt.first_block[used] = blocks;
      blocks += int((p.numel() + kMtChunk - 1) / kMtChunk);
      ++used;
    }
    tt.first_block[used] = blocks;
    tt.count = used;
    if (used > 0) launch(tt, blocks);
  }
}
}  // namespace

namespace {
template <class T>
void sgd_step_t(Tensor& param, const Tensor& grad, Tensor& buf, const SgdArgs& a, bool first_step) {
  T* p = param.data<T>();
  const T* g = grad.data<T>();
  T* b = a.momentum != 0 ? buf.data<T>() : nullptr;
  SgdArgs args = a;
  for_each(param, param.numel(), "sgd_step", [=] __device__(int64_t i) { sgd_elem(p, g, b, i, args, first_step); });
}

template <class T>
void adam_step_t(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& vmax, const AdamArgs& a,
                 int64_t step) {
  T* p = param.data<T>();
  const T* g = grad.data<T>();
  T* pm = m.data<T>();
  T* pv = v.data<T>();
  T* pvm = a.amsgrad ? vmax.data<T>() : nullptr;
  AdamConst c = adam_const(a, step);
  for_each(param, param.numel(), "adam_step", [=] __device__(int64_t i) { adam_elem(p, g, pm, pv, pvm, i, c); });
}
}  // namespace

void sgd_step(Tensor& param, const Tensor& grad, Tensor& buf, const SgdArgs& a, bool first_step) {
  SL_CUDA_DISPATCH(param, "sgd_step", sgd_step_t, param, grad, buf, a, first_step);
}

void adam_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& vmax, const AdamArgs& a, int64_t step) {
  SL_CUDA_DISPATCH(param, "adam_step", adam_step_t, param, grad, m, v, vmax, a, step);
}

void sgd_step_multi(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                    const std::vector<Tensor>& momentum_bufs, const SgdArgs& a, bool first_step) {
  if (params.empty()) return;
  std::vector<Tensor> none;
  const std::vector<Tensor>& bufs = a.momentum != 0 ? momentum_bufs : none;
  if (a.momentum != 0)
    SL_CHECK(bufs.size() == params.size(), ShapeError, "sgd_step_multi: ", params.size(), " params but ", bufs.size(),
             " momentum buffers");
  dispatch_float(params[0], "sgd_step_multi", [&](auto t) {
    using T = decltype(t);
    cudaStream_t s = stream_of(params[0]);
    for_tensor_groups<T>(params, grads, bufs, none, none, "sgd_step_multi", [&](const TensorTable<T>& tt, int blocks) {
      sgd_multi_kernel<T><<<blocks, kMtThreads, 0, s>>>(tt, a, first_step);
      SL_CUDA_LAUNCH("sgd_step_multi");
    });
  });
}

void adam_step_multi(const std::vector<Tensor>& params, const std::vector<Tensor>& grads, const std::vector<Tensor>& m,
                     const std::vector<Tensor>& v, const std::vector<Tensor>& vmax, const AdamArgs& a, int64_t step) {
  if (params.empty()) return;
  SL_CHECK(m.size() == params.size() && v.size() == params.size(), ShapeError, "adam_step_multi: ", params.size(),
           " params but ", m.size(), " m and ", v.size(), " v buffers");
  std::vector<Tensor> none;
  if (a.amsgrad)
    SL_CHECK(vmax.size() == params.size(), ShapeError, "adam_step_multi: amsgrad needs ", params.size(),
             " vmax buffers, got ", vmax.size());
  AdamConst c = adam_const(a, step);
  dispatch_float(params[0], "adam_step_multi", [&](auto t) {
    using T = decltype(t);
    cudaStream_t s = stream_of(params[0]);
    for_tensor_groups<T>(params, grads, m, v, a.amsgrad ? vmax : none, "adam_step_multi",
                         [&](const TensorTable<T>& tt, int blocks) {
                           adam_multi_kernel<T><<<blocks, kMtThreads, 0, s>>>(tt, c);
                           SL_CUDA_LAUNCH("adam_step_multi");
                         });
  });
}

void adam_step_multi_device(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                            const std::vector<Tensor>& m, const std::vector<Tensor>& v, const std::vector<Tensor>& vmax,
                            const AdamArgs& a, const Tensor& lr, const Tensor& steps, const std::vector<int>& slots,
                            const Tensor& ticket) {
  if (params.empty()) return;
  const char* op = "adam_step_multi_device";
  SL_CHECK(m.size() == params.size() && v.size() == params.size() && slots.size() == params.size(), ShapeError, op,
           ": ", params.size(), " params but ", m.size(), " m, ", v.size(), " v buffers and ", slots.size(),
           " step slots");
  if (a.amsgrad)
    SL_CHECK(vmax.size() == params.size(), ShapeError, op, ": amsgrad needs ", params.size(), " vmax buffers, got ",
             vmax.size());
  const Device dev = params[0].device();
  SL_CHECK(lr.dtype() == DType::f64 && lr.numel() >= 1 && lr.device() == dev, ValueError, op,
           ": lr must be float64 on ", dev.str(), ", got ", lr.str());
  SL_CHECK(steps.dtype() == DType::f64 && steps.device() == dev, ValueError, op, ": steps must be float64 on ",
           dev.str(), ", got ", steps.str());
  SL_CHECK(ticket.dtype() == DType::i32 && ticket.numel() >= 1 && ticket.device() == dev, ValueError, op,
           ": ticket must be int32 on ", dev.str());
  for (int sl : slots)
    SL_CHECK(sl >= 0 && sl < steps.numel(), ValueError, op, ": step slot ", sl, " outside steps ", steps.str());
  std::vector<Tensor> none;
  const AdamDevConst d{a.beta1, a.beta2, a.eps, a.weight_decay, std::log(a.beta1), std::log(a.beta2)};
  const double* plr = lr.data<double>();
  double* psteps = steps.data<double>();
  unsigned* pticket = reinterpret_cast<unsigned*>(ticket.data<int32_t>());
  dispatch_float(params[0], op, [&](auto tag) {
    using T = decltype(tag);
    cudaStream_t s = stream_of(params[0]);
    // for_tensor_groups skips empty tensors, so map each table entry back to its parameter to find its slot
    std::vector<size_t> nonempty;
    for (size_t i = 0; i < params.size(); ++i)
      if (params[i].numel() > 0) nonempty.push_back(i);
    size_t next = 0;
    for_tensor_groups<T>(params, grads, m, v, a.amsgrad ? vmax : none, op, [&](TensorTable<T> tt, int blocks) {
      for (int k = 0; k < tt.count; ++k) tt.step[k] = psteps + slots[nonempty[next++]];
      adam_multi_device_kernel<T><<<blocks, kMtThreads, 0, s>>>(tt, d, plr, pticket);
      SL_CUDA_LAUNCH(op);
    });
  });
}

}  // namespace sl::cuda
