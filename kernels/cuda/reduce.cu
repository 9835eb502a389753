// Reductions: deterministic two-pass sums in double (kernels/cuda/common.cuh: block b sums a fixed grid-stride
// share with a warp-shuffle tree, one block adds the partials in order; the grid depends on n only).
// argmax_rows: one warp per row, ties to the lowest index (as the CPU's first-max scan).
#include "kernels/cuda/common.cuh"

namespace sl::cuda {

namespace {
template <class T>
void sum_t(const Tensor& x, Tensor& out) {
  const T* p = x.data<T>();
  T* o = out.data<T>();
  reduce_sum(
      x, x.numel(), "sum", [=] __device__(int64_t i) { return double(p[i]); },
      [=] __device__(double s) { o[0] = T(s); });
}

template <class T>
void fill_from_scalar_t(const Tensor& s, double factor, Tensor& out) {
  const T* ps = s.data<T>();
  T* p = out.data<T>();
  for_each(out, out.numel(), "fill_from_scalar", [=] __device__(int64_t i) { p[i] = T(double(ps[0]) * factor); });
}

template <class T>
void mean_sq_forward_t(const Tensor& x, Tensor& out) {
  const T* p = x.data<T>();
  T* o = out.data<T>();
  int64_t n = x.numel();
  double inv = n ? 1.0 / double(n) : 0.0;
  reduce_sum(
      x, n, "mean_sq_forward", [=] __device__(int64_t i) { return double(p[i]) * double(p[i]); },
      [=] __device__(double s) { o[0] = T(s * inv); });
}

template <class T>
void mean_sq_backward_t(const Tensor& x, const Tensor& gout, Tensor& gx) {
  const T* p = x.data<T>();
  const T* go = gout.data<T>();
  T* g = gx.data<T>();
  double n = double(x.numel());
  for_each(x, x.numel(), "mean_sq_backward", [=] __device__(int64_t i) { g[i] = T(2.0 * double(go[0]) / n) * p[i]; });
}
}  // namespace

void sum(const Tensor& x, Tensor& out) { SL_CUDA_DISPATCH(x, "sum", sum_t, x, out); }
void fill_from_scalar(const Tensor& s, double factor, Tensor& out) {
  SL_CUDA_DISPATCH(out, "fill_from_scalar", fill_from_scalar_t, s, factor, out);
}
void mean_sq_forward(const Tensor& x, Tensor& out) { SL_CUDA_DISPATCH(x, "mean_sq", mean_sq_forward_t, x, out); }
void mean_sq_backward(const Tensor& x, const Tensor& gout, Tensor& gx) {
  SL_CUDA_DISPATCH(x, "mean_sq_backward", mean_sq_backward_t, x, gout, gx);
}

namespace {
template <class T>
__global__ void argmax_rows_kernel(const T* x, int32_t* idx, int rows, int cols) {
  const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= rows) return;
  const T* r = x + int64_t(row) * cols;
  T best = T(0);
  int bi = -1;  // -1: this lane saw no column
  for (int j = lane; j < cols; j += 32)
    if (bi < 0 || r[j] > best) {
      best = r[j];
      bi = j;
    }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    T ob = __shfl_xor_sync(0xffffffffu, best, o);
    int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (oi >= 0 && (bi < 0 || ob > best || (ob == best && oi < bi))) {
      best = ob;
      bi = oi;
    }
  }
  if (lane == 0) idx[row] = bi;
}

template <class T>
void argmax_rows_t(const Tensor& x, Tensor& idx) {
  int rows = int(x.size(0)), cols = int(x.size(1));
  if (rows == 0 || cols == 0) return;
  constexpr int kWarps = 8;
  argmax_rows_kernel<T>
      <<<(rows + kWarps - 1) / kWarps, kWarps * 32, 0, stream_of(x)>>>(x.data<T>(), idx.data<int32_t>(), rows, cols);
  SL_CUDA_LAUNCH("argmax_rows");
}
}  // namespace

void argmax_rows(const Tensor& x, Tensor& idx) { SL_CUDA_DISPATCH(x, "argmax_rows", argmax_rows_t, x, idx); }

}  // namespace sl::cuda
