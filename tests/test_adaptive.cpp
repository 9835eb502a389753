// Model profiles (facts and the settings the attacks build from them), the attack registry, and the adaptive
// attackers: the defense model of each kind against a hand-computed case, and an rMLE that only succeeds when it
// uses the dropout mask. Tiny models, seconds on the CPU.
#include <catch2/catch.hpp>
#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "inversion/adaptive.h"
#include "inversion/attack.h"
#include "inversion/inverse_net.h"
#include "inversion/metrics.h"
#include "inversion/query_free.h"
#include "nn/layers.h"
#include "nn/profile.h"
#include "tests/op_harness.h"

using namespace sl;
using namespace sl::inv;

// ---- profiles -----------------------------------------------------------------------------------------------------

TEST_CASE("profiles: layer kinds and regions from the network, measured data of the built-in models", "[profile]") {
  Generator gen(0);
  ModelProfile p = profile_of(make_model("lenet", gen));
  CHECK(p.dataset == "mnist");
  CHECK(p.layer("conv1").kind == LayerKind::conv);
  CHECK(p.layer("conv1").region == Region::early);
  CHECK(p.layer("ReLU1").region == Region::early);
  CHECK(p.layer("pool1").region == Region::first_pool);
  CHECK(p.layer("ReLU2").region == Region::conv);
  CHECK(p.layer("flatten").region == Region::conv);
  CHECK(p.layer("fc1").region == Region::fc);
  CHECK(p.layer("fc3").region == Region::fc);
  CHECK(p.layer("ReLU2").output == Shape({16, 8, 8}));
  CHECK_THROWS_WITH(p.layer("conv9"), Catch::Contains("conv9") && Catch::Contains("pool2"));
  ModelProfile c = profile_of(make_model("cifar10cnn", gen));
  CHECK(c.layer("ReLU12").region == Region::early);
  CHECK(c.layer("ReLU22").region == Region::conv);
  CHECK(c.decoders.count("ReLU22") == 1);
  // Any other network: facts from its layers, no measured data.
  auto net = std::make_shared<Sequential>();
  net->add("a", std::make_shared<Conv2d>(1, 2, 3)).add("b", std::make_shared<MaxPool2d>(2));
  net->add("c", std::make_shared<Flatten>()).add("d", std::make_shared<Linear>(2 * 3 * 3, 4));
  ModelProfile o = profile_of(Model{"mine", Shape{1, 8, 8}, 4, net});
  CHECK_FALSE(o.measured);
  CHECK(o.layer("b").region == Region::first_pool);
  CHECK(o.layer("d").region == Region::fc);
  CHECK(o.decoders.empty());
}

