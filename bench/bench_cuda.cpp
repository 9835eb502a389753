// GPU benchmarks (built only with CUDA): our kernels against cuDNN and cuBLAS in the same binary, and whole
// training steps, eager and replayed from a CUDA graph.
//
//   conv/<layer>/<fwd|bwd_data|bwd_weight>/<ours|cudnn_fp32|cudnn_tf32|ours_tf32|ours_3xtf32>
//                                                                          CIFAR10CNN convs at batch 128
//   gemm/<layer>/<fwd|bwd_data|bwd_weight>/<ours|cublas_fp32>             FC layers (CIFAR at 128, LeNet at 32)
//   step/<lenet|cifar10cnn>/b<N>/<eager|graph>[_tf32|_3xtf32]             forward + CE + backward + Adam(AMSGrad)
// ("ours" is our default float32 FFMA path; _tf32 / _3xtf32 select the tensor-core path for the convolutions.)
//
// Timing: CUDA events on the engine's stream around `reps` back-to-back calls; each benchmark iteration reports
// (elapsed / reps) as manual time, so Google Benchmark's numbers are per call. Inputs are uniform random (never
// zeros). cuDNN runs FP32 with FMA math (no TF32) and the algorithm cudnnFind ranks fastest, plus (for reference)
// its default math, which allows TF32; cuBLAS runs FP32 with its default math (no TF32), on our stream.
// bench/cuda_report.py turns the JSON output and bench/torch_reference.py's into bench/RESULTS.md's tables.
#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/graph_step.h"
#include "autograd/ops.h"
#include "kernels/cuda/cuda.h"
#include "kernels/dispatch.h"
#include "nn/models.h"
#include "nn/optim.h"
#include "tensor/cuda_check.cuh"

using namespace sl;

namespace {

const Device kGpu = Device::cuda(0);

void cudnn_ok(cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + ": " + cudnnGetErrorString(s));
}
void cublas_ok(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(what) + ": cuBLAS status " + std::to_string(int(s)));
}

Tensor uniform(const Shape& s, uint64_t seed) {
  Tensor x = Tensor::empty(s, DType::f32, kGpu);
  kern::fill_uniform(x, seed, 0, -1.0, 1.0);
  return x;
}

// Events around `reps` calls of fn; per-call seconds as the iteration's manual time.
void time_calls(benchmark::State& st, const std::function<void()>& fn, int reps, double flop_per_call = 0,
                double items_per_call = 0) {
  cudaStream_t s = cuda_rt::stream_for(kGpu);
  cudaEvent_t e0, e1;
  SL_CUDA_CHECK(cudaEventCreate(&e0));
  SL_CUDA_CHECK(cudaEventCreate(&e1));
  for (int i = 0; i < 3; ++i) fn();  // warm-up: module load, handles, caches, graph capture
  SL_CUDA_CHECK(cudaStreamSynchronize(s));
  for (auto _ : st) {
    SL_CUDA_CHECK(cudaEventRecord(e0, s));
    for (int r = 0; r < reps; ++r) fn();
    SL_CUDA_CHECK(cudaEventRecord(e1, s));
    SL_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    SL_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    st.SetIterationTime(double(ms) / 1e3 / reps);
  }
  if (flop_per_call > 0)
    st.counters["TFLOP/s"] = benchmark::Counter(flop_per_call / 1e12, benchmark::Counter::kIsIterationInvariantRate);
  if (items_per_call > 0)
    st.counters["img/s"] = benchmark::Counter(items_per_call, benchmark::Counter::kIsIterationInvariantRate);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
}

// ---- convolutions ----------------------------------------------------------------------------------------------
struct ConvLayer {
  const char* name;
  int n, cin, hw, cout;  // 3x3, stride 1, pad 1
};
const ConvLayer kConvs[] = {{"conv11", 128, 3, 32, 64},    {"conv12", 128, 64, 32, 64},  {"conv21", 128, 64, 16, 128},
                            {"conv22", 128, 128, 16, 128}, {"conv31", 128, 128, 8, 128}, {"conv32", 128, 128, 8, 128}};

struct Cudnn {
  cudnnHandle_t h = nullptr;
  cudnnTensorDescriptor_t xd = nullptr, yd = nullptr;
  cudnnFilterDescriptor_t wd = nullptr;
  cudnnConvolutionDescriptor_t cd = nullptr;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  void* ws = nullptr;
  size_t ws_bytes = 0;

