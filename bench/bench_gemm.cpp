// Float GEMM throughput: splitleak's packed AVX2 GEMM (kernels/cpu/gemm.cpp) against Eigen, both on 2 threads
// (or OMP_NUM_THREADS when set), square n x n x n products. The FLOP counter is a rate (shown as e.g. "FLOP=180G/s"): 2
// n^3 per iteration over wall time.
//   ./bench_gemm --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"

#ifdef SPLITLEAK_HAVE_EIGEN
#include <Eigen/Core>
#endif

namespace {

// 2 threads unless OMP_NUM_THREADS says otherwise.
int bench_threads() { return std::getenv("OMP_NUM_THREADS") ? omp_get_max_threads() : 2; }

std::vector<float> random_values(int64_t count, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(count));
  uint32_t s = seed;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = float(s >> 8) * (2.0f / 16777216.0f) - 1.0f;  // [-1, 1)
  }
  return v;
}

void set_flops(benchmark::State& st, double per_iter) {
  st.counters["FLOP"] = benchmark::Counter(per_iter * double(st.iterations()), benchmark::Counter::kIsRate);
}

// C = A B (trans_b = false) or C = A B^T (trans_b = true, the linear layer's product).
void BM_splitleak(benchmark::State& st, bool trans_b) {
  const int64_t n = st.range(0);
  const auto a = random_values(n * n, 1), b = random_values(n * n, 2);
  std::vector<float> c(size_t(n * n));
  for (auto _ : st) {
    sl::cpu::gemm_raw<float>(false, trans_b, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n, true);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_flops(st, 2.0 * double(n) * double(n) * double(n));
}

#ifdef SPLITLEAK_HAVE_EIGEN
void BM_eigen(benchmark::State& st, bool trans_b) {
  const int n = int(st.range(0));
  const auto va = random_values(int64_t(n) * n, 1), vb = random_values(int64_t(n) * n, 2);
  Eigen::MatrixXf a = Eigen::Map<const Eigen::MatrixXf>(va.data(), n, n);
  Eigen::MatrixXf b = Eigen::Map<const Eigen::MatrixXf>(vb.data(), n, n);
  Eigen::MatrixXf c(n, n);
  for (auto _ : st) {
    if (trans_b)
      c.noalias() = a * b.transpose();
    else
      c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_flops(st, 2.0 * double(n) * double(n) * double(n));
}
#endif

}  // namespace

BENCHMARK_CAPTURE(BM_splitleak, nn, false)
    ->Arg(128)
    ->Arg(256)
    ->Arg(512)
    ->Arg(1024)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
#ifdef SPLITLEAK_HAVE_EIGEN
BENCHMARK_CAPTURE(BM_eigen, nn, false)
    ->Arg(128)
    ->Arg(256)
    ->Arg(512)
    ->Arg(1024)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
#endif
BENCHMARK_CAPTURE(BM_splitleak, nt, true)->Arg(512)->Arg(1024)->UseRealTime()->Unit(benchmark::kMicrosecond);
#ifdef SPLITLEAK_HAVE_EIGEN
BENCHMARK_CAPTURE(BM_eigen, nt, true)->Arg(512)->Arg(1024)->UseRealTime()->Unit(benchmark::kMicrosecond);
#endif

int main(int argc, char** argv) {
  const int threads = bench_threads();
  omp_set_num_threads(threads);
#ifdef SPLITLEAK_HAVE_EIGEN
  Eigen::setNbThreads(threads);
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
