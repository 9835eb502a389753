// Dense matrix products on the GPU, on the tiled register-blocked engine of kernels/cuda/igemm.cuh:
//
//   C = alpha * op(A) op(B) + beta * C       (row-major; op(X) = X or X^T; beta == 0 never reads C)
//   linear:  y = x W^T + b,   gx = gy W,   gw = gy^T x,   gb = column sums of gy
//
// All four transpose combinations are one problem type each, so every load is a plain strided read; the
// bias of the linear layer is added in the GEMM's epilogue (no extra pass). gb sums each column in row order.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/igemm.cuh"

namespace sl::cuda {

namespace {

template <class T, bool TA, bool TB>
struct GemmProblem {
  static constexpr bool kAContigK = !TA;
  static constexpr bool kBContigN = !TB;
  const T* A;
  const T* B;
  T* C;
  const T* bias;  // per column, may be null
  int lda, ldb, ldc;
  T alpha, beta;
  bool relu = false;  // max(r, 0) after alpha, beta and bias (NaN -> 0, as the relu op)
  __device__ const T* a_src(int m, int k, bool& ok) const {
    ok = true;
    return TA ? A + int64_t(k) * lda + m : A + int64_t(m) * lda + k;
  }
  __device__ const T* b_src(int k, int n, bool& ok) const {
    ok = true;
    return TB ? B + int64_t(n) * ldb + k : B + int64_t(k) * ldb + n;
  }
  __device__ T a(int m, int k) const { return TA ? A[int64_t(k) * lda + m] : A[int64_t(m) * lda + k]; }
  __device__ T b(int k, int n) const { return TB ? B[int64_t(n) * ldb + k] : B[int64_t(k) * ldb + n]; }
  __device__ void store(int m, int n, T v) const {
    T* c = C + int64_t(m) * ldc + n;
    T r = alpha * v;
    if (beta != T(0)) r += beta * *c;
    if (bias) r += bias[n];
    if (relu && !(r > T(0))) r = T(0);
    *c = r;
  }
};

// The linear layer's weight and bias gradients in one GEMM: C [out, in + 1] = gy^T [out, n] . [x | 1] [n, in + 1];
// column `in` (B = 1 there) is the bias gradient, the column sums of gy.
template <class T>
struct LinearWeightGrad {
  static constexpr bool kAContigK = false, kBContigN = true;
  const T* gy;  // [n, out]
  const T* x;   // [n, in]
  T* gw;        // [out, in]
  T* gb;        // [out]
  int out, in;
  __device__ const T* a_src(int m, int k, bool& ok) const {
    ok = true;
    return gy + int64_t(k) * out + m;
  }
  __device__ const T* b_src(int k, int n, bool& ok) const {
    ok = true;
    return n < in ? x + int64_t(k) * in + n : one_ptr<T>();
  }
  __device__ T a(int m, int k) const { return gy[int64_t(k) * out + m]; }
  __device__ T b(int k, int n) const { return n < in ? x[int64_t(k) * in + n] : T(1); }
  __device__ void store(int m, int n, T v) const {
    if (n < in)
      gw[int64_t(m) * in + n] = v;
    else
      gb[m] = v;
  }
};

template <class T>
void gemm_raw(bool ta, bool tb, int m, int n, int k, T alpha, const T* a, int lda, const T* b, int ldb, T beta, T* c,
              int ldc, const T* bias, const Tensor& on, const char* name, bool relu = false) {
  auto go = [&](auto pr) { igemm::run<T>(pr, m, n, k, on, name); };
  if (!ta && !tb)
    go(GemmProblem<T, false, false>{a, b, c, bias, lda, ldb, ldc, alpha, beta, relu});
  else if (!ta && tb)
    go(GemmProblem<T, false, true>{a, b, c, bias, lda, ldb, ldc, alpha, beta, relu});
  else if (ta && !tb)
    go(GemmProblem<T, true, false>{a, b, c, bias, lda, ldb, ldc, alpha, beta, relu});
  else
    go(GemmProblem<T, true, true>{a, b, c, bias, lda, ldb, ldc, alpha, beta, relu});
}

void check_matrix(const Tensor& t, const char* op, const char* what) {
  SL_CHECK(t.defined() && t.dim() == 2, ShapeError, op, ": ", what, " must be a 2-d matrix, got ",
           t.defined() ? t.shape().str() : std::string("undefined"));
  SL_CHECK(t.is_contiguous(), ValueError, op, ": ", what, " must be contiguous");
  SL_CHECK(t.device().is_cuda(), ValueError, op, ": ", what, " is on ", t.device().str());
  check_int32(t.numel(), op);
}

template <class T>
__global__ void column_sums_kernel(const T* g, T* out, int rows, int cols) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  double s = 0;
  for (int i = 0; i < rows; ++i) s += double(g[int64_t(i) * cols + j]);
  out[j] = T(s);
}

template <class T>
void gemm_t(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, double alpha, double beta) {
  const int64_t m = trans_a ? a.size(1) : a.size(0), k = trans_a ? a.size(0) : a.size(1);
  const int64_t kb = trans_b ? b.size(1) : b.size(0), n = trans_b ? b.size(0) : b.size(1);
  SL_CHECK(k == kb, ShapeError, "gemm: inner dimensions differ: op(A) is ", m, "x", k, ", op(B) is ", kb, "x", n);
  SL_CHECK(c.size(0) == m && c.size(1) == n, ShapeError, "gemm: C is ", c.shape().str(), ", expected [", m, ", ", n,
           "]");
  gemm_raw<T>(trans_a, trans_b, int(m), int(n), int(k), T(alpha), a.data<T>(), int(a.size(1)), b.data<T>(),
              int(b.size(1)), T(beta), c.data<T>(), int(n), nullptr, a, "gemm");
}

template <class T>
void linear_forward_t(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, bool relu) {
  const int n = int(x.size(0)), in = int(x.size(1)), out = int(w.size(0));
  SL_CHECK(w.size(1) == in, ShapeError, "linear: x ", x.str(), " has ", in, " features but weight ", w.str(),
           " expects ", w.size(1));
  check_shape(y, Shape{n, out}, "linear output");
  if (b.defined()) check_shape(b, Shape{out}, "linear bias");
  gemm_raw<T>(false, true, n, out, in, T(1), x.data<T>(), in, w.data<T>(), in, T(0), y.data<T>(), out,
              b.defined() ? b.data<T>() : nullptr, x, "linear_forward", relu);
}

template <class T>
void linear_backward_t(const Tensor& x, const Tensor& w, const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb) {
  const int n = int(x.size(0)), in = int(x.size(1)), out = int(w.size(0));
  check_shape(gy, Shape{n, out}, "linear backward grad_out");
  const T* pgy = gy.data<T>();
  if (gx.defined()) {  // gx [n, in] = gy [n, out] . W [out, in]
    check_shape(gx, Shape{n, in}, "linear backward grad_x");
    gemm_raw<T>(false, false, n, in, out, T(1), pgy, out, w.data<T>(), in, T(0), gx.data<T>(), in, nullptr, x,
                "linear_backward_data");
  }
  if (gw.defined() && gb.defined()) {  // both in one GEMM (LinearWeightGrad)
    check_shape(gw, Shape{out, in}, "linear backward grad_weight");
    check_shape(gb, Shape{out}, "linear backward grad_bias");
    igemm::run<T>(LinearWeightGrad<T>{pgy, x.data<T>(), gw.data<T>(), gb.data<T>(), out, in}, out, in + 1, n, x,
                  "linear_backward_weight_bias");
    return;
  }
  if (gw.defined()) {  // gw [out, in] = gy^T [out, n] . x [n, in]
    check_shape(gw, Shape{out, in}, "linear backward grad_weight");
    gemm_raw<T>(true, false, out, in, n, T(1), pgy, out, x.data<T>(), in, T(0), gw.data<T>(), in, nullptr, x,
                "linear_backward_weight");
  }
  if (gb.defined()) {
    check_shape(gb, Shape{out}, "linear backward grad_bias");
    if (out > 0) {
      column_sums_kernel<T><<<(out + 127) / 128, 128, 0, stream_of(x)>>>(pgy, gb.data<T>(), n, out);
      SL_CUDA_LAUNCH("linear_backward_bias");
    }
  }
}

}  // namespace