  Cudnn(const ConvLayer& c, cudnnMathType_t math, const Tensor& x, const Tensor& w, const Tensor& y) {
    cudnn_ok(cudnnCreate(&h), "cudnnCreate");
    cudnn_ok(cudnnSetStream(h, cuda_rt::stream_for(kGpu)), "cudnnSetStream");
    cudnn_ok(cudnnCreateTensorDescriptor(&xd), "desc");
    cudnn_ok(cudnnCreateTensorDescriptor(&yd), "desc");
    cudnn_ok(cudnnCreateFilterDescriptor(&wd), "desc");
    cudnn_ok(cudnnCreateConvolutionDescriptor(&cd), "desc");
    cudnn_ok(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, c.n, c.cin, c.hw, c.hw), "x desc");
    cudnn_ok(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, c.n, c.cout, c.hw, c.hw), "y desc");
    cudnn_ok(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, c.cout, c.cin, 3, 3), "w desc");
    cudnn_ok(cudnnSetConvolution2dDescriptor(cd, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT), "conv");
    cudnn_ok(cudnnSetConvolutionMathType(cd, math), "math");
    // cudnnFind times every algorithm on these very buffers and ranks them; take the fastest that succeeded
    int got = 0;
    cudnnConvolutionFwdAlgoPerf_t fp[16];
    cudnnConvolutionBwdDataAlgoPerf_t dp[16];
    cudnnConvolutionBwdFilterAlgoPerf_t wp[16];
    cudnn_ok(cudnnFindConvolutionForwardAlgorithm(h, xd, wd, cd, yd, 16, &got, fp), "find fwd");
    fwd = pick(fp, got, math);
    cudnn_ok(cudnnFindConvolutionBackwardDataAlgorithm(h, wd, yd, cd, xd, 16, &got, dp), "find bwd data");
    bwd_data = pick(dp, got, math);
    cudnn_ok(cudnnFindConvolutionBackwardFilterAlgorithm(h, xd, yd, cd, wd, 16, &got, wp), "find bwd filter");
    bwd_filter = pick(wp, got, math);
    size_t a = 0, b = 0, d = 0;
    cudnn_ok(cudnnGetConvolutionForwardWorkspaceSize(h, xd, wd, cd, yd, fwd, &a), "ws");
    cudnn_ok(cudnnGetConvolutionBackwardDataWorkspaceSize(h, wd, yd, cd, xd, bwd_data, &b), "ws");
    cudnn_ok(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, xd, yd, cd, wd, bwd_filter, &d), "ws");
    ws_bytes = std::max({a, b, d, size_t(256)});
    SL_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
    (void)x, (void)w, (void)y;
  }
  // The fastest algorithm that ran, using FMA math when FMA math was asked for (cudnnFind may report a
  // tensor-op algorithm's math type; skip those for the FP32 baseline).
  template <class Perf>
  static decltype(Perf::algo) pick(const Perf* p, int n, cudnnMathType_t math) {
    for (int i = 0; i < n; ++i)
      if (p[i].status == CUDNN_STATUS_SUCCESS && (math != CUDNN_FMA_MATH || p[i].mathType == CUDNN_FMA_MATH))
        return p[i].algo;
    throw std::runtime_error("cudnnFind: no algorithm with the requested math");
  }
  ~Cudnn() {
    cudaFree(ws);
    cudnnDestroyConvolutionDescriptor(cd);
    cudnnDestroyFilterDescriptor(wd);
    cudnnDestroyTensorDescriptor(yd);
    cudnnDestroyTensorDescriptor(xd);
    cudnnDestroy(h);
  }
};

// Sets the matmul precision for a scope (the benchmarks of our tensor-core path), restores the default after.
struct PrecisionScope {
  explicit PrecisionScope(MatmulPrecisions p) { kern::set_cuda_matmul_precision(p); }
  ~PrecisionScope() { kern::set_cuda_matmul_precision(MatmulPrecisions{}); }
};

