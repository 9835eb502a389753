// split/: the defense spec grammar and its errors, each defense against a hand-computed case (the draw equals the
// Philox formula; mask rate within binomial bounds; noise moments), reproducibility per seed and per query whatever
// the batch, CPU vs CUDA, and the pipeline: with no defense exactly head∘tail.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "autograd/node.h"
#include "nn/layers.h"
#include "nn/models.h"
#include "split/pipeline.h"
#include "tensor/rng.h"
#include "tests/op_harness.h"

using namespace sl;

namespace {

Tensor filled(const Shape& s, double v, DType t = DType::f32) { return Tensor::full(s, v, t); }

std::shared_ptr<const Defense> one(const std::string& spec, uint64_t seed = 7) {
  return make_defenses(parse_defenses(spec), seed).at(0);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor x = a.to(Device::cpu()).contiguous(), y = b.to(Device::cpu()).contiguous();
  return std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

}  // namespace

// ---- the spec ---------------------------------------------------------------------------------------------------

TEST_CASE("defense specs: the grammar, places, options, and the canonical text", "[defense]") {
  auto d = parse_defenses("dropout:0.6");
  REQUIRE(d.size() == 1);
  CHECK(d[0].kind == "dropout");
  CHECK(*d[0].level == 0.6);
  CHECK(d[0].place == Place::intermediate);
  CHECK(d[0].str() == "dropout:0.6@intermediate");

  d = parse_defenses("gaussian:0.5@input,dropout:0.6,rescale,laplace:b=0.25@intermediate");
  REQUIRE(d.size() == 3);
  CHECK((d[0].kind == "gaussian" && *d[0].level == 0.5 && d[0].place == Place::input));
  CHECK((d[1].kind == "dropout" && d[1].flag("rescale") && d[1].place == Place::intermediate));
  CHECK((d[2].kind == "laplace" && *d[2].level == 0.25));
  // The canonical text reads back as the same specs.
  auto again = parse_defenses(defenses_str(d));
  REQUIRE(again.size() == 3);
  for (size_t i = 0; i < 3; ++i) CHECK(again[i].str() == d[i].str());

  CHECK(*parse_defenses("gaussian:sigma=0.3")[0].level == 0.3);
  CHECK(parse_defenses("dropout:0.2,place=input")[0].place == Place::input);
  CHECK(*parse_defenses("dropout:r=0")[0].level == 0);
  CHECK(*parse_defenses("dropout:1")[0].level == 1);  // everything dropped is a level, if a useless one
  // Without a level where levels come from elsewhere (`defend --levels`).
  auto bare = parse_defenses("dropout@input", false);
  CHECK((!bare[0].level && bare[0].place == Place::input));
  CHECK(*bare[0].at_level(0.4).level == 0.4);
}

TEST_CASE("defense specs: options with commas inside parse as one defense (the CIS form)", "[defense]") {
  // A kind with key=value options, as the CIS defense will register (level eps, options alloc and clip).
  DefenseKind k;
  k.name = "testcis";
  k.level_name = "eps";
  k.level_help = "the privacy budget ε > 0";
  k.options = {"alloc", "clip"};
  k.validate = [](const DefenseSpec& s) {
    SL_CHECK(!s.level || *s.level > 0, ValueError, "testcis: eps must be > 0");
    std::string a = s.option("alloc", "rank");
    SL_CHECK(a == "rank" || a == "uniform", ValueError, "testcis: alloc must be rank or uniform");
  };
  register_defense_kind(k);
  auto d = parse_defenses("testcis:eps=1,alloc=rank,clip=4,dropout:0.5@input");
  REQUIRE(d.size() == 2);
  CHECK(d[0].kind == "testcis");
  CHECK(*d[0].level == 1);
  CHECK(d[0].option("alloc") == "rank");
  CHECK(d[0].number("clip", 0) == 4);
  CHECK(d[0].place == Place::intermediate);
  CHECK((d[1].kind == "dropout" && d[1].place == Place::input));
  CHECK(parse_defenses(d[0].str())[0].str() == d[0].str());
  CHECK_THROWS_WITH(parse_defenses("testcis:eps=1,alloc=random"), Catch::Contains("alloc"));
  CHECK_THROWS_WITH(parse_defenses("testcis:eps=1,clip=x").at(0).number("clip", 0), Catch::Contains("clip=x"));
}

TEST_CASE("defense specs: bad specs are clear errors", "[defense]") {
  auto fails = [](const std::string& spec, const std::string& needle) {
    INFO(spec);
    CHECK_THROWS_AS(parse_defenses(spec), ValueError);
    CHECK_THROWS_WITH(parse_defenses(spec), Catch::Contains(needle));
  };
  fails("dropout:1.5", "[0, 1]");
  fails("dropout:-0.1", "[0, 1]");
  fails("dropout:1,rescale", "[0, 1)");
  fails("gaussian:-1", ">= 0");
  fails("laplace:-0.5", ">= 0");
  fails("gaussian:nan", "not a finite number");
  fails("gaussian:inf", "not a finite number");
  fails("gaussian:sigma=nan", "not a finite number");
  fails("gaussian:0.5x", "not a finite number");
  fails("blur:3", "unknown defense kind 'blur'");
  fails("blur", "unknown defense kind 'blur'");
  fails("dropout:0.5,gausian:0.1", "unknown defense kind 'gausian'");
  fails("dropout:0.5,sharpen", "unknown option 'sharpen'");
  fails("dropout", "needs a level");
  fails("dropout:0.5,r=0.4", "given twice");
  fails("dropout:0.5@outside", "unknown defense place 'outside'");
  fails("dropout:0.5@input,place=input", "place is given twice");
  fails("", "empty defense spec");
  fails("dropout:0.5,,gaussian:1", "empty item");
  fails("dropout:0.5,rescale=maybe", "true or false");
}

// ---- each defense against a hand-computed case ------------------------------------------------------------------

TEST_CASE("dropout: the mask is the Philox draw, the rate within binomial bounds, no rescaling unless asked",
          "[defense]") {
  const int64_t N = 4, P = 25000;  // 100 000 elements
  const double r = 0.3;
  auto d = one("dropout:0.3", 11);
  Tensor x = filled(Shape{N, P}, 2.0);
  const uint64_t first = 5;  // rows are queries 5..8
  auto y = d->apply(x, first).to_vector();
  int64_t zeros = 0, wrong = 0;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < P; ++j) {
      double u = rng_uniform(d->key(), uint64_t(first + i) * P + uint64_t(j));
      double want = u < r ? 0.0 : 2.0;  // kept entries are not rescaled
      wrong += y[size_t(i * P + j)] != want;
      zeros += y[size_t(i * P + j)] == 0;
    }
  CHECK(wrong == 0);
  // Binomial(n, r): within 5 standard deviations.
  const double n = double(N * P), sd = std::sqrt(n * r * (1 - r));
  CHECK(std::abs(double(zeros) - n * r) < 5 * sd);

