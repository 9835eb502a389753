// nn/graph.h: a chain as a graph gives the chain's bits and split points; a residual net's split points are the cuts
// between blocks, and its head and tail, run separately, give the whole net's bits; gradients flow through both
// paths of a block; bad graphs are clear errors. And the layers imported networks use (nn/layers.h): their output
// shapes agree with what forward makes, batch norm folds its statistics as the formula says.
#include <catch2/catch.hpp>
#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "nn/graph.h"
#include "nn/layers.h"
#include "nn/models.h"
#include "tests/op_harness.h"

using namespace sl;
using namespace sl::test;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) { return a.shape() == b.shape() && rel_max_diff(a, b) == 0.0; }

// conv1 -> relu1 -> [conv2a -> relu2a -> conv2b] + relu1 -> add -> relu2 -> pool -> flatten -> fc
std::shared_ptr<Graph> residual_net(Generator& gen) {
  auto g = std::make_shared<Graph>();
  ConvArgs s2;
  s2.stride = 2;
  s2.pad = 1;
  g->add("conv1", std::make_shared<Conv2d>(3, 4, 3, 3, s2))
      .add("relu1", std::make_shared<ReLU>())
      .add("conv2a", std::make_shared<Conv2d>(4, 4, 3, 1, 1))
      .add("relu2a", std::make_shared<ReLU>())
      .add("conv2b", std::make_shared<Conv2d>(4, 4, 3, 1, 1))
      .add("add", std::make_shared<Add>(), {"conv2b", "relu1"})
      .add("relu2", std::make_shared<ReLU>())
      .add("pool", std::make_shared<MaxPool2d>(2, 2))
      .add("flatten", std::make_shared<Flatten>())
      .add("fc", std::make_shared<Linear>(4 * 2 * 2, 5));
  g->reset_parameters(gen);
  return g;
}

}  // namespace

TEST_CASE("a Sequential as a Graph: same bits, every layer a split point, same halves", "[nngraph]") {
  Generator gen(7);
  auto seq = make_lenet(gen);
  seq->eval();
  auto g = Graph::from_sequential(*seq);
  CHECK(g->split_points() == seq->layer_names());
  CHECK(g->num_parameters() == seq->num_parameters());
  Tensor x = randn({3, 1, 28, 28}, gen).to(DType::f32);
  NoGradGuard ng;
  CHECK(same_bits(g->forward(x), seq->forward(x)));
  CHECK(g->output_shape(x.shape()) == seq->output_shape(x.shape()));
  for (const std::string cut : {"conv1", "ReLU2", "pool2", "fc3"}) {
    INFO("split at " << cut);
    auto gs = g->split(cut);
    auto ss = seq->split(cut);
    Tensor v = gs.head->forward(x);
    CHECK(same_bits(v, ss.head->forward(x)));
    CHECK(same_bits(gs.tail->forward(v), g->forward(x)));
    CHECK(same_bits(g->forward_until(x, cut), v));
  }
  CHECK(g->split("fc3").tail->size() == 0);  // the identity after the last layer
}

TEST_CASE("a residual graph splits between blocks only; head then tail gives the whole net's bits", "[nngraph]") {
  Generator gen(11);
  auto g = residual_net(gen);
  CHECK(g->split_points() == std::vector<std::string>{"conv1", "relu1", "add", "relu2", "pool", "flatten", "fc"});
  CHECK_FALSE(g->is_split_point("conv2a"));
  CHECK(g->readers_of("relu1") == std::vector<std::string>{"conv2a", "add"});
  CHECK(g->inputs_of("add") == std::vector<std::string>{"conv2b", "relu1"});
  CHECK_THROWS_WITH(g->split("conv2b"), Catch::Contains("not a split point") && Catch::Contains("relu1, add"));
  CHECK_THROWS_WITH(g->split("nope"), Catch::Contains("no layer named 'nope'"));

  Tensor x = randn({2, 3, 8, 8}, gen).to(DType::f32);
  NoGradGuard ng;
  const Tensor y = g->forward(x);
  CHECK(y.shape() == Shape{2, 5});
  CHECK(g->output_shape(x.shape()) == y.shape());
  for (const auto& cut : g->split_points()) {
    INFO("split at " << cut);
    auto [head, tail] = g->split_modules(cut);
    const Tensor v = head->forward(x);
    CHECK(same_bits(v, g->forward_until(x, cut)));
    CHECK(same_bits(tail->forward(v), y));
  }
  // the same net computed by hand, layer by layer, unfused
  auto L = [&](const char* n) { return g->layer(n); };
  Tensor r1 = L("relu1")->forward(L("conv1")->forward(x));
  Tensor b = L("conv2b")->forward(L("relu2a")->forward(L("conv2a")->forward(r1)));
  Tensor h = L("pool")->forward(L("relu2")->forward(add(b, r1)));
  CHECK(same_bits(L("fc")->forward(L("flatten")->forward(h)), y));
  // the summary marks the split points
  const std::string sum = g->summary(x.shape());
  CHECK(sum.find("* relu1") != std::string::npos);
  CHECK(sum.find("  conv2a") != std::string::npos);
  CHECK(sum.find("<- conv2b, relu1") != std::string::npos);
  CHECK(g->describe() == "Graph(10 nodes, 7 split points)");
}

TEST_CASE("gradients flow through both paths of a residual block (finite differences)", "[nngraph]") {
  Generator gen(13);
  auto g = residual_net(gen);
  g->to(DType::f64);
  Tensor x = randn({1, 3, 8, 8}, gen);
  auto r = gradcheck([&](const std::vector<Tensor>& in) { return g->forward(in[0]); }, {x}, 1e-6, 1e-5, 1e-4);
  INFO(r.detail);
  CHECK(r.ok);
  // and to the parameters of the skipped path
  Tensor xr = x.clone().requires_grad_(true);
  sum(g->forward(xr)).backward();
  CHECK(xr.grad().defined());
  CHECK(g->layer("conv2a")->named_parameters()[0].second.grad().defined());
}