// what 0/1/2 = fwd/bwd_data/bwd_weight; impl 0 ours (fp32), 1 cuDNN fp32, 2 cuDNN tf32, 3 ours tf32, 4 ours 3xtf32
void bm_conv(benchmark::State& st, ConvLayer c, int what, int impl) {
  Tensor x = uniform({c.n, c.cin, c.hw, c.hw}, 1), w = uniform({c.cout, c.cin, 3, 3}, 2);
  Tensor gy = uniform({c.n, c.cout, c.hw, c.hw}, 3);
  Tensor y = Tensor::empty(gy.shape(), DType::f32, kGpu), gx = Tensor::empty(x.shape(), DType::f32, kGpu);
  Tensor gw = Tensor::empty(w.shape(), DType::f32, kGpu), none;
  const double flop = 2.0 * c.n * c.cout * c.hw * c.hw * c.cin * 9;
  const ConvArgs a{1, 1, 0};
  std::function<void()> fn;
  const float one = 1, zero = 0;
  const MatmulPrecision mine = impl == 3   ? MatmulPrecision::tf32
                               : impl == 4 ? MatmulPrecision::tf32x3
                                           : MatmulPrecision::fp32;
  PrecisionScope scope(MatmulPrecisions{mine, MatmulPrecision::fp32});
  if (impl == 0 || impl >= 3) {
    if (what == 0) fn = [&] { kern::conv2d_forward(x, w, none, a, y); };
    if (what == 1) fn = [&] { kern::conv2d_backward_data(gy, w, a, gx); };
    if (what == 2) fn = [&] { kern::conv2d_backward_weight(x, gy, a, gw, none); };
  } else {
    // one handle + algorithm search per (layer, math), shared by the three passes' benchmarks
    static std::map<std::string, std::unique_ptr<Cudnn>> cache;
    auto& slot = cache[std::string(c.name) + (impl == 1 ? "/fma" : "/default")];
    if (!slot) slot = std::make_unique<Cudnn>(c, impl == 1 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH, x, w, y);
    Cudnn* d = slot.get();
    if (what == 0)
      fn = [&, d] {
        cudnn_ok(cudnnConvolutionForward(d->h, &one, d->xd, x.raw_data(), d->wd, w.raw_data(), d->cd, d->fwd, d->ws,
                                         d->ws_bytes, &zero, d->yd, y.raw_data()),
                 "fwd");
      };
    if (what == 1)
      fn = [&, d] {
        cudnn_ok(cudnnConvolutionBackwardData(d->h, &one, d->wd, w.raw_data(), d->yd, gy.raw_data(), d->cd, d->bwd_data,
                                              d->ws, d->ws_bytes, &zero, d->xd, gx.raw_data()),
                 "bwd data");
      };
    if (what == 2)
      fn = [&, d] {
        cudnn_ok(cudnnConvolutionBackwardFilter(d->h, &one, d->xd, x.raw_data(), d->yd, gy.raw_data(), d->cd,
                                                d->bwd_filter, d->ws, d->ws_bytes, &zero, d->wd, gw.raw_data()),
                 "bwd filter");
      };
  }
  time_calls(st, fn, 10, flop);
}

// ---- FC GEMMs --------------------------------------------------------------------------------------------------
struct FcLayer {
  const char* name;
  int n, in, out;
};
const FcLayer kFcs[] = {{"cifar_fc1", 128, 2048, 512},
                        {"cifar_fc2", 128, 512, 10},
                        {"lenet_fc1", 32, 256, 120},
                        {"lenet_fc2", 32, 120, 84},
                        {"lenet_fc3", 32, 84, 10}};

// Row-major C[m, n] = op(A) op(B) through column-major cuBLAS: C^T = op(B)^T op(A)^T.
void cublas_rowmajor(cublasHandle_t h, bool ta, bool tb, int m, int n, int k, const float* A, int lda, const float* B,
                     int ldb, float* C, int ldc) {
  const float one = 1, zero = 0;
  cublas_ok(cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &one, B, ldb, A,
                        lda, &zero, C, ldc),
            "cublasSgemm");
}

