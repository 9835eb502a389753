// conv2d forward, data gradient and weight gradient (float32, CPU kernels) at the shapes of the two target
// models: LeNet-5 at batch 32 and CIFAR10CNN at batch 128 (SPEC 3). The FLOP counter is a rate (e.g.
// "FLOP=95G/s") of 2 N Cout OH OW Cin k k per pass, over wall time.
// Threads: OMP_NUM_THREADS (default: all cores).
//   ./bench_conv --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <omp.h>

#include <string>
#include <vector>

#include "kernels/dispatch.h"

namespace {

struct ConvShape {
  const char* name;
  int64_t n, cin, h, w, cout;
  int k, stride, pad;
};

const std::vector<ConvShape> kShapes = {
    {"lenet_conv1", 32, 1, 28, 28, 8, 5, 1, 0},        {"lenet_conv2", 32, 8, 12, 12, 16, 5, 1, 0},
    {"cifar_conv11", 128, 3, 32, 32, 64, 3, 1, 1},     {"cifar_conv12", 128, 64, 32, 32, 64, 3, 1, 1},
    {"cifar_conv21", 128, 64, 16, 16, 128, 3, 1, 1},   {"cifar_conv22", 128, 128, 16, 16, 128, 3, 1, 1},
    {"cifar_conv31_32", 128, 128, 8, 8, 128, 3, 1, 1},
};

sl::Tensor filled(const sl::Shape& s, uint64_t seed) {
  sl::Tensor t = sl::Tensor::empty(s, sl::DType::f32);
  sl::kern::fill_normal(t, seed, 0, 0.0, 1.0);
  return t;
}

enum class Pass { forward, backward_data, backward_weight };

void run_conv(benchmark::State& st, const ConvShape& c, Pass pass) {
  using namespace sl;
  ConvArgs a;
  a.stride = c.stride;
  a.pad = c.pad;
  const int64_t oh = conv_out_size(c.h, c.k, c.stride, c.pad), ow = conv_out_size(c.w, c.k, c.stride, c.pad);
  Tensor x = filled({c.n, c.cin, c.h, c.w}, 1), w = filled({c.cout, c.cin, c.k, c.k}, 2), b = filled({c.cout}, 3);
  Tensor y = filled({c.n, c.cout, oh, ow}, 4);
  Tensor gx = Tensor::empty(x.shape()), gw = Tensor::empty(w.shape()), gb = Tensor::empty(b.shape());
  for (auto _ : st) {
    switch (pass) {
      case Pass::forward:
        kern::conv2d_forward(x, w, b, a, y);
        break;
      case Pass::backward_data:
        kern::conv2d_backward_data(y, w, a, gx);
        break;
      case Pass::backward_weight:
        kern::conv2d_backward_weight(x, y, a, gw, gb);
        break;
    }
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * double(c.n) * double(c.cout) * double(oh * ow) * double(c.cin) * double(c.k * c.k);
  st.counters["FLOP"] = benchmark::Counter(flops * double(st.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  const std::pair<const char*, Pass> passes[] = {
      {"fwd", Pass::forward}, {"bwd_data", Pass::backward_data}, {"bwd_weight", Pass::backward_weight}};
  for (const auto& c : kShapes)
    for (const auto& [pname, pass] : passes) {
      const std::string name = std::string("conv2d/") + c.name + "/" + pname;
      benchmark::RegisterBenchmark(name.c_str(), [&c, pass = pass](benchmark::State& st) { run_conv(st, c, pass); })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("omp_threads", std::to_string(omp_get_max_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
