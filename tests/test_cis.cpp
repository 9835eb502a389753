// split/cis.h: the CIS defense — the budgets sum to ε (rank and uniform), the noise of each channel has the Laplace
// moments of scale 2C/ε_c, the clipping bounds every channel map's L1 norm, the numerical rank is right on matrices of
// known rank, the same seed gives the same noise (on CPU and CUDA), and bad specs fail before any work.
#include <catch2/catch.hpp>
#include <cmath>

#include "nn/layers.h"
#include "nn/models.h"
#include "split/cis.h"
#include "tensor/rng.h"
#include "tests/op_harness.h"

using namespace sl;

namespace {

DefenseCalibration cal_of(std::vector<double> ranks) {
  DefenseCalibration c;
  c.channel_rank = std::move(ranks);
  c.images = 1;
  return c;
}

}  // namespace

TEST_CASE("cis: numerical rank of matrices of known rank", "[cis]") {
  CHECK(numerical_rank(std::vector<double>(12, 0.0), 3, 4) == 0);
  CHECK(numerical_rank({1, 2, 3, 2, 4, 6, 3, 6, 9}, 3, 3) == 1);  // outer product
  CHECK(numerical_rank({1, 0, 0, 0, 1, 0, 0, 0, 1}, 3, 3) == 3);  // identity
  CHECK(numerical_rank({1, 2, 3, 4, 5, 6, 7, 8, 9}, 3, 3) == 2);  // rows in arithmetic progression
  CHECK(numerical_rank({1, 2, 3, 4, 5, 6}, 2, 3) == 2);           // wide
  CHECK(numerical_rank({1, 1e-12, 1e-12, 1e-12}, 2, 2) == 1);     // below the float32 tolerance
  Generator g(3);
  Tensor r = test::randn(Shape{6, 6}, g);
  CHECK(numerical_rank(r.to_vector(), 6, 6) == 6);  // a random square matrix is full rank
  // Mean rank per channel over a batch: channel 0 is rank 1 in both samples, channel 1 is zero in one, identity
  // (rank 2) in the other.
  Tensor f =
      Tensor::from_vector(std::vector<double>{1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2, 2, 1, 0, 0, 1}, Shape{2, 2, 2, 2});
  auto ranks = channel_ranks(f);
  REQUIRE(ranks.size() == 2);
  CHECK(ranks[0] == Approx(1.0));
  CHECK(ranks[1] == Approx(1.0));
}

TEST_CASE("cis: the per-channel budgets sum to eps", "[cis]") {
  for (double eps : {0.1, 1.0, 7.5}) {
    auto u = cis_budgets(eps, {1, 1, 1, 1}, false);
    auto r = cis_budgets(eps, {1, 2, 3, 0.2}, true);  // the 0.2 counts as 1
    double su = 0, sr = 0;
    for (double e : u) su += e;
    for (double e : r) sr += e;
    CHECK(su == Approx(eps));
    CHECK(sr == Approx(eps));
    CHECK(u[0] == Approx(eps / 4));
    CHECK(r[2] == Approx(eps * 3 / 7));
    CHECK(r[3] == Approx(eps / 7));
    CHECK(r[2] > r[1]);  // higher rank, more budget
  }
  CHECK_THROWS_AS(cis_budgets(0, {1}, true), ValueError);
  CHECK_THROWS_AS(cis_budgets(1, {}, false), ValueError);
  CHECK_THROWS_AS(cis_budgets(1, {std::nan("")}, true), ValueError);
}

TEST_CASE("cis: noise of channel c is Laplace with scale 2C/eps_c; clipping bounds each map's L1 norm", "[cis]") {
  const double eps = 2.0, clip = 0.5;
  DefenseCalibration cal = cal_of({1, 3});
  auto d = make_defenses(parse_defenses("cis:eps=2,alloc=rank,clip=0.5"), 11, &cal).at(0);
  // On zeros the clipping does nothing and the output is the noise alone.
  const int64_t n = 400, h = 10, w = 10;
  Tensor y = d->apply(Tensor::zeros(Shape{n, 2, h, w}), 0);
  std::vector<double> v = y.to_vector();
  auto budgets = cis_budgets(eps, cal.channel_rank, true);
  for (int64_t c = 0; c < 2; ++c) {
    const double b = 2 * clip / budgets[size_t(c)];
    double s1 = 0, s2 = 0, sabs = 0;
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < h * w; ++k) {
        double e = v[size_t((i * 2 + c) * h * w + k)];
        s1 += e;
        s2 += e * e;
        sabs += std::abs(e);
        ++m;
      }
    const double mean = s1 / double(m), var = s2 / double(m) - mean * mean, mad = sabs / double(m);
    INFO("channel " << c << " b " << b << " mean " << mean << " var " << var << " E|e| " << mad);
    // Laplace(b): mean 0, E|e| = b, Var = 2 b²; 40000 draws per channel: a few standard errors.
    CHECK(std::abs(mean) < 5 * std::sqrt(2.0) * b / std::sqrt(double(m)));
    CHECK(mad == Approx(b).epsilon(0.03));
    CHECK(var == Approx(2 * b * b).epsilon(0.06));
  }
  // Uniform: both channels get eps/2, so the same scale 2C/(eps/2).
  auto du = make_defenses(parse_defenses("cis:eps=2,alloc=uniform,clip=0.5"), 11).at(0);
  std::vector<double> vu = du->apply(Tensor::zeros(Shape{n, 2, h, w}), 0).to_vector();
  double a0 = 0, a1 = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < h * w; ++k) {
      a0 += std::abs(vu[size_t((i * 2 + 0) * h * w + k)]);
      a1 += std::abs(vu[size_t((i * 2 + 1) * h * w + k)]);
    }
  CHECK(a0 / double(n * h * w) == Approx(2 * clip / (eps / 2)).epsilon(0.03));
  CHECK(a1 / double(n * h * w) == Approx(2 * clip / (eps / 2)).epsilon(0.03));

  // Clipping: the defended map minus the same seed's noise on zeros is the clipped map, L1 <= C; a map already
  // within the bound passes unchanged.
  Tensor x = Tensor::zeros(Shape{1, 2, 2, 2});
  std::vector<double> xs{1, 2, 3, 4, 0.1, 0.1, 0.1, 0.1};  // channel 0 L1 = 10 (clipped by 0.05), channel 1 = 0.4
  x = Tensor::from_vector(xs, Shape{1, 2, 2, 2});
  std::vector<double> noisy = d->apply(x, 5).to_vector(), noise = d->apply(Tensor::zeros(x.shape()), 5).to_vector();
  for (size_t k = 0; k < 4; ++k) CHECK(noisy[k] - noise[k] == Approx(xs[k] * 0.05).margin(1e-5));
  for (size_t k = 4; k < 8; ++k) CHECK(noisy[k] - noise[k] == Approx(xs[k]).margin(1e-5));
}