void bm_gemm(benchmark::State& st, FcLayer f, int what, int impl) {  // impl 0 ours, 1 cuBLAS FP32
  Tensor x = uniform({f.n, f.in}, 1), w = uniform({f.out, f.in}, 2), gy = uniform({f.n, f.out}, 3);
  Tensor y = Tensor::empty({f.n, f.out}, DType::f32, kGpu), gx = Tensor::empty({f.n, f.in}, DType::f32, kGpu);
  Tensor gw = Tensor::empty({f.out, f.in}, DType::f32, kGpu);
  const double flop = 2.0 * f.n * f.in * f.out;
  std::function<void()> fn;
  cublasHandle_t h = nullptr;
  if (impl == 0) {
    if (what == 0) fn = [&] { kern::gemm(x, false, w, true, y, 1.0, 0.0); };     // y = x W^T
    if (what == 1) fn = [&] { kern::gemm(gy, false, w, false, gx, 1.0, 0.0); };  // gx = gy W
    if (what == 2) fn = [&] { kern::gemm(gy, true, x, false, gw, 1.0, 0.0); };   // gw = gy^T x
  } else {
    cublas_ok(cublasCreate(&h), "cublasCreate");
    cublas_ok(cublasSetStream(h, cuda_rt::stream_for(kGpu)), "cublasSetStream");
    cublas_ok(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    if (what == 0)
      fn = [&] {
        cublas_rowmajor(h, false, true, f.n, f.out, f.in, x.data<float>(), f.in, w.data<float>(), f.in, y.data<float>(),
                        f.out);
      };
    if (what == 1)
      fn = [&] {
        cublas_rowmajor(h, false, false, f.n, f.in, f.out, gy.data<float>(), f.out, w.data<float>(), f.in,
                        gx.data<float>(), f.in);
      };
    if (what == 2)
      fn = [&] {
        cublas_rowmajor(h, true, false, f.out, f.in, f.n, gy.data<float>(), f.out, x.data<float>(), f.in,
                        gw.data<float>(), f.in);
      };
  }
  time_calls(st, fn, 50, flop);
  if (h) cublasDestroy(h);
}

// ---- training steps --------------------------------------------------------------------------------------------
void bm_step(benchmark::State& st, const char* arch, int64_t batch, bool graph, MatmulPrecision conv_prec) {
  PrecisionScope scope(MatmulPrecisions{conv_prec, MatmulPrecision::fp32});
  Generator g(1);
  Model m = make_model(arch, g);
  m.net->to(kGpu);
  AdamArgs a;
  a.eps = 1e-3;
  a.amsgrad = true;
  Adam opt(m.net->parameters(), a);
  Tensor x = uniform(m.batch_shape(batch), 7);
  std::vector<int32_t> lab(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) lab[size_t(i)] = int32_t((i * 7) % 10);
  Tensor y = Tensor::from_labels(lab).to(kGpu);
  auto step = [&] {
    opt.zero_grad();
    Tensor loss = cross_entropy(m.net->forward(x), y);
    loss.backward();
    opt.step();
  };
  std::unique_ptr<CapturedStep> cs;
  std::function<void()> fn = step;
  if (graph) {
    cs = std::make_unique<CapturedStep>(step, kGpu);
    fn = [&] { (*cs)(); };
  }
  const bool big = std::string(arch) != "lenet";
  time_calls(st, fn, big ? 5 : 50, 0, double(batch));
  if (cs) {
    st.counters["graph_nodes"] = double(cs->graph_nodes());
    if (!cs->replaying()) st.SkipWithError(("graph not captured: " + cs->fallback_reason()).c_str());
  }
}

void register_all() {
  const char* whats[] = {"fwd", "bwd_data", "bwd_weight"};
  const char* conv_impls[] = {"ours", "cudnn_fp32", "cudnn_tf32", "ours_tf32", "ours_3xtf32"};
  for (const auto& c : kConvs)
    for (int w = 0; w < 3; ++w)
      for (int i = 0; i < 5; ++i)
        benchmark::RegisterBenchmark((std::string("conv/") + c.name + "/" + whats[w] + "/" + conv_impls[i]).c_str(),
                                     bm_conv, c, w, i)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond)
            ->MinTime(0.01);  // x 10 calls per iteration
  const char* gemm_impls[] = {"ours", "cublas_fp32"};
  for (const auto& f : kFcs)
    for (int w = 0; w < 3; ++w)
      for (int i = 0; i < 2; ++i)
        benchmark::RegisterBenchmark((std::string("gemm/") + f.name + "/" + whats[w] + "/" + gemm_impls[i]).c_str(),
                                     bm_gemm, f, w, i)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond)
            ->MinTime(0.003);  // x 50 calls per iteration
  struct S {
    const char* arch;
    int64_t batch;
    MatmulPrecision conv;
    const char* suffix;
  };
  for (S s : {S{"lenet", 32, MatmulPrecision::fp32, ""}, S{"lenet", 256, MatmulPrecision::fp32, ""},
              S{"cifar10cnn", 128, MatmulPrecision::fp32, ""}, S{"cifar10cnn", 128, MatmulPrecision::tf32, "_tf32"},
              S{"cifar10cnn", 128, MatmulPrecision::tf32x3, "_3xtf32"}})
    for (bool graph : {false, true}) {
      const bool big = std::string(s.arch) != "lenet";
      benchmark::RegisterBenchmark((std::string("step/") + s.arch + "/b" + std::to_string(s.batch) + "/" +
                                    (graph ? "graph" : "eager") + s.suffix)
                                       .c_str(),
                                   bm_step, s.arch, s.batch, graph, s.conv)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond)
          ->MinTime(big ? 0.03 : 0.004);  // x 5 / x 50 calls
    }
}

}  // namespace

int main(int argc, char** argv) {
  if (!cuda_available()) {
    std::fprintf(stderr, "bench_cuda: no GPU available, nothing to time\n");
    return 0;
  }
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
