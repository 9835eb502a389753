// nn/: modules, layers, the two models and their splits, init, optimizers, checkpoints.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "nn/checkpoint.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/models.h"
#include "nn/optim.h"
#include "op_harness.h"
#include "tensor/io.h"

using namespace sl;
namespace fs = std::filesystem;

namespace {

// True when a and b have the same shape and the very same bits.
bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ca = a.to(Device::cpu()).contiguous(), cb = b.to(Device::cpu()).contiguous();
  return std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

// A small CIFAR10CNN: the same 19-layer stack on 8x8 images with few channels (fast in float64).
const Cifar10CnnSize kTinyCifar{3, 8, 4, 16, 10};

// A fresh directory under the system temp dir, removed at the end of the scope.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("splitleak_nn_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// Runs load_checkpoint and returns the IoError message ("" when it did not throw).
std::string load_error(const std::string& path) {
  try {
    load_checkpoint(path);
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}

// Gives a parameter a gradient by hand (the optimizer tests do not depend on backward).
void set_grad(Tensor& p, std::vector<double> g) {
  p.impl()->grad = Tensor::from_vector(g, p.shape(), p.dtype()).impl_ptr();
}

// Finite-difference check of the gradients of loss() with respect to the given tensors (float64, CPU), at
// up to `per_tensor` random elements of each (all elements when it has fewer). Used where checking every
// weight of a network with sl::gradcheck would take too long.
void check_grads_sampled(const std::function<Tensor()>& loss, std::vector<std::pair<std::string, Tensor>> wrt,
                         int64_t per_tensor, Generator& gen, double eps = 1e-6) {
  for (auto& [name, t] : wrt) t.zero_grad();
  loss().backward();
  NoGradGuard no_grad;
  for (auto& [name, t] : wrt) {
    REQUIRE(t.grad().defined());
    double* p = t.data<double>();
    const double* analytic = t.grad().data<double>();
    int64_t n = std::min(per_tensor, t.numel());
    for (int64_t k = 0; k < n; ++k) {
      int64_t i = n == t.numel() ? k : int64_t(gen.below(uint64_t(t.numel())));
      double orig = p[i];
      p[i] = orig + eps;
      double up = loss().item();
      p[i] = orig - eps;
      double down = loss().item();
      p[i] = orig;
      double numeric = (up - down) / (2 * eps);
      INFO(name << " element " << i << ": autograd " << analytic[i] << ", finite difference " << numeric);
      CHECK(std::fabs(analytic[i] - numeric) <= 1e-6 + 1e-4 * std::fabs(numeric));
    }
  }
}

// sum(net(x) * weights) with fixed random weights, so every output element matters.
std::function<Tensor()> weighted_output(Sequential& net, const Tensor& x, Generator& gen) {
  Tensor w = test::randn(net.output_shape(x.shape()), gen);
  return [&net, x, w] { return sum(mul(net.forward(x), w)); };
}

}  // namespace

// ---- shapes, names, parameter counts -------------------------------------------------------------------

TEST_CASE("LeNet and CIFAR10CNN have SPEC's layer names and output shapes", "[nn]") {
  Generator gen(1);
  Model lenet = make_model("lenet", gen);
  CHECK(lenet.net->layer_names() == std::vector<std::string>{"conv1", "ReLU1", "pool1", "conv2", "ReLU2", "pool2",
                                                             "flatten", "fc1", "fc1act", "fc2", "fc2act", "fc3"});
  auto shapes = lenet.net->output_shapes(lenet.batch_shape(2));
  CHECK(shapes[0].second == Shape{2, 8, 24, 24});
  CHECK(shapes[2].second == Shape{2, 8, 12, 12});
  CHECK(shapes[5].second == Shape{2, 16, 4, 4});
  CHECK(shapes[6].second == Shape{2, 256});
  CHECK(shapes.back().second == Shape{2, 10});
  Tensor y = lenet.net->forward(Tensor::zeros(lenet.batch_shape(2)));
  CHECK(y.shape() == Shape{2, 10});
  CHECK(lenet.net->layer("conv1")->describe() == "Conv2d(1->8, k5)");

  Model cifar = make_model("cifar10cnn", gen);
  CHECK(cifar.net->layer_names() == std::vector<std::string>{"conv11", "ReLU11", "conv12", "ReLU12", "pool1", "conv21",
                                                             "ReLU21", "conv22", "ReLU22", "pool2", "conv31", "ReLU31",
                                                             "conv32", "ReLU32", "pool3", "flatten", "fc1", "fc1act",
                                                             "fc2"});
  auto cs = cifar.net->output_shapes(cifar.batch_shape(1));
  CHECK(cs[1].second == Shape{1, 64, 32, 32});
  CHECK(cs[8].second == Shape{1, 128, 16, 16});  // ReLU22, the reference's CIFAR split
  CHECK(cs[15].second == Shape{1, 2048});
  CHECK(cs.back().second == Shape{1, 10});
  CHECK(cifar.net->layer("fc1act")->describe() == "Sigmoid");
  CHECK(cifar.net->layer("conv11")->describe() == "Conv2d(3->64, k3, p1)");

  CHECK_THROWS_AS(make_model("resnet", gen), ValueError);
  CHECK_THROWS_AS(lenet.net->output_shape(Shape{2, 3, 28, 28}), ShapeError);  // wrong channel count
}

TEST_CASE("parameter counts and names", "[nn]") {
  Generator gen(1);
  auto lenet = make_lenet(gen);
  CHECK(lenet->num_parameters() == 8 * 25 + 8 + 16 * 200 + 16 + 256 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10);
  auto cifar = make_cifar10cnn(gen);
  CHECK(cifar->num_parameters() == (3 * 64 * 9 + 64) + (64 * 64 * 9 + 64) + (64 * 128 * 9 + 128) +
                                       3 * (128 * 128 * 9 + 128) + (2048 * 512 + 512) + (512 * 10 + 10));
  auto named = lenet->named_parameters();
  REQUIRE(named.size() == 10);
  CHECK(named[0].first == "conv1.weight");
  CHECK(named[1].first == "conv1.bias");
  CHECK(named.back().first == "fc3.bias");
  for (auto& [name, t] : named) CHECK(t.requires_grad());
}

// ---- split ---------------------------------------------------------------------------------------------

TEST_CASE("split at every layer: head then tail equals the whole network bit for bit", "[nn]") {
  Generator gen(3);
  for (std::string arch : {"lenet", "cifar10cnn"}) {
    Model m = make_model(arch, gen);
    m.net->eval();
    Tensor x = test::randn(m.batch_shape(2), gen).to(DType::f32);
    Tensor whole;
    {
      NoGradGuard ng;
      whole = m.net->forward(x);
    }
    for (const auto& name : m.net->layer_names()) {
      INFO(arch << " split at " << name);
      SplitModel s = m.net->split(name);
      CHECK(s.head->layer_names().back() == name);
      CHECK(s.head->size() + s.tail->size() == m.net->size());
      NoGradGuard ng;
      Tensor v = s.head->forward(x);
      CHECK(v.shape() == m.net->output_shapes(x.shape())[m.net->index_of(name)].second);
      CHECK(bit_equal(s.tail->forward(v), whole));
      if (arch == "lenet") CHECK(bit_equal(m.net->forward_until(x, name), v));
    }
  }
}

TEST_CASE("Sequential fuses Conv2d/Linear + ReLU: same outputs and gradients as layer by layer", "[nn]") {
  Generator gen(5);
  std::vector<Device> devices = {Device::cpu()};
  for (Device d : test::other_backends()) devices.push_back(d);
  for (Device dev : devices)
    for (std::string arch : {"lenet", "cifar10cnn"}) {
      INFO(arch << " on " << dev.str());
      Model m = make_model(arch, gen);
      m.net->to(dev);
      Tensor x = test::randn(m.batch_shape(3), gen).to(DType::f32).to(dev);
      Tensor labels = Tensor::from_labels(std::vector<int32_t>{1, 7, 3}).to(dev);
      auto grads = [&] {
        std::vector<std::vector<double>> out;
        for (auto& p : m.net->parameters()) out.push_back(p.grad().to_vector());
        return out;
      };
      m.net->zero_grad();
      Tensor fused = m.net->forward(x);
      cross_entropy(fused, labels).backward();
      auto g_fused = grads();
      m.net->zero_grad();
      Tensor y = x;
      int relus = 0;
      for (auto& [name, layer] : m.net->children()) {
        y = layer->forward(y);  // one layer at a time: no fusion
        relus += dynamic_cast<ReLU*>(layer.get()) != nullptr;
      }
      cross_entropy(y, labels).backward();
      CHECK(relus >= 4);
      CHECK(bit_equal(fused, y));
      CHECK(grads() == g_fused);
    }
}

TEST_CASE("split halves share the parameter tensors", "[nn]") {
  Generator gen(4);
  auto net = make_lenet(gen);
  SplitModel s = net->split("ReLU2");
  CHECK(s.head->named_parameters()[0].first == "conv1.weight");
  CHECK(s.tail->named_parameters()[0].first == "fc1.weight");
  CHECK(s.head->num_parameters() + s.tail->num_parameters() == net->num_parameters());
  CHECK(s.head->named_parameters()[0].second.impl() == net->named_parameters()[0].second.impl());
}

TEST_CASE("unknown split name: ValueError listing the valid names", "[nn]") {
  Generator gen(5);
  auto net = make_lenet(gen);
  try {
    net->split("relu2");
    FAIL("split accepted an unknown layer name");
  } catch (const ValueError& e) {
    std::string msg = e.what();
    CHECK(msg.find("'relu2'") != std::string::npos);
    CHECK(msg.find("conv1, ReLU1, pool1, conv2, ReLU2, pool2, flatten, fc1, fc1act, fc2, fc2act, fc3") !=
          std::string::npos);
  }
  CHECK_THROWS_AS(net->add("conv1", std::make_shared<ReLU>()), ValueError);  // names are unique
}

// ---- init ----------------------------------------------------------------------------------------------

TEST_CASE("same seed gives the same weights, another seed other weights", "[nn]") {
  Generator g1(42), g2(42), g3(43);
  auto a = make_lenet(g1), b = make_lenet(g2), c = make_lenet(g3);
  auto pa = a->parameters(), pb = b->parameters(), pc = c->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    CHECK(bit_equal(pa[i], pb[i]));
    CHECK_FALSE(bit_equal(pa[i], pc[i]));
  }
}

