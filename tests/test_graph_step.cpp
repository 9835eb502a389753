// Captured steps (autograd/graph_step.h) and what makes a step capturable: device-side Adam state, device-side training
// metrics, kernel fills, staged host-to-device copies, the allocator's capture pool. The [cuda] cases skip
// visibly without a GPU; the CPU cases run everywhere.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "autograd/graph_step.h"
#include "autograd/ops.h"
#include "kernels/dispatch.h"
#include "nn/models.h"
#include "nn/optim.h"
#include "tensor/cuda_runtime.h"
#include "tests/op_harness.h"

#ifdef SPLITLEAK_WITH_CUDA
#include "tensor/cuda_stats.h"
#endif

using namespace sl;

namespace {

const Device kGpu = Device::cuda(0);

// A batch of LeNet inputs and labels on the CPU, different for every k.
std::vector<Tensor> lenet_batch(int64_t n, uint64_t k) {
  Tensor x = Tensor::empty(Shape{n, 1, 28, 28});
  kern::fill_normal(x, 100 + k, 0, 0, 1);
  std::vector<int32_t> lab(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) lab[size_t(i)] = int32_t((i * 7 + int64_t(k) * 3) % 10);
  return {x, Tensor::from_labels(lab)};
}

double max_param_diff(Module& a, Module& b) {
  auto pa = a.parameters(), pb = b.parameters();
  double d = 0;
  for (size_t i = 0; i < pa.size(); ++i)
    d = std::max(d, test::rel_max_diff(pa[i].to(Device::cpu()), pb[i].to(Device::cpu())));
  return d;
}

AdamArgs recipe() {
  AdamArgs a;
  a.eps = 1e-3;
  a.amsgrad = true;
  return a;
}

}  // namespace

TEST_CASE("graph step: on the CPU every call runs the step eagerly", "[nn][graph]") {
  int calls = 0;
  CapturedStep cs([&] { ++calls; }, Device::cpu());
  for (int i = 0; i < 5; ++i) cs();
  CHECK(calls == 5);
  CHECK_FALSE(cs.graph_enabled());
  CHECK_FALSE(cs.replaying());
  CHECK(cs.fallback_reason() == "not a CUDA device");

  // ShapedStep on the CPU: the step sees the batch itself
  Generator g(3);
  Model m = make_model("lenet", g);
  Adam opt(m.net->parameters(), recipe());
  Tensor totals = Tensor::zeros(Shape{3}, DType::f64);
  ShapedStep st(
      [&](const std::vector<Tensor>& in) {
        opt.zero_grad();
        Tensor logits = m.net->forward(in[0]);
        Tensor loss = cross_entropy(logits, in[1]);
        loss.backward();
        opt.step();
        kern::accumulate_metrics(loss.detach(), logits.detach(), in[1], totals);
      },
      Device::cpu());
  st.run(lenet_batch(8, 1));
  st.run(lenet_batch(5, 2));
  CHECK(st.eager_calls() == 2);
  CHECK(totals.to_vector()[2] == 13);
}

TEST_CASE("accumulate_metrics: loss sum, hits and count, CPU and GPU agree", "[nn][cuda][graph]") {
  Tensor logits = Tensor::from_vector(std::vector<double>{1, 3, 2, 5, 0, 5, -1, -2, -3, 0, 0, 0}, Shape{4, 3});
  Tensor labels = Tensor::from_labels({1, 0, 0, 2});  // hits: row 0 (argmax 1), row 1 (ties -> 0), row 2 (0)
  Tensor loss = Tensor::scalar(0.5);
  Tensor totals = Tensor::zeros(Shape{3}, DType::f64);
  kern::accumulate_metrics(loss, logits, labels, totals);
  kern::accumulate_metrics(loss, logits, labels, totals);
  CHECK(totals.to_vector() == std::vector<double>{4.0, 6.0, 8.0});
  if (!test::gpu_ready("accumulate_metrics on the GPU")) return;
  Tensor td = Tensor::zeros(Shape{3}, DType::f64, kGpu);
  Tensor ld = loss.to(kGpu), zd = logits.to(kGpu), yd = labels.to(kGpu);
  kern::accumulate_metrics(ld, zd, yd, td);
  kern::accumulate_metrics(ld, zd, yd, td);
  CHECK(td.to_vector() == std::vector<double>{4.0, 6.0, 8.0});
  // more rows than one pass of the block
  Generator g(5);
  Tensor big = test::randn(Shape{1000, 10}, g).to(DType::f32);
  Tensor lab = test::rand_labels(1000, 10, g);
  Tensor tc = Tensor::zeros(Shape{3}, DType::f64), tg = Tensor::zeros(Shape{3}, DType::f64, kGpu);
  kern::accumulate_metrics(Tensor::scalar(1.25), big, lab, tc);
  kern::accumulate_metrics(Tensor::scalar(1.25).to(kGpu), big.to(kGpu), lab.to(kGpu), tg);
  CHECK(tg.to_vector() == tc.to_vector());
}