TEST_CASE("cis: same seed same noise, per query whatever the batch; another seed another draw", "[cis]") {
  DefenseCalibration cal = cal_of({1, 2, 3});
  auto specs = parse_defenses("cis:eps=1,clip=2");
  Generator g(5);
  Tensor x = test::randn(Shape{4, 3, 5, 5}, g);
  Tensor a = make_defenses(specs, 9, &cal).at(0)->apply(x, 10);
  Tensor b = make_defenses(specs, 9, &cal).at(0)->apply(x, 10);
  CHECK(test::rel_max_diff(a, b) == 0);
  Tensor one_row = make_defenses(specs, 9, &cal).at(0)->apply(x.slice(2, 3), 12);
  CHECK(test::rel_max_diff(one_row, a.slice(2, 3)) == 0);
  Tensor c = make_defenses(specs, 10, &cal).at(0)->apply(x, 10);
  CHECK(test::rel_max_diff(a, c) > 1e-3);
  // [N, F] features: F channels of 1×1 maps.
  DefenseCalibration cal4 = cal_of({1, 1, 1, 1});
  Tensor fv = make_defenses(specs, 9, &cal4).at(0)->apply(Tensor::ones(Shape{2, 4}), 0);
  CHECK(fv.shape() == Shape{2, 4});
}

TEST_CASE("cis: CUDA draws what the CPU draws", "[cis][cuda]") {
  if (!test::gpu_ready("cis on CUDA")) return;
  DefenseCalibration cal = cal_of({1, 2, 3, 4});
  auto d = make_defenses(parse_defenses("cis:eps=3,clip=1.5"), 21, &cal).at(0);
  Generator g(2);
  Tensor x = test::randn(Shape{5, 4, 8, 8}, g).to(DType::f32);
  Tensor cpu = d->apply(x, 3), gpu = d->apply(x.to(Device::cuda(0)), 3).to(Device::cpu());
  CHECK(test::rel_max_diff(gpu, cpu) < 1e-5);
}

TEST_CASE("cis: bad specs and a missing or mismatched calibration are clear errors", "[cis]") {
  auto fails = [](const std::string& spec, const std::string& needle) {
    INFO(spec);
    CHECK_THROWS_AS(parse_defenses(spec), ValueError);
    CHECK_THROWS_WITH(parse_defenses(spec), Catch::Contains(needle));
  };
  fails("cis:eps=0", "> 0");
  fails("cis:eps=-1", "> 0");
  fails("cis:eps=nan", "not a finite number");
  fails("cis:eps=1,alloc=random", "rank or uniform");
  fails("cis:eps=1,clip=0", "clip");
  fails("cis:eps=1,clip=-2", "clip");
  fails("cis:eps=1,clip=x", "clip=x");
  fails("cis:eps=1@input", "intermediate");
  fails("cis:eps=1,sigma=2", "unknown option 'sigma'");
  fails("cis", "needs a level");
  CHECK(needs_calibration(parse_defenses("cis:1")));
  CHECK(!needs_calibration(parse_defenses("cis:1,alloc=uniform")));
  CHECK(!needs_calibration(parse_defenses("dropout:0.5")));
  CHECK_THROWS_WITH(make_defenses(parse_defenses("cis:1"), 1), Catch::Contains("calibration"));
  DefenseCalibration cal = cal_of({1, 2});
  auto d = make_defenses(parse_defenses("cis:1"), 1, &cal).at(0);
  CHECK_THROWS_AS(d->apply(Tensor::zeros(Shape{1, 3, 2, 2}), 0), ShapeError);  // calibrated for 2 channels
  CHECK_THROWS_AS(d->apply(Tensor::zeros(Shape{1, 2, 2, 2, 2}), 0), ShapeError);
}

TEST_CASE("cis: calibration on a split measures each channel's mean rank", "[cis]") {
  Generator g(1);
  Model m = make_model("lenet", g);
  m.net->eval();
  SplitPipeline p(m, "ReLU2");
  Tensor images = test::randn(Shape{6, 1, 28, 28}, g).to(DType::f32);
  DefenseCalibration cal = calibrate_channels(p, images);
  REQUIRE(cal.channel_rank.size() == 16);
  CHECK(cal.images == 6);
  for (double r : cal.channel_rank) CHECK((r >= 0 && r <= 8));
  // The same as channel_ranks of the head's output.
  auto direct = channel_ranks(p.edge_head().forward(images));
  for (size_t c = 0; c < 16; ++c) CHECK(cal.channel_rank[c] == Approx(direct[c]));
}