TEST_CASE("init: Xavier bounds and moments, PyTorch default bounds", "[nn]") {
  Generator gen(9);
  // Conv weight [64, 32, 3, 3]: fan_in 288, fan_out 576; Xavier bound sqrt(6 / 864).
  Tensor w = Tensor::zeros(Shape{64, 32, 3, 3}, DType::f64);
  CHECK(init::fans(w) == std::pair<int64_t, int64_t>{288, 576});
  init::xavier_uniform_(w, gen);
  double bound = std::sqrt(6.0 / 864.0), max_abs = 0, mean = 0, var = 0;
  auto v = w.to_vector();
  for (double x : v) max_abs = std::max(max_abs, std::fabs(x)), mean += x / double(v.size());
  for (double x : v) var += (x - mean) * (x - mean) / double(v.size());
  CHECK(max_abs <= bound);
  CHECK(max_abs > 0.99 * bound);
  CHECK(std::fabs(mean) < 0.01 * bound);
  CHECK(var == Approx(bound * bound / 3).epsilon(0.05));  // variance of U(-a, a) is a²/3

  init::xavier_normal_(w, gen);
  v = w.to_vector();
  double sq = 0;
  for (double x : v) sq += x * x / double(v.size());
  CHECK(std::sqrt(sq) == Approx(std::sqrt(2.0 / 864.0)).epsilon(0.05));

  // PyTorch's default: weight and bias within ±1/sqrt(fan_in); LeNet conv1 has fan_in 25, fc1 256.
  auto lenet = make_lenet(gen);
  for (auto& [name, t] : lenet->named_parameters()) {
    double fan_in = name.rfind("conv1", 0) == 0 ? 25 : name.rfind("fc1", 0) == 0 ? 256 : 0;
    if (fan_in == 0) continue;
    double m = 0;
    for (double x : t.to_vector()) m = std::max(m, std::fabs(x));
    INFO(name);
    CHECK(m <= 1 / std::sqrt(fan_in));
    CHECK(m > 0.7 / std::sqrt(fan_in));
  }
}