TEST_CASE("graph construction errors name the node and what is wrong", "[nngraph]") {
  Graph g;
  g.add("a", std::make_shared<ReLU>());
  CHECK_THROWS_WITH(g.add("b", std::make_shared<ReLU>(), {"zz"}), Catch::Contains("'b' reads 'zz'"));
  CHECK_THROWS_WITH(g.add("a", std::make_shared<ReLU>()), Catch::Contains("already exists"));
  CHECK_THROWS_WITH(g.add("c", std::make_shared<Add>(), {"a"}), Catch::Contains("takes 2 inputs, got 1"));
  CHECK_THROWS_WITH(g.add("d", std::make_shared<ReLU>(), {"a", "a"}), Catch::Contains("takes 1 input, got 2"));
  CHECK_THROWS_AS(g.add("e.f", std::make_shared<ReLU>()), ValueError);
  CHECK_THROWS_AS(g.add(Graph::kInput, std::make_shared<ReLU>()), ValueError);
  CHECK_THROWS_AS(Add().forward(Tensor::zeros({2})), ValueError);
  // a graph reading its input twice (x + relu(x)) has its first split point at the join
  Graph r;
  r.add("act", std::make_shared<ReLU>()).add("sum", std::make_shared<Add>(), {"act", Graph::kInput});
  CHECK(r.split_points() == std::vector<std::string>{"sum"});
  Tensor x = Tensor::from_vector(std::vector<double>{-1, 2}, Shape{1, 2});
  CHECK(r.forward(x).to_vector() == std::vector<double>{-1, 4});
}

TEST_CASE("imported-network layers: output shapes match forward, descriptions, batch-norm folding", "[nngraph]") {
  Generator gen(17);
  ConvArgs a;
  a.stride = 2;
  a.stride_w = 1;
  a.pad = 1;
  a.pad_left = 0;
  a.pad_bottom = 0;
  a.pad_right = 2;
  a.dilation_w = 2;
  a.groups = 2;
  PoolArgs p;
  p.mode = PoolMode::avg;
  p.kh = 3, p.kw = 2, p.sh = 2, p.sw = 2, p.pt = 1, p.pb = 1;
  p.ceil_mode = true;
  std::vector<std::shared_ptr<Module>> layers = {std::make_shared<Conv2d>(4, 6, 3, 2, a),
                                                 std::make_shared<ConvTranspose2d>(4, 6, 3, 2, a),
                                                 std::make_shared<Pool2d>(p),
                                                 std::make_shared<GlobalAvgPool2d>(),
                                                 std::make_shared<BatchNorm>(4),
                                                 std::make_shared<AddConstant>(Tensor::ones({4, 1, 1})),
                                                 std::make_shared<Tanh>(),
                                                 std::make_shared<LeakyReLU>(0.2),
                                                 std::make_shared<Softmax>(1),
                                                 std::make_shared<Softmax>(1, true),
                                                 std::make_shared<Flatten>(2),
                                                 std::make_shared<Reshape>(Shape{4, 63}, true),
                                                 std::make_shared<Reshape>(Shape{3, 8, 21}, false)};
  Tensor x = randn({2, 4, 7, 9}, gen).to(DType::f32);
  NoGradGuard ng;
  for (auto& l : layers) {
    l->reset_parameters(gen);
    INFO(l->describe());
    CHECK(l->forward(x).shape() == l->output_shape(x.shape()));
  }
  CHECK(layers[0]->describe() == "Conv2d(4->6, k3x2, s2x1, p1/0/0/2, d1x2, g2)");
  CHECK(layers[2]->describe() == "AvgPool2d(3x2, s2, p1/0/1/0, ceil)");
  CHECK(Conv2d(1, 8, 5).describe() == "Conv2d(1->8, k5)");  // the square case reads as before
  CHECK_THROWS_AS(layers[11]->forward(randn({2, 4, 7, 8}, gen).to(DType::f32)), ShapeError);
  CHECK_THROWS_AS(Pool2d(PoolArgs{PoolMode::max, 2, 2, 1, 1, 2, 0, 0, 0, 1, 1, false, false}), ValueError);

  // y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel
  Tensor gamma = Tensor::from_vector(std::vector<double>{1.5, -0.5}, Shape{2});
  Tensor beta = Tensor::from_vector(std::vector<double>{0.1, 0.2}, Shape{2});
  Tensor mean = Tensor::from_vector(std::vector<double>{-1, 3}, Shape{2});
  Tensor var = Tensor::from_vector(std::vector<double>{4, 0.25}, Shape{2});
  auto bn = BatchNorm::from_statistics(gamma, beta, mean, var, 1e-5);
  Tensor xb = randn({3, 2, 2, 2}, gen).to(DType::f32);
  auto vx = xb.to_vector(), vy = bn->forward(xb).to_vector();
  const double m[2] = {-1, 3}, v[2] = {4, 0.25}, ga[2] = {1.5, -0.5}, be[2] = {0.1, 0.2};
  double worst = 0;
  for (size_t i = 0; i < vx.size(); ++i) {
    const size_t c = (i / 4) % 2;
    worst = std::max(worst, std::fabs(vy[i] - ((vx[i] - m[c]) / std::sqrt(v[c] + 1e-5) * ga[c] + be[c])));
  }
  CHECK(worst < 1e-5);
  CHECK_THROWS_AS(
      BatchNorm::from_statistics(gamma, beta, mean, Tensor::from_vector(std::vector<double>{-1.0, 1.0}, Shape{2}), 0.0),
      ValueError);
}