TEST_CASE("cuda: staged host-to-device copies keep every upload, fill_ runs on the device", "[cuda][graph]") {
  if (!test::gpu_ready("staged uploads")) return;
  Generator g(7);
  std::vector<Tensor> host, dev;
  for (int i = 0; i < 20; ++i) {  // more uploads than staging slots, without any synchronisation in between
    host.push_back(test::randn(Shape{1000 + 37 * i}, g).to(DType::f32));
    dev.push_back(host.back().to(kGpu));
  }
  Tensor big = test::randn(Shape{3, 1000, 1000}, g).to(DType::f32);  // 12 MB: larger than a slot
  Tensor bigd = big.to(kGpu);
  for (int i = 0; i < 20; ++i) CHECK(dev[size_t(i)].to_vector() == host[size_t(i)].to_vector());
  CHECK(bigd.to_vector() == big.to_vector());
  Tensor f = Tensor::full(Shape{100003}, -2.5, DType::f64, kGpu);
  CHECK(f.to_vector() == std::vector<double>(100003, -2.5));
  Tensor i32 = Tensor::full(Shape{7}, 9, DType::i32, kGpu);
  CHECK(i32.to_vector() == std::vector<double>(7, 9.0));
}

TEST_CASE("cuda: fused Adam with device lr and step counts matches the per-tensor CPU Adam", "[cuda][graph]") {
  if (!test::gpu_ready("device-state Adam")) return;
  Generator g(11);
  std::vector<Shape> shapes = {{8, 1, 5, 5}, {8}, {120, 256}, {120}, {10}, {3000}};
  std::vector<Tensor> pc, pd;
  for (auto& s : shapes) {
    pc.push_back(test::randn(s, g).to(DType::f32).requires_grad_());
    pd.push_back(pc.back().to(kGpu).requires_grad_());
  }
  AdamArgs a = recipe();
  a.lr = 1e-2;
  a.weight_decay = 1e-3;
  Adam oc(pc, a), od(pd, a);
  for (int step = 1; step <= 6; ++step) {
    if (step == 4) {
      oc.set_lr(3e-3);
      od.set_lr(3e-3);
    }
    for (size_t i = 0; i < pc.size(); ++i) {
      if (step == 2 && i == 1) {  // a parameter without a gradient skips the step (its count stays behind)
        pc[i].zero_grad();
        pd[i].zero_grad();
        continue;
      }
      Tensor gr = test::randn(shapes[i], g).to(DType::f32);
      pc[i].impl()->grad = gr.clone().impl_ptr();
      pd[i].impl()->grad = gr.to(kGpu).impl_ptr();
    }
    oc.step();
    od.step();
  }
  for (size_t i = 0; i < pc.size(); ++i) {
    INFO("parameter " << i);
    CHECK(test::rel_max_diff(pd[i].to(Device::cpu()), pc[i]) <= 1e-6);
    CHECK(od.step_count(i) == oc.step_count(i));
  }
  CHECK(od.step_count(1) == 5);
}