// ---- layers ---------------------------------------------------------------------------------------------

TEST_CASE("Dropout: active in training mode only", "[nn]") {
  Generator gen(11);
  Dropout drop(0.5, /*rescale=*/true, gen);
  Tensor x = Tensor::ones(Shape{2000});
  auto y = drop.forward(x).to_vector();
  int zeros = 0;
  for (double v : y) {
    CHECK((v == 0.0 || v == 2.0));
    zeros += v == 0.0;
  }
  CHECK(zeros > 850);
  CHECK(zeros < 1150);
  drop.eval();
  CHECK(bit_equal(drop.forward(x), x));
  CHECK_THROWS_AS(Dropout(1.0, true, gen), ValueError);
}

TEST_CASE("ConvTranspose2d decoder shapes (SPEC's inverse networks)", "[nn]") {
  Generator gen(12);
  Sequential dec;
  dec.add("up1", std::make_shared<ConvTranspose2d>(16, 8, 5))
      .add("act", std::make_shared<ReLU>())
      .add("up2", std::make_shared<ConvTranspose2d>(8, 1, 5, 2, 0, 1));
  init::xavier_module_(dec, gen);
  CHECK(dec.output_shape(Shape{3, 16, 8, 8}) == Shape{3, 1, 28, 28});  // ReLU2 (8x8) back to 28x28
  CHECK(dec.layer("up2")->describe() == "ConvTranspose2d(8->1, k5, s2, op1)");
  CHECK(dec.forward(Tensor::zeros(Shape{3, 16, 8, 8})).shape() == Shape{3, 1, 28, 28});
}