TEST_CASE("profiles: the attack settings built from them are the measured ones, region by region", "[profile]") {
  struct Want {
    const char* arch;
    AttackKind kind;
    const char* preset;
    const char* split;
    double tv, lr;
    int iters;
  };
  const Want wants[] = {
      // LeNet reference: λ 0 up to pool1, 1 in the conv part, 1e3 on the FC side, 10 for prob.
      {"lenet", AttackKind::whitebox, "reference", "conv1", 0, 1e-2, 5000},
      {"lenet", AttackKind::whitebox, "reference", "pool1", 0, 1e-2, 5000},
      {"lenet", AttackKind::whitebox, "reference", "ReLU2", 1, 1e-2, 5000},
      {"lenet", AttackKind::whitebox, "reference", "fc1", 1e3, 1e-2, 5000},
      {"lenet", AttackKind::whitebox, "reference", "prob", 10, 1e-2, 5000},
      {"lenet", AttackKind::whitebox, "reference", "label", 1e3, 1e-2, 5000},
      {"lenet", AttackKind::queryfree, "reference", "ReLU2", 1, 1e-2, 5000},
      // LeNet tuned.
      {"lenet", AttackKind::whitebox, "tuned", "ReLU1", 0, 0.05, 5000},
      {"lenet", AttackKind::whitebox, "tuned", "pool1", 2e-4, 0.05, 5000},
      {"lenet", AttackKind::whitebox, "tuned", "ReLU2", 2e-4, 0.05, 5000},
      {"lenet", AttackKind::whitebox, "tuned", "fc2", 1e-2, 0.05, 5000},
      {"lenet", AttackKind::whitebox, "tuned", "prob", 1e-3, 0.05, 5000},
      {"lenet", AttackKind::queryfree, "tuned", "conv1", 2e-4, 0.05, 5000},
      {"lenet", AttackKind::queryfree, "tuned", "ReLU2", 1e-3, 0.05, 5000},
      {"lenet", AttackKind::queryfree, "tuned", "fc1", 1e-2, 0.05, 5000},
      // CIFAR10CNN: 10 in the conv part, 1e3 on the FC side; query-free lr 0.1, λ 2, 500 iterations; no tuned.
      {"cifar10cnn", AttackKind::whitebox, "reference", "ReLU22", 10, 1e-2, 5000},
      {"cifar10cnn", AttackKind::whitebox, "reference", "ReLU11", 10, 1e-2, 5000},
      {"cifar10cnn", AttackKind::whitebox, "reference", "fc1", 1e3, 1e-2, 5000},
      {"cifar10cnn", AttackKind::whitebox, "tuned", "ReLU22", 10, 1e-2, 5000},
      {"cifar10cnn", AttackKind::queryfree, "reference", "ReLU22", 2, 0.1, 500},
      {"cifar10cnn", AttackKind::queryfree, "tuned", "pool2", 2, 0.1, 500},
  };
  for (const Want& w : wants) {
    INFO(w.arch << " " << w.kind.name << " " << w.preset << " " << w.split);
    AttackConfig c = default_config(w.kind, w.arch, w.split, w.preset);
    CHECK(c.rmle.tv == w.tv);
    CHECK(c.rmle.lr == w.lr);
    CHECK(c.rmle.iters == w.iters);
    bool tuned = std::string(w.preset) == "tuned" && std::string(w.arch) == "lenet";
    CHECK(c.rmle.tv_beta == (tuned ? 1 : 2));
    CHECK(c.rmle.project == tuned);
    CHECK(c.fit.lr == (w.kind == AttackKind::blackbox ? 2e-2 : 1e-3));
  }
}

TEST_CASE("profiles: the reference decoders and shadows are built from their data", "[profile]") {
  Generator gen(1);
  auto d = make_decoder(builtin_profile("lenet"), "ReLU2", Shape{16, 8, 8}, Shape{1, 28, 28}, gen);
  CHECK(d->layer_names() == std::vector<std::string>{"deconv1", "deconv1act", "deconv2"});
  CHECK(d->output_shape(Shape{2, 16, 8, 8}) == Shape({2, 1, 28, 28}));
  auto s = make_shadow(builtin_profile("lenet"), "ReLU2", Shape{1, 28, 28}, Shape{16, 8, 8}, Activation::relu, gen);
  CHECK(s->layer_names() == std::vector<std::string>{"conv1", "ReLU1", "pool1", "conv2", "ReLU2"});
  auto flat = make_decoder(builtin_profile("lenet"), "fc1", Shape{120}, Shape{1, 28, 28}, gen);
  CHECK(flat->output_shape(Shape{3, 120}) == Shape({3, 1, 28, 28}));  // ends with a Reshape back to images
}

// ---- the registry -------------------------------------------------------------------------------------------------

namespace {
// An attack in one definition: "reconstructs" every image as mid-grey.
class GreyAttack : public Attack {
 public:
  using Attack::Attack;
  void prepare(const AttackTarget&, const PhaseProgress&) override {}
  Tensor invert(const AttackTarget& t, const Observation& obs, const PhaseProgress&) override {
    detail_ = "grey";
    return Tensor::zeros(Shape{obs.rows(), t.image[0], t.image[1], t.image[2]});
  }
};
}  // namespace

TEST_CASE("attack registry: the built-in attacks, and a new one registered in one call", "[inversion][registry]") {
  auto names = attack_names();
  CHECK(names.size() >= 3);
  CHECK(attack_kind("whitebox") == AttackKind::whitebox);
  CHECK_THROWS_WITH(attack_kind("greybox"), Catch::Contains("whitebox") && Catch::Contains("queryfree"));
  register_attack("grey", [](const AttackConfig& c) { return std::make_unique<GreyAttack>(c); });
  AttackConfig cfg;
  cfg.kind = attack_kind("grey");
  cfg.split = "conv1";
  Generator gen(2);
  Model m = make_model("lenet", gen);
  data::Dataset d;
  d.norm = data::mnist_normalization();
  d.images = Tensor::zeros(Shape{3, 1, 28, 28});
  d.labels = {0, 1, 2};
  d.name = "zeros";
  AttackResult r = run_attack(m, d, d, cfg);
  CHECK(r.detail == "grey");
  CHECK(r.psnr.size() == 3);
  CHECK(std::isinf(r.psnr[0]));  // the originals are mid-grey too: identical images
}