  // rescale: kept entries become x / (1 - r).
  auto dr = one("dropout:0.3,rescale", 11);
  auto yr = dr->apply(x, first).to_vector();
  int64_t bad = 0;
  for (size_t k = 0; k < yr.size(); ++k) bad += yr[k] != 0 && std::abs(yr[k] - 2.0 / 0.7) > 1e-6;
  CHECK(bad == 0);
  // The same mask with and without rescaling (the key depends on the seed and the position, not the options).
  bad = 0;
  for (size_t k = 0; k < yr.size(); ++k) bad += (yr[k] == 0) != (y[k] == 0);
  CHECK(bad == 0);

  // Levels share the draw: the elements dropped at 0.3 are dropped at 0.6 too.
  auto y6 = one("dropout:0.6", 11)->apply(x, first).to_vector();
  bad = 0;
  for (size_t k = 0; k < y.size(); ++k) bad += y[k] == 0 && y6[k] != 0;
  CHECK(bad == 0);
  // r = 0 is the identity, r = 1 drops everything.
  CHECK(same_bits(one("dropout:0")->apply(x, 0), x));
  bad = 0;
  for (double e : one("dropout:1")->apply(x, 0).to_vector()) bad += e != 0;
  CHECK(bad == 0);
}

TEST_CASE("noise: the draw is the Philox normal / Laplace, with the right moments", "[defense]") {
  const int64_t N = 2, P = 50000;
  Tensor x = filled(Shape{N, P}, 0.5, DType::f64);
  SECTION("gaussian") {
    const double s = 0.7;
    auto d = one("gaussian:0.7", 3);
    auto y = d->apply(x, 100).to_vector();
    double m = 0, v = 0, worst = 0;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < P; ++j) {
        double e = y[size_t(i * P + j)] - 0.5;
        worst = std::max(worst, std::abs(e - s * rng_normal(d->key(), uint64_t(100 + i) * P + uint64_t(j))));
        m += e;
        v += e * e;
      }
    CHECK(worst < 1e-12);  // the Philox normal, element for element
    const double n = double(N * P);
    m /= n;
    v = v / n - m * m;
    CHECK(std::abs(m) < 5 * s / std::sqrt(n));                    // mean 0
    CHECK(std::abs(v - s * s) < 5 * s * s * std::sqrt(2.0 / n));  // variance σ² (sd of s² is σ² sqrt(2/n))
  }
  SECTION("laplace") {
    const double b = 0.4;
    auto d = one("laplace:0.4", 3);
    auto y = d->apply(x, 0).to_vector();
    double m = 0, a = 0, v = 0, worst = 0;
    for (size_t k = 0; k < y.size(); ++k) {
      double e = y[k] - 0.5;
      worst = std::max(worst, std::abs(e - b * rng_laplace(d->key(), uint64_t(k))));
      m += e;
      a += std::abs(e);
      v += e * e;
    }
    CHECK(worst < 1e-12);
    const double n = double(y.size());
    m /= n;
    a /= n;
    v /= n;
    CHECK(std::abs(m) < 5 * std::sqrt(2.0) * b / std::sqrt(n));  // mean 0, sd sqrt(2) b
    CHECK(std::abs(a - b) < 5 * b / std::sqrt(n));               // E|ε| = b, sd of |ε| is b
    CHECK(std::abs(v - 2 * b * b) < 0.05 * 2 * b * b);           // variance 2b²
  }
  CHECK(same_bits(one("gaussian:0")->apply(x, 0), x));
}

