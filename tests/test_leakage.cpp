// The leakage index (inversion/metrics.h, SPEC §6) on hand-computed values and on synthetic splits with a known
// answer, through the black-box attack the partition advisor runs: an identity edge (the decoder's held-out MSE goes
// to 0, the index is large) and a constant edge (nothing to decode: the best decoder is the mean image, index ≈ 0).
#include <catch2/catch.hpp>
#include <cmath>

#include "datasets/dataset.h"
#include "experiment/defend.h"
#include "inversion/attack.h"
#include "inversion/metrics.h"
#include "nn/init.h"
#include "nn/layers.h"

using namespace sl;

TEST_CASE("leakage index: hand-computed values, the floors, bad input", "[leakage]") {
  CHECK(inv::leakage_index(0.25, 0.25 / 4) == Approx(1.0));   // a quarter of the variance left: 1 bit
  CHECK(inv::leakage_index(0.1, 0.1 / 1024) == Approx(5.0));  // 2^-10: 5 bits
  CHECK(inv::leakage_index(0.1, 0.1) == 0);                   // the mean image: nothing
  CHECK(inv::leakage_index(0.1, 0.5) == 0);                   // worse than the mean: floored at 0
  CHECK(inv::leakage_index(0, 0.1) == 0);                     // a constant data set carries nothing
  const double q = 1.0 / (255.0 * 255.0 * 12.0);              // 8-bit quantisation noise
  CHECK(inv::leakage_index(0.1, 0) == Approx(0.5 * std::log2(0.1 / q)));
  CHECK_THROWS_AS(inv::leakage_index(std::nan(""), 0.1), ValueError);
  CHECK_THROWS_AS(inv::leakage_index(0.1, -1), ValueError);
}

namespace {

// [N, 1, S, S] uniform-noise images (pixels in [0, 1], MNIST-normalised), labels i % 2.
data::Dataset noise_images(int64_t n, int64_t S, uint64_t seed) {
  Generator gen(seed);
  Tensor px = Tensor::empty(Shape{n, 1, S, S});
  init::uniform_(px, 0.0, 1.0, gen);
  data::Dataset d;
  d.norm = data::mnist_normalization();
  d.images = data::normalize(px, d.norm);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(int32_t(i % 2));
  d.classes = 2;
  d.name = "noise";
  d.split = "train";
  return d;
}

// edge: a 1x1 convolution with weight w and bias b (w = 1, b = 0: the identity; w = 0: a constant), then a tail.
Model one_by_one_edge(int64_t S, double w, double b) {
  Generator gen(3);
  auto net = std::make_shared<Sequential>();
  auto conv = std::make_shared<Conv2d>(1, 1, 1);
  net->add("conv1", conv);
  net->add("flatten", std::make_shared<Flatten>());
  net->add("fc", std::make_shared<Linear>(int(S * S), 2));
  net->reset_parameters(gen);
  conv->weight.fill_(w);
  conv->bias.fill_(b);
  net->eval();
  return Model{"tiny", Shape{1, S, S}, 2, net};
}

// The black-box attack's leakage index at conv1 (held-out victims), as `splitleak partition` computes it.
double blackbox_leakage(const Model& m, const data::Dataset& attacker, const data::Dataset& victims) {
  inv::AttackConfig c = inv::default_config(inv::AttackKind::blackbox, profile_of(m), "conv1");
  c.fit.epochs = 40;
  c.fit.lr = 2e-2;
  inv::AttackResult r = inv::run_attack(m, victims, attacker, c);
  const double mse = inv::mean_squared_error(r.originals, r.reconstructions);
  return inv::leakage_index(experiment::pixel_variance(victims), mse);
}

}  // namespace

TEST_CASE("leakage index: an identity split leaks a lot, a constant one nothing", "[leakage]") {
  const int64_t S = 8;
  data::Dataset attacker = noise_images(256, S, 1), victims = noise_images(16, S, 2);
  // Uniform pixels: Var = 1/12; 8-bit exact recovery would be ~6.6 bits.
  CHECK(experiment::pixel_variance(victims) == Approx(1.0 / 12).epsilon(0.15));
  const double identity = blackbox_leakage(one_by_one_edge(S, 1, 0), attacker, victims);
  const double constant = blackbox_leakage(one_by_one_edge(S, 0, 0.5), attacker, victims);
  INFO("identity " << identity << " bit/px, constant " << constant << " bit/px");
  CHECK(identity > 3.0);  // decoder MSE < Var / 64
  CHECK(constant < 0.1);  // the decoder can only learn the mean image
  CHECK(identity > constant);
}