// ---- adaptive: the defense models -------------------------------------------------------------------------------

namespace {

Observation observation_of(const Tensor& v, const std::string& spec) {
  Observation obs;
  obs.kind = TargetKind::feature;
  obs.v = v;
  obs.groups.push_back(ObservedGroup{0, v.size(0), make_defenses(parse_defenses(spec), 5)});
  return obs;
}

}  // namespace

TEST_CASE("adaptive model: dropout on the intermediate weighs only the observed entries, per image", "[adaptive]") {
  // Two images of 4 features; image 0 has 2 zeros (observed 2 of 4), image 1 has 1 zero.
  Tensor v = Tensor::from_vector(std::vector<double>{1, 0, 3, 0, 0, 2, 2, 2}, Shape{2, 4}, DType::f64);
  auto parts = model_defenses(observation_of(v, "dropout:0.5"), Shape{1, 2, 2}, AdaptiveOptions{}, 1);
  REQUIRE(parts.size() == 1);
  CHECK_FALSE(parts[0].input_draws);
  auto w = parts[0].observed.weight.to_vector();
  CHECK(w == std::vector<double>{2, 0, 2, 0, 0, 4.0 / 3, 4.0 / 3, 4.0 / 3});  // P / nnz on the non-zeros
  CHECK(parts[0].observed.v.to_vector() == v.to_vector());
  // Rescaled dropout: kept entries are f1(x) / (1 - r), so the target is (1 - r) v.
  auto rs = model_defenses(observation_of(v, "dropout:0.5,rescale"), Shape{1, 2, 2}, AdaptiveOptions{}, 1);
  CHECK(rs[0].observed.v.to_vector() == std::vector<double>{0.5, 0, 1.5, 0, 0, 1, 1, 1});
}

TEST_CASE("adaptive model: noise on the intermediate (SNR weight, Laplace ℓ1) and on the input (K draws)",
          "[adaptive]") {
  Tensor v = Tensor::full(Shape{2, 8}, 2.0, DType::f64);  // power 4
  auto g = model_defenses(observation_of(v, "gaussian:1"), Shape{1, 2, 2}, AdaptiveOptions{}, 1);
  // m² = 4 - 1 = 3: weight 1 / (1 + 1/3) = 0.75 everywhere, no ℓ1 term.
  for (double e : g[0].observed.weight.to_vector()) CHECK(e == Approx(0.75));
  CHECK_FALSE(g[0].observed.l1_weight.defined());
  auto l = model_defenses(observation_of(v, "laplace:0.5"), Shape{1, 2, 2}, AdaptiveOptions{}, 1);
  // var 2b² = 0.5, m² = 3.5: ℓ1 weight 2 sqrt(3.5) / (1 + 0.5 / 3.5); no squared-error term.
  for (double e : l[0].observed.l1_weight.to_vector()) CHECK(e == Approx(2 * std::sqrt(3.5) / (1 + 0.5 / 3.5)));
  for (double e : l[0].observed.weight.to_vector()) CHECK(e == 0);
  // Input dropout: K masks at the rate; input noise: K draws of the level.
  AdaptiveOptions o;
  o.eot_draws = 3;
  auto dm = model_defenses(observation_of(v, "dropout:0.25@input"), Shape{1, 20, 20}, o, 1);
  REQUIRE(dm.size() == 1);
  CHECK(dm[0].input_draws);
  REQUIRE(dm[0].observed.input_mul.size() == 3);
  CHECK(dm[0].observed.input_add.empty());
  double zeros = 0, n = 0, other = 0;
  for (auto& m : dm[0].observed.input_mul)
    for (double e : m.to_vector()) {
      zeros += e == 0;
      n += 1;
      other += e != 0 && e != 1;
    }
  CHECK(other == 0);
  CHECK(std::abs(zeros / n - 0.25) < 5 * std::sqrt(0.25 * 0.75 / n));
  auto gm = model_defenses(observation_of(v, "gaussian:0.5@input"), Shape{1, 20, 20}, o, 1);
  double s2 = 0;
  n = 0;
  for (auto& a : gm[0].observed.input_add)
    for (double e : a.to_vector()) s2 += e * e, n += 1;
  CHECK(std::sqrt(s2 / n) == Approx(0.5).epsilon(0.05));
  // Two defenses at one place cannot be modelled.
  CHECK_THROWS_WITH(model_defenses(observation_of(v, "dropout:0.5,gaussian:0.1"), Shape{1, 2, 2}, o, 1),
                    Catch::Contains("one defense per place"));
}

