// conv2d forward, data gradient and weight gradient (float32, CPU kernels) at the shapes of the two target
// models: LeNet-5 at batch 32 and CIFAR10CNN at batch 128 (SPEC 3); and layers of imported networks with the
// general geometry (a stride-2 stem, a 1x7 kernel, dilation 2, depthwise). The FLOP counter is a rate (e.g.
// "FLOP=95G/s") of 2 N Cout OH OW (Cin / groups) kh kw per pass, over wall time.
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
  int kw = 0, dilation = 1, groups = 1;  // the general geometry (kw 0: square)
};

const std::vector<ConvShape> kShapes = {
    {"lenet_conv1", 32, 1, 28, 28, 8, 5, 1, 0},
    {"lenet_conv2", 32, 8, 12, 12, 16, 5, 1, 0},
    {"cifar_conv11", 128, 3, 32, 32, 64, 3, 1, 1},
    {"cifar_conv12", 128, 64, 32, 32, 64, 3, 1, 1},
    {"cifar_conv21", 128, 64, 16, 16, 128, 3, 1, 1},
    {"cifar_conv22", 128, 128, 16, 16, 128, 3, 1, 1},
    {"cifar_conv31_32", 128, 128, 8, 8, 128, 3, 1, 1},
    // imported networks: a stride-2 stem, a 1x7 kernel, a dilated and a depthwise layer (the general geometry)
    {"stem_s2", 128, 3, 32, 32, 32, 3, 2, 1},
    {"k1x7", 128, 32, 16, 16, 32, 1, 1, 0, 7},
    {"dilated2", 128, 32, 16, 16, 32, 3, 1, 2, 0, 2},
    {"depthwise", 128, 64, 16, 16, 64, 3, 1, 1, 0, 1, 64},
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
  a.dilation_h = a.dilation_w = c.dilation;
  a.groups = c.groups;
  const int kh = c.k, kw = c.kw > 0 ? c.kw : c.k;
  if (kw != kh) a.pad_left = a.pad_right = kw / 2;  // keep the width
  const int64_t oh = conv_out_size_ext(c.h, kh, a.sh(), a.pt(), a.pb(), a.dilation_h),
                ow = conv_out_size_ext(c.w, kw, a.sw(), a.pl(), a.pr(), a.dilation_w);
  Tensor x = filled({c.n, c.cin, c.h, c.w}, 1), w = filled({c.cout, c.cin / c.groups, kh, kw}, 2),
         b = filled({c.cout}, 3);
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
  const double flops =
      2.0 * double(c.n) * double(c.cout) * double(oh * ow) * double(c.cin / c.groups) * double(kh * kw);
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