TEST_CASE("Module::to(DType) keeps parameter identity and requires_grad", "[nn]") {
  Generator gen(13);
  auto net = make_lenet(gen);
  Tensor w = net->named_parameters()[0].second;
  auto before = w.to_vector();
  net->to(DType::f64);
  CHECK(w.dtype() == DType::f64);  // the same tensor handle sees the conversion
  CHECK(w.requires_grad());
  CHECK(w.to_vector() == before);  // float32 -> float64 is exact
}

// ---- gradients of whole networks --------------------------------------------------------------------------

TEST_CASE("CIFAR10CNN stack gradcheck (float64, 8x8 inputs, narrow channels)", "[nn]") {
  Generator gen(21);
  auto net = make_cifar10cnn(gen, kTinyCifar);
  net->to(DType::f64);
  Tensor x = test::randn(Shape{2, 3, 8, 8}, gen);
  // 48 random elements of each weight (every element of the smaller tensors: all biases).
  check_grads_sampled(weighted_output(*net, x, gen), net->named_parameters(), 48, gen);
  // The input gradient (what the white-box attack follows), through sl::gradcheck.
  auto r = gradcheck([&](const std::vector<Tensor>& in) { return net->forward(in[0]); }, {x});
  INFO(r.detail);
  CHECK(r.ok);
}

TEST_CASE("full-size CIFAR10CNN gradients at sampled elements (float64)", "[nn]") {
  // One element each of the first and last conv weights, fc1's weight and the input: slow in float64 (one
  // forward is ~0.1 s), so only a spot check at full size; the test above covers the stack thoroughly.
  Generator gen(22);
  auto net = make_cifar10cnn(gen);
  net->to(DType::f64);
  Tensor x = test::randn(Shape{2, 3, 32, 32}, gen).requires_grad_(true);
  std::vector<std::pair<std::string, Tensor>> wrt{{"input", x}};
  for (auto& [name, t] : net->named_parameters())
    if (name == "conv11.weight" || name == "conv32.weight" || name == "fc1.weight") wrt.emplace_back(name, t);
  check_grads_sampled(weighted_output(*net, x, gen), wrt, 1, gen);
}

TEST_CASE("LeNet gradcheck (float64, sampled elements)", "[nn]") {
  Generator gen(23);
  auto net = make_lenet(gen);
  net->to(DType::f64);
  Tensor x = test::randn(Shape{2, 1, 28, 28}, gen).requires_grad_(true);
  auto wrt = net->named_parameters();
  wrt.emplace_back("input", x);
  check_grads_sampled(weighted_output(*net, x, gen), wrt, 24, gen);
  // The cloud tail after pool2, with respect to every element of the feature map it receives.
  auto tail = net->split("pool2").tail;
  auto r = gradcheck([&](const std::vector<Tensor>& in) { return tail->forward(in[0]); },
                     {test::randn(Shape{2, 16, 4, 4}, gen)});
  INFO(r.detail);
  CHECK(r.ok);
}