TEST_CASE("defense draws: same seed same draw, per query whatever the batch, distinct per seed and position",
          "[defense]") {
  Generator g(1);
  Tensor x = test::randn(Shape{6, 3, 4, 4}, g).to(DType::f32);
  for (const char* spec : {"dropout:0.5", "gaussian:0.3", "laplace:0.2"}) {
    INFO(spec);
    auto a = one(spec, 42), b = one(spec, 42), c = one(spec, 43);
    Tensor ya = a->apply(x, 10);
    CHECK(same_bits(ya, b->apply(x, 10)));        // same seed: same draw
    CHECK_FALSE(same_bits(ya, c->apply(x, 10)));  // another seed: another draw
    CHECK_FALSE(same_bits(ya, a->apply(x, 11)));  // other queries: other draws
    // Query 12 alone equals row 2 of the batch of queries 10..15.
    CHECK(same_bits(a->apply(x.slice(2, 3), 12), ya.slice(2, 3).contiguous()));
    // Any order of query numbers: row r gets query q[r]'s draw.
    Tensor picked = a->apply(x, std::vector<uint64_t>{12, 10, 11, 13, 14, 15});
    CHECK(same_bits(picked.slice(0, 1), a->apply(x.slice(0, 1), 12)));
    CHECK(same_bits(picked.slice(1, 2), a->apply(x.slice(1, 2), 10)));
    CHECK(same_bits(picked.slice(3, 6), ya.slice(3, 6).contiguous()));
  }
  // Two defenses of one chain get different keys.
  auto chain = make_defenses(parse_defenses("dropout:0.5,dropout:0.5"), 9);
  CHECK(chain[0]->key() != chain[1]->key());
  CHECK(chain[0]->key() == defense_key(9, 0));
  CHECK_THROWS_AS(Defense::counter(uint64_t(1) << 62, 1 << 10), ValueError);
}