TEST_CASE("adaptive model: CIS clips the forward model and weighs each channel by its own noise", "[adaptive][cis]") {
  // 2 images, 2 channels of 2 elements: channel 0 all 3 (power 9), channel 1 all 1 (power 1). Uniform budgets:
  // eps 4 over 2 channels = 2 each, so b = 2 C / 2 = 1 and the noise variance 2 b² = 2 in both.
  Tensor v = Tensor::from_vector(std::vector<double>{3, 3, 1, 1, 3, 3, 1, 1}, Shape{2, 2, 2}, DType::f64);
  auto parts =
      model_defenses(observation_of(v, "cis:eps=4,alloc=uniform,clip=1"), Shape{1, 2, 2}, AdaptiveOptions{}, 1);
  REQUIRE(parts.size() == 1);
  const Observed& o = parts[0].observed;
  CHECK(o.clip_l1 == 1.0);
  CHECK(o.models_defense());
  // Squared error weighed by each channel's SNR: m² = 9 - 2 = 7, and 1 - 2 floored at 1 % of the power (0.01).
  const double w0 = 1 / (1 + 2.0 / 7), w1 = 1 / (1 + 2.0 / 0.01);
  auto w = o.weight.to_vector();
  for (size_t i = 0; i < w.size(); ++i) CHECK(w[i] == Approx((i / 2) % 2 == 0 ? w0 : w1));
  CHECK_FALSE(o.l1_weight.defined());
  // Knowing f1's natural channel norms (here 4 and 0.5 against C = 1), the first channel's weight is divided by
  // the square of its clip factor 1/4; the second, never clipped, keeps its own.
  const std::vector<double> norms{4.0, 0.5};
  auto nat =
      model_defenses(observation_of(v, "cis:eps=4,alloc=uniform,clip=1"), Shape{1, 2, 2}, AdaptiveOptions{}, 1, &norms);
  auto wn = nat[0].observed.weight.to_vector();
  for (size_t i = 0; i < wn.size(); ++i) CHECK(wn[i] == Approx((i / 2) % 2 == 0 ? 16 * w0 : w1));
  // Its rows run apart from rows with another clip bound (one rMLE per forward model).
  Observation two;
  two.kind = TargetKind::feature;
  two.v = v;
  two.groups.push_back(ObservedGroup{0, 1, make_defenses(parse_defenses("cis:eps=4,alloc=uniform,clip=1"), 5)});
  two.groups.push_back(ObservedGroup{1, 2, make_defenses(parse_defenses("cis:eps=4,alloc=uniform,clip=2"), 5)});
  auto split = model_defenses(two, Shape{1, 2, 2}, AdaptiveOptions{}, 1);
  REQUIRE(split.size() == 2);
  CHECK(split[0].rows == std::vector<int64_t>{0});
  CHECK(split[0].observed.clip_l1 == 1.0);
  CHECK(split[1].observed.clip_l1 == 2.0);
}

TEST_CASE("adaptive model: rows without a defense keep the paper's objective; input rows run apart", "[adaptive]") {
  Tensor v = Tensor::full(Shape{4, 3}, 1.0, DType::f64);
  Observation obs;
  obs.kind = TargetKind::feature;
  obs.v = v;
  obs.groups.push_back(ObservedGroup{0, 2, {}});
  obs.groups.push_back(ObservedGroup{2, 4, make_defenses(parse_defenses("gaussian:0.3@input"), 1)});
  auto parts = model_defenses(obs, Shape{1, 2, 2}, AdaptiveOptions{}, 1);
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].rows == std::vector<int64_t>{0, 1});
  CHECK_FALSE(parts[0].observed.models_defense());
  CHECK(parts[1].rows == std::vector<int64_t>{2, 3});
  CHECK(parts[1].observed.input_add.size() == 4);
}