// ---- optimizers ----------------------------------------------------------------------------------------

TEST_CASE("SGD with momentum, by hand", "[nn]") {
  // p0 = [1, 2, 3], constant g = [1, -1, 0.5], lr 0.1, momentum 0.9:
  //   buf1 = g,             p1 = p0 - 0.1 g    = [0.9, 2.1, 2.95]
  //   buf2 = 0.9 g + g = 1.9 g,  p2 = p1 - 0.19 g   = [0.71, 2.29, 2.855]
  //   buf3 = 0.9·1.9 g + g = 2.71 g, p3 = p2 - 0.271 g = [0.439, 2.561, 2.7195]
  Tensor p = Tensor::from_vector({1, 2, 3}, Shape{3}, DType::f64).requires_grad_(true);
  SgdArgs a;
  a.lr = 0.1;
  a.momentum = 0.9;
  SGD opt({p}, a);
  std::vector<std::vector<double>> expected = {{0.9, 2.1, 2.95}, {0.71, 2.29, 2.855}, {0.439, 2.561, 2.7195}};
  for (auto& e : expected) {
    set_grad(p, {1, -1, 0.5});
    opt.step();
    auto v = p.to_vector();
    for (int i = 0; i < 3; ++i) CHECK(v[i] == Approx(e[i]).margin(1e-12));
  }
}

TEST_CASE("SGD with weight decay and Nesterov momentum, by hand", "[nn]") {
  // lr 0.1, momentum 0.5, weight decay 0.1, constant g = [1, -1, 0.5], p0 = [1, 2, 3]:
  //   g'1 = g + 0.1 p0 = [1.1, -0.8, 0.8]; buf1 = g'1; step = g'1 + 0.5 buf1 = [1.65, -1.2, 1.2]
  //   p1 = p0 - 0.1 step = [0.835, 2.12, 2.88]
  //   g'2 = g + 0.1 p1 = [1.0835, -0.788, 0.788]; buf2 = 0.5 buf1 + g'2 = [1.6335, -1.188, 1.188]
  //   step = g'2 + 0.5 buf2 = [1.90025, -1.382, 1.382]; p2 = [0.644975, 2.2582, 2.7418]
  Tensor p = Tensor::from_vector({1, 2, 3}, Shape{3}, DType::f64).requires_grad_(true);
  SgdArgs a;
  a.lr = 0.1;
  a.momentum = 0.5;
  a.weight_decay = 0.1;
  a.nesterov = true;
  SGD opt({p}, a);
  std::vector<std::vector<double>> expected = {{0.835, 2.12, 2.88}, {0.644975, 2.2582, 2.7418}};
  for (auto& e : expected) {
    set_grad(p, {1, -1, 0.5});
    opt.step();
    auto v = p.to_vector();
    for (int i = 0; i < 3; ++i) CHECK(v[i] == Approx(e[i]).margin(1e-12));
  }
}