TEST_CASE("defense draws: CUDA draws what the CPU draws", "[defense][cuda]") {
  if (!test::gpu_ready("defense draws on CUDA")) return;
  Generator g(2);
  Tensor x = test::randn(Shape{5, 16, 8, 8}, g).to(DType::f32);
  for (const char* spec : {"dropout:0.4", "dropout:0.4,rescale", "gaussian:0.5", "laplace:0.3"}) {
    INFO(spec);
    auto d = one(spec, 77);
    Tensor cpu = d->apply(x, 3), gpu = d->apply(x.to(Device::cuda(0)), 3).to(Device::cpu());
    if (std::string(spec).rfind("dropout", 0) == 0)
      CHECK(same_bits(cpu, gpu));  // uniform draws are bit-identical
    else
      CHECK(test::rel_max_diff(gpu, cpu) < 1e-5);  // log / cos of the device, to the last bits
  }
}

// ---- the pipeline -----------------------------------------------------------------------------------------------

TEST_CASE("pipeline: without a defense it is head then tail, bit for bit", "[defense][pipeline]") {
  Generator gen(4);
  Model m = make_model("lenet", gen);
  m.net->eval();
  Tensor x = test::randn(Shape{7, 1, 28, 28}, gen).to(DType::f32);
  NoGradGuard ng;
  for (const char* split : {"conv1", "ReLU1", "pool1", "ReLU2", "pool2", "fc1", "fc3"}) {
    INFO(split);
    SplitModel sm = m.net->split(split);
    SplitPipeline p(m, split);
    Tensor v = p.edge(x, 0);
    CHECK(same_bits(v, sm.head->forward(x)));
    CHECK(same_bits(p.cloud(v), sm.tail->forward(sm.head->forward(x))));
    CHECK(same_bits(p.run(x, 123), sm.tail->forward(sm.head->forward(x))));
    CHECK(p.feature_shape() == Shape(std::vector<int64_t>(v.shape().dims().begin() + 1, v.shape().dims().end())));
  }
  CHECK_THROWS_WITH(SplitPipeline(m, "conv9"), Catch::Contains("conv9") && Catch::Contains("ReLU2"));
}

TEST_CASE("pipeline: input defenses run before the head, intermediate ones after it", "[defense][pipeline]") {
  Generator gen(5);
  Model m = make_model("lenet", gen);
  m.net->eval();
  Tensor x = test::randn(Shape{3, 1, 28, 28}, gen).to(DType::f32);
  NoGradGuard ng;
  auto chain = make_defenses(parse_defenses("gaussian:0.3@input,dropout:0.5"), 8);
  SplitPipeline p(m, "ReLU2", chain);
  SplitModel sm = m.net->split("ReLU2");
  Tensor by_hand = chain[1]->apply(sm.head->forward(chain[0]->apply(x, 20)), 20);
  CHECK(same_bits(p.edge(x, 20), by_hand));
  CHECK(same_bits(p.cloud(p.edge(x, 20)), sm.tail->forward(by_hand)));
  CHECK(p.defended());
  CHECK_FALSE(p.with_defenses({}).defended());
  CHECK(chain_str(chain) == "gaussian:0.3@input,dropout:0.5@intermediate");
}