// ---- adaptive: an attack that needs the mask ------------------------------------------------------------------------

namespace {

// An over-complete linear head (1 -> 6 channels, 3x3, same size, on 8x8 images) and two noise images as victims:
// the feature map determines the image many times over, so an attacker that models a defense right recovers it.
struct OvercompleteHead {
  static constexpr int64_t S = 8;
  Model model;
  data::Dataset victims;
  OvercompleteHead() {
    Generator gen(3);
    auto net = std::make_shared<Sequential>();
    net->add("conv1", std::make_shared<Conv2d>(1, 6, 3, 1, 1));
    net->add("flatten", std::make_shared<Flatten>());
    net->add("fc", std::make_shared<Linear>(int(6 * S * S), 2));
    net->reset_parameters(gen);
    model = Model{"tiny", Shape{1, S, S}, 2, net};
    model.net->eval();
    victims.norm = data::mnist_normalization();
    Tensor px = Tensor::empty(Shape{2, 1, S, S});
    kern::fill_uniform(px, 9, 0, 0.1, 0.9);
    victims.images = data::normalize(px, victims.norm);
    victims.labels = {0, 1};
    victims.name = "noise";
  }
  // Mean PSNR of the white-box attack at conv1 (400 iterations, no TV) under `defense`, by the paper's attacker or
  // the adaptive one.
  double attack(const std::string& defense, bool adaptive) const {
    SplitPipeline p(model, "conv1", make_defenses(parse_defenses(defense), 4));
    AttackConfig cfg;
    cfg.split = "conv1";
    cfg.rmle.iters = 400;
    cfg.rmle.lr = 0.05;
    cfg.rmle.tv = 0;
    cfg.adaptive = adaptive;
    return run_attack(p, TargetKind::feature, victims, {0, 1}, victims, cfg).mean_psnr();
  }
};

}  // namespace

TEST_CASE("adaptive white-box: against intermediate dropout it recovers the image only by using the mask",
          "[adaptive]") {
  // Half of the head's outputs still determine the image, but only if the dropped entries are left out of the loss.
  // The paper's attacker fits the zeros as if they were real and gets a faded, wrong image.
  const OvercompleteHead h;
  double paper = h.attack("dropout:0.5", false), adaptive = h.attack("dropout:0.5", true);
  INFO("paper's attacker " << paper << " dB, adaptive " << adaptive << " dB");
  CHECK(adaptive > 35.0);
  CHECK(paper < 25.0);
}

TEST_CASE("adaptive white-box: against CIS's clip it recovers the image only by modelling the clip",
          "[adaptive][cis]") {
  // CIS with a tiny noise (eps 1e9) and a bound far below every channel map's L1 norm, so each map is scaled down by
  // its own factor. The paper's attacker fits the scaled maps as if they were f1's output and gets a faded, wrong
  // image; the adaptive one clips its own f1(x) the same way.
  const OvercompleteHead h;
  const int64_t Q = OvercompleteHead::S * OvercompleteHead::S;
  {
    NoGradGuard ng;
    auto a = SplitPipeline(h.model, "conv1").edge_head().forward(h.victims.images).to_vector();
    double smallest = 1e30;
    for (int64_t map = 0; map < 12; ++map) {
      double l1 = 0;
      for (int64_t i = 0; i < Q; ++i) l1 += std::abs(a[size_t(map * Q + i)]);
      smallest = std::min(smallest, l1);
    }
    INFO("smallest map L1 norm " << smallest);
    REQUIRE(smallest > 4.0);  // every map is clipped by a factor below 1/2
  }
  const std::string cis = "cis:eps=1e9,alloc=uniform,clip=2";
  double paper = h.attack(cis, false), adaptive = h.attack(cis, true);
  INFO("paper's attacker " << paper << " dB, adaptive " << adaptive << " dB");
  CHECK(adaptive > 30.0);
  CHECK(paper < 20.0);
}