TEST_CASE("Adam and AMSGrad, by hand", "[nn]") {
  // lr 0.1, betas (0.9, 0.999), eps 1e-8, p0 = [1, 2, 3], g1 = [1, -2, 0.5], g2 = [0.01, -0.01, 0.01].
  // Step 1: m = 0.1 g1, v = 0.001 g1²; bias-corrected m̂ = g1, v̂ = g1², so p1 = p0 - 0.1 sign(g1) = [0.9, 2.1, 2.9].
  // Step 2: m = 0.09 g1 + 0.1 g2 = [0.091, -0.181, 0.046]             (m̂ = m / (1 - 0.9²) = m / 0.19)
  //         v = 0.000999 g1² + 0.001 g2² = [0.0009991, 0.0039961, 0.00024985]  (v̂ = v / 0.001999)
  //   Adam:    p2 = p1 - 0.1 m̂ / sqrt(v̂)
  //   AMSGrad: v shrank, so vmax stays at step 1's 0.001 g1² = [0.001, 0.004, 0.00025]: p2 = p1 - 0.1 m̂ / sqrt(vmax /
  //   0.001999)
  const double m2[3] = {0.091, -0.181, 0.046};
  const double v2[3] = {0.0009991, 0.0039961, 0.00024985};
  const double vmax2[3] = {0.001, 0.004, 0.00025};
  const double p1[3] = {0.9, 2.1, 2.9};
  for (bool amsgrad : {false, true}) {
    INFO((amsgrad ? "AMSGrad" : "Adam"));
    Tensor p = Tensor::from_vector({1, 2, 3}, Shape{3}, DType::f64).requires_grad_(true);
    AdamArgs a;
    a.lr = 0.1;
    a.amsgrad = amsgrad;
    Adam opt({p}, a);
    set_grad(p, {1, -2, 0.5});
    opt.step();
    auto v = p.to_vector();
    for (int i = 0; i < 3; ++i) CHECK(v[i] == Approx(p1[i]).margin(1e-7));
    set_grad(p, {0.01, -0.01, 0.01});
    opt.step();
    v = p.to_vector();
    for (int i = 0; i < 3; ++i) {
      double vhat = (amsgrad ? vmax2[i] : v2[i]) / 0.001999;
      CHECK(v[i] == Approx(p1[i] - 0.1 * (m2[i] / 0.19) / std::sqrt(vhat)).margin(1e-7));
    }
  }
}

TEST_CASE("optimizers skip parameters without a gradient", "[nn]") {
  Tensor p = Tensor::from_vector({1, 2}, Shape{2}, DType::f64).requires_grad_(true);
  Adam opt({p}, AdamArgs{});
  opt.step();
  CHECK(p.to_vector() == std::vector<double>{1, 2});
}

TEST_CASE("StepLR halves the rate every step_size epochs", "[nn]") {
  Tensor p = Tensor::zeros(Shape{1}).requires_grad_(true);
  Adam opt({p}, AdamArgs{});  // lr 1e-3
  StepLR sched(opt, 20, 0.5);
  CHECK(sched.lr_at(0) == 1e-3);
  CHECK(sched.lr_at(19) == 1e-3);
  CHECK(sched.lr_at(20) == 5e-4);
  CHECK(sched.lr_at(39) == 5e-4);
  CHECK(sched.lr_at(40) == 2.5e-4);
  CHECK(sched.lr_at(65) == 1.25e-4);
  sched.set_epoch(45);
  CHECK(opt.lr() == 2.5e-4);
}

// ---- checkpoints ----------------------------------------------------------------------------------------

TEST_CASE("checkpoint round trip is bit-exact", "[nn]") {
  TempDir dir;
  Generator gen(31);
  Model a = make_model("lenet", gen);
  Model b = make_model("lenet", gen);  // other weights
  std::string path = dir.file("lenet.splk");
  save_checkpoint(path, a, {{"dataset", "mnist"}, {"epochs", "3"}, {"accuracy", "0.991"}, {"seed", "31"}});
  for (auto& e : fs::directory_iterator(dir.path)) CHECK(e.path().filename() == "lenet.splk");  // no temp left

  Checkpoint c = load_checkpoint(path);
  CHECK(c.arch == "lenet");
  CHECK(c.get("dataset") == "mnist");
  CHECK(c.get("accuracy") == "0.991");
  CHECK(c.get("missing", "none") == "none");
  load_into(b, c);
  auto pa = a.net->parameters(), pb = b.net->parameters();
  for (size_t i = 0; i < pa.size(); ++i) CHECK(bit_equal(pa[i], pb[i]));
  CHECK(pb[0].requires_grad());

  save_checkpoint(path, b);  // overwriting an existing file works too
  CHECK(load_checkpoint(path).tensors.size() == pa.size());
  // Missing folders are created; a folder that cannot exist (its parent is a file) is an IoError.
  save_checkpoint(dir.file("new/sub/x.splk"), a);
  CHECK(load_checkpoint(dir.file("new/sub/x.splk")).arch == "lenet");
  std::ofstream(dir.file("plainfile")) << "x";
  CHECK_THROWS_AS(save_checkpoint(dir.file("plainfile/x.splk"), a), IoError);
}

