// One training step (forward, cross-entropy, backward, Adam/AMSGrad update) of the SPEC models on the CPU,
// on random data: the cost that sets seconds per epoch.
#include <benchmark/benchmark.h>

#include "autograd/ops.h"
#include "nn/models.h"
#include "nn/optim.h"

using namespace sl;

static void train_step(benchmark::State& st, const char* arch) {
  int64_t batch = st.range(0);
  Generator g(1);
  Model m = make_model(arch, g);
  AdamArgs a;
  a.eps = 1e-3;
  a.amsgrad = true;
  Adam opt(m.net->parameters(), a);
  Tensor x = Tensor::empty(m.batch_shape(batch));
  kern::fill_normal(x, 3, 0, 0, 1);
  std::vector<int32_t> lab(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) lab[size_t(i)] = int32_t(i % 10);
  Tensor y = Tensor::from_labels(lab);
  for (auto _ : st) {
    opt.zero_grad();
    Tensor loss = cross_entropy(m.net->forward(x), y);
    loss.backward();
    opt.step();
    benchmark::DoNotOptimize(loss.item());
  }
  st.counters["img/s"] = benchmark::Counter(double(batch), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK_CAPTURE(train_step, lenet, "lenet")->Arg(32)->Arg(256)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(train_step, cifar10cnn, "cifar10cnn")
    ->Arg(32)
    ->Arg(128)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