TEST_CASE("adaptive objective: composed of differentiable ops, its gradient passes the float64 check", "[adaptive]") {
  // A tiny head in float64; the objective with every defense-model term at once (masked squared error, ℓ1, two
  // input draws of each kind), checked against central differences in x.
  Generator gen(11);
  auto head = std::make_shared<Sequential>();
  head->add("conv1", std::make_shared<Conv2d>(1, 2, 3));
  head->add("ReLU1", std::make_shared<ReLU>());
  head->reset_parameters(gen);
  head->to(DType::f64);
  Tensor x0 = test::randn(Shape{2, 1, 5, 5}, gen, 0.5);
  Observed ob;
  ob.kind = TargetKind::feature;
  {
    NoGradGuard ng;
    ob.v = (*head)(test::randn(Shape{2, 1, 5, 5}, gen, 0.5));
  }
  ob.weight = test::rand_uniform(ob.v.shape(), gen, 0.0, 2.0);
  ob.l1_weight = test::rand_uniform(ob.v.shape(), gen, 0.0, 1.0);
  for (int k = 0; k < 2; ++k) {
    ob.input_mul.push_back(test::rand_uniform(x0.shape(), gen, 0.0, 1.5));
    ob.input_add.push_back(test::randn(x0.shape(), gen, 0.2));
  }
  RmleOptions o;
  o.tv = 0.1;
  o.tv_beta = 2;
  FrozenParams frozen(*head);
  auto r = gradcheck([&](const std::vector<Tensor>& in) { return rmle_objective(*head, in[0], ob, o); }, {x0});
  INFO(r.detail);
  CHECK(r.ok);
  // With CIS's clip in the forward model, at a bound that clips some of the maps of x0.
  ob.clip_l1 = 0.6;
  {
    NoGradGuard ng;
    Tensor y = (*head)(x0), c = channel_l1_clip(y, ob.clip_l1);
    auto a = y.to_vector(), b = c.to_vector();
    int changed = 0;
    for (size_t i = 0; i < a.size(); ++i) changed += a[i] != b[i];
    INFO(changed << " of " << a.size() << " entries clipped");
    CHECK(changed > 0);
    CHECK(changed < int(a.size()));
  }
  auto rc = gradcheck([&](const std::vector<Tensor>& in) { return rmle_objective(*head, in[0], ob, o); }, {x0});
  INFO(rc.detail);
  CHECK(rc.ok);
  // Without a model the objective is the paper's.
  Observed plain(TargetKind::feature, ob.v);
  CHECK_FALSE(plain.models_defense());
}

TEST_CASE("adaptive rMLE on CUDA (a replayed graph) gives what it gives on the CPU", "[adaptive][cuda]") {
  if (!test::gpu_ready("adaptive rMLE on CUDA")) return;
  Generator gen(12);
  auto head = std::make_shared<Sequential>();
  head->add("conv1", std::make_shared<Conv2d>(1, 4, 3, 1, 1));
  head->add("ReLU1", std::make_shared<ReLU>());
  head->reset_parameters(gen);
  Tensor x = test::randn(Shape{3, 1, 8, 8}, gen, 0.5).to(DType::f32);
  Observation obs;
  obs.kind = TargetKind::feature;
  {
    NoGradGuard ng;
    obs.v = (*head)(x);
  }
  obs.groups.push_back(ObservedGroup{0, 3, make_defenses(parse_defenses("gaussian:0.2@input,dropout:0.4"), 2)});
  obs.v = obs.groups[0].deployed[1]->apply(obs.v, 0);
  auto parts = model_defenses(obs, Shape{1, 8, 8}, AdaptiveOptions{}, 5);
  REQUIRE(parts.size() == 1);
  RmleOptions o;
  o.iters = 60;
  o.lr = 0.05;
  o.tv = 0.1;
  PixelRange range = PixelRange::of(data::mnist_normalization());
  Tensor cpu = rmle(*head, parts[0].observed, Shape{3, 1, 8, 8}, range, o);
  head->to(Device::cuda(0));
  Observed g = parts[0].observed;
  g.v = g.v.to(Device::cuda(0));
  g.weight = g.weight.to(Device::cuda(0));
  for (auto& t : g.input_add) t = t.to(Device::cuda(0));
  Tensor gpu = rmle(*head, g, Shape{3, 1, 8, 8}, range, o).to(Device::cpu());
  head->to(Device::cpu());
  CHECK(test::rel_max_diff(gpu, cpu) < 1e-3);
}