TEST_CASE("corrupt checkpoints are rejected with IoError naming the offset", "[nn]") {
  TempDir dir;
  Generator gen(32);
  Model m = make_model("lenet", gen);
  std::string good = dir.file("good.splk"), bad = dir.file("bad.splk");
  save_checkpoint(good, m, {{"dataset", "mnist"}});
  const std::vector<uint8_t> bytes = read_bytes(good);
  REQUIRE(bytes.size() > 1000);

  SECTION("truncated") {
    for (size_t len : {size_t(0), size_t(3), size_t(10), size_t(17), size_t(60), bytes.size() / 2, bytes.size() - 1}) {
      write_bytes(bad, std::vector<uint8_t>(bytes.begin(), bytes.begin() + long(len)));
      std::string err = load_error(bad);
      INFO("truncated to " << len << " bytes: " << err);
      CHECK(err.find("truncated") != std::string::npos);
      CHECK(err.find("byte offset") != std::string::npos);
      CHECK(err.find(bad) != std::string::npos);
    }
  }
  SECTION("flipped byte: checksum mismatch") {
    for (size_t at : {size_t(20), bytes.size() / 2, bytes.size() - 5, bytes.size() - 1}) {
      auto b = bytes;
      b[at] ^= 0x10;
      write_bytes(bad, b);
      std::string err = load_error(bad);
      INFO("flipped byte " << at << ": " << err);
      CHECK(err.find("checksum mismatch") != std::string::npos);
    }
  }
  SECTION("wrong magic") {
    auto b = bytes;
    b[0] = 'X';
    write_bytes(bad, b);
    CHECK(load_error(bad).find("wrong magic") != std::string::npos);
  }
  SECTION("unsupported version") {
    auto b = bytes;
    b[4] = 2;
    write_bytes(bad, b);
    CHECK(load_error(bad).find("unsupported format version 2") != std::string::npos);
  }
  SECTION("absurd dimension behind a valid checksum: no huge allocation") {
    // Header (16) + "lenet" (4 + 5) + 1 metadata entry (4 + 4+7 "dataset" + 4+5 "mnist") + tensor count (4)
    // + "conv1.weight" (4 + 12) + dtype (1) + rank (1): the first dimension of the first tensor.
    size_t dim0 = 16 + 9 + 4 + 11 + 9 + 4 + 16 + 2;
    auto b = bytes;
    REQUIRE(b[dim0] == 8);  // conv1 has 8 output channels
    b[dim0 + 5] = 0x40;     // 8 + 2^46 elements
    uint32_t crc = io::crc32(b.data(), b.size() - 4);
    for (int i = 0; i < 4; ++i) b[b.size() - 4 + size_t(i)] = uint8_t(crc >> (8 * i));
    write_bytes(bad, b);
    std::string err = load_error(bad);
    INFO(err);
    CHECK(err.find("absurd dimension") != std::string::npos);
  }
  SECTION("missing file") { CHECK(load_error(dir.file("nope.splk")).find("not found") != std::string::npos); }
}

TEST_CASE("load_into rejects another architecture and mismatched tensors, naming them", "[nn]") {
  Generator gen(33);
  Model lenet = make_model("lenet", gen);
  auto tiny_cifar = make_cifar10cnn(gen, kTinyCifar);
  auto message = [&](const Checkpoint& c) -> std::string {
    try {
      load_into(lenet, c);
    } catch (const ValueError& e) {
      return e.what();
    }
    return "";
  };
  CHECK(message(make_checkpoint(*tiny_cifar, "cifar10cnn")) == "checkpoint is 'cifar10cnn' but the model is 'lenet'");

  Checkpoint c = make_checkpoint(*lenet.net, "lenet");
  Checkpoint missing = c;
  missing.tensors.pop_back();
  CHECK(message(missing).find("missing tensors: fc3.bias") != std::string::npos);
  Checkpoint extra = c;
  extra.tensors.emplace_back("fc4.weight", Tensor::zeros(Shape{2, 2}));
  CHECK(message(extra).find("unexpected tensors: fc4.weight") != std::string::npos);
  Checkpoint reshaped = c;
  reshaped.tensors[0].second = Tensor::zeros(Shape{8, 1, 3, 3});
  CHECK(message(reshaped).find("mismatched tensors: conv1.weight") != std::string::npos);
  CHECK(message(c).empty());
}