TEST_CASE("cuda: a LeNet training step replayed from a CUDA graph equals the eager steps", "[cuda][graph]") {
  if (!test::gpu_ready("captured LeNet step")) return;
  const int64_t batch = 32;
  Generator g1(21), g2(21);
  Model eager = make_model("lenet", g1), graphed = make_model("lenet", g2);
  eager.net->to(kGpu);
  graphed.net->to(kGpu);
  Adam oe(eager.net->parameters(), recipe()), og(graphed.net->parameters(), recipe());
  Tensor te = Tensor::zeros(Shape{3}, DType::f64, kGpu), tg = Tensor::zeros(Shape{3}, DType::f64, kGpu);
  auto step_of = [](Model& m, Adam& opt, Tensor& totals) {
    return [&m, &opt, &totals](const std::vector<Tensor>& in) {
      opt.zero_grad();
      Tensor logits = m.net->forward(in[0]);
      Tensor loss = cross_entropy(logits, in[1]);
      loss.backward();
      opt.step();
      kern::accumulate_metrics(loss.detach(), logits.detach(), in[1], totals);
    };
  };
  auto eager_step = step_of(eager, oe, te);
  ShapedStep st(step_of(graphed, og, tg), kGpu);

  const int kSteps = 12;
  [[maybe_unused]] uint64_t malloc_before_replays = 0;
  for (int k = 0; k < kSteps; ++k) {
    // a partial batch in the middle runs eagerly and must not disturb the graph
    const int64_t n = k == 7 ? 13 : batch;
    auto b = lenet_batch(n, uint64_t(k));
    eager_step({b[0].to(kGpu), b[1].to(kGpu)});
    st.run(b);
#ifdef SPLITLEAK_WITH_CUDA
    if (k == 8) malloc_before_replays = cuda_rt::allocator_stats(0).num_cuda_malloc;
#endif
  }
  REQUIRE(st.captured() != nullptr);
  INFO("fallback reason: " << st.captured()->fallback_reason());
  CHECK(st.captured()->replaying());
  CHECK(st.captured()->captures() == 1);
  CHECK(st.captured()->replays() == kSteps - 1 - 2);  // 2 warm-up calls, 1 eager partial batch
  CHECK(st.eager_calls() == 1);
  CHECK(st.captured()->graph_nodes() > 10);
  const double d = max_param_diff(*eager.net, *graphed.net);
  INFO("max relative parameter difference graph vs eager: " << d);
  CHECK(d == 0.0);  // same kernels, same order, deterministic reductions: bit for bit
  CHECK(tg.to_vector() == te.to_vector());
  CHECK(oe.step_count(0) == kSteps);
  CHECK(og.step_count(0) == kSteps);
#ifdef SPLITLEAK_WITH_CUDA
  // replays allocate nothing; the capture's warm-up put every block into the pool before recording
  auto s = cuda_rt::allocator_stats(0);
  CHECK(s.num_cuda_malloc == malloc_before_replays);
  CHECK(s.num_capture_malloc == 0);
#endif
  // an lr change is picked up by the replayed graph (Adam keeps lr on the device)
  og.set_lr(1e-4);
  oe.set_lr(1e-4);
  for (int k = 0; k < 3; ++k) {
    auto b = lenet_batch(batch, 50 + uint64_t(k));
    eager_step({b[0].to(kGpu), b[1].to(kGpu)});
    st.run(b);
  }
  CHECK(max_param_diff(*eager.net, *graphed.net) == 0.0);
}

TEST_CASE("cuda: a step that reads the device on the host cannot be captured and stays eager", "[cuda][graph]") {
  if (!test::gpu_ready("capture fallback")) return;
  Tensor counter = Tensor::zeros(Shape{1}, DType::f32, kGpu);
  int host_calls = 0;
  double seen = 0;
  CapturedStep cs(
      [&] {
        ++host_calls;
        kern::add_scalar(counter, 1.0, counter);
        seen = counter.item();  // a synchronisation: refused while capturing
      },
      kGpu);
  for (int i = 0; i < 6; ++i) cs();
  CHECK_FALSE(cs.graph_enabled());
  CHECK_FALSE(cs.replaying());
  CHECK_THAT(cs.fallback_reason(), Catch::Contains("device-to-host"));
  CHECK(counter.item() == 6.0);  // no call lost: the failed capture's work ran eagerly
  CHECK(seen == 6.0);
  CHECK_FALSE(cuda_rt::is_capturing(kGpu));
  // and the device is fine afterwards: a capturable step captures
  CapturedStep ok([&] { kern::add_scalar(counter, 1.0, counter); }, kGpu, 1);
  for (int i = 0; i < 5; ++i) ok();
  CHECK(ok.replaying());
  CHECK(counter.item() == 11.0);
}