void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, Tensor& c, double alpha, double beta) {
  check_matrix(a, "gemm", "A");
  check_matrix(b, "gemm", "B");
  check_matrix(c, "gemm", "C");
  SL_CHECK(a.dtype() == b.dtype() && a.dtype() == c.dtype(), ValueError, "gemm: dtypes differ (", a.str(), ", ",
           b.str(), ", ", c.str(), ")");
  SL_CUDA_DISPATCH(a, "gemm", gemm_t, a, trans_a, b, trans_b, c, alpha, beta);
}

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, bool relu) {
  check_matrix(x, "linear", "x");
  check_matrix(w, "linear", "weight");
  check_matrix(y, "linear", "y");
  SL_CUDA_DISPATCH(x, "linear", linear_forward_t, x, w, b, y, relu);
}

void linear_backward(const Tensor& x, const Tensor& w, const Tensor& gy, Tensor& gx, Tensor& gw, Tensor& gb) {
  check_matrix(x, "linear backward", "x");
  check_matrix(w, "linear backward", "weight");
  check_matrix(gy, "linear backward", "grad_out");
  SL_CUDA_DISPATCH(x, "linear backward", linear_backward_t, x, w, gy, gx, gw, gb);
}

void debug_force_mma_plan(int cfg, int slices) {
  SL_CHECK(cfg >= -1 && cfg < 2 && slices >= 0, ValueError, "debug_force_mma_plan: cfg ", cfg, ", slices ", slices);
  igemm::g_forced_mma_cfg = cfg;
  igemm::g_forced_mma_slices = slices;
}

void debug_force_gemm_plan(int cfg, int slices) {
  SL_CHECK(cfg >= -1 && cfg < igemm::kNumCfgs && slices >= 0, ValueError, "debug_force_gemm_plan: cfg ", cfg,
           ", slices ", slices);
  igemm::g_forced_cfg = cfg;
  igemm::g_forced_slices = slices;
}

}  // namespace sl::cuda
