// experiment/: the defense sweep on a tiny model (accuracy per level equals the pipeline's, every level of every
// line attacked in one batch gives what each level attacked alone gives, the results files and plots), the paper's
// figure presets, and the gnuplot helper.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "experiment/defend.h"
#include "experiment/defend_report.h"
#include "experiment/plot.h"
#include "nn/layers.h"

using namespace sl;
namespace fs = std::filesystem;

namespace {

// [N, 1, 8, 8] MNIST-normalised images: class 0 bright left half, class 1 bright right half, a little noise.
data::Dataset halves(int64_t n, uint64_t seed) {
  const int64_t S = 8;
  Generator gen(seed);
  std::vector<float> px(size_t(n * S * S));
  data::Dataset d;
  for (int64_t i = 0; i < n; ++i) {
    int32_t label = int32_t(i % 2);
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x)
        px[size_t((i * S + y) * S + x)] = float(((x < S / 2) == (label == 0) ? 0.8 : 0.1) + 0.1 * gen.uniform());
    d.labels.push_back(label);
  }
  d.norm = data::mnist_normalization();
  d.images = data::normalize(Tensor::from_vector(px, Shape{n, 1, S, S}), d.norm);
  d.classes = 2;
  d.name = "halves";
  d.split = "test";
  return d;
}

Model tiny(uint64_t seed) {
  Generator gen(seed);
  auto net = std::make_shared<Sequential>();
  net->add("conv1", std::make_shared<Conv2d>(1, 4, 3, 1, 1));
  net->add("ReLU1", std::make_shared<ReLU>());
  net->add("pool1", std::make_shared<MaxPool2d>(2));
  net->add("flatten", std::make_shared<Flatten>());
  net->add("fc", std::make_shared<Linear>(4 * 4 * 4, 2));
  net->reset_parameters(gen);
  return Model{"tiny", Shape{1, 8, 8}, 2, net};
}

experiment::DefendSettings settings_for(const std::vector<experiment::DefenseLine>& lines, experiment::Attackers who) {
  experiment::DefendSettings s;
  s.lines = lines;
  s.attackers = who;
  s.eval_batch = 16;
  s.defense_seed = 3;
  s.attack_config = [](const std::string& split) {
    inv::AttackConfig c;
    c.split = split;
    c.rmle.iters = 30;
    c.rmle.lr = 0.05;
    c.rmle.tv = 0.1;
    return c;
  };
  return s;
}

experiment::DefenseLine line(const std::string& split, const std::string& kind, Place place,
                             std::vector<double> levels) {
  experiment::DefenseLine l;
  l.split = split;
  l.defense.kind = kind;
  l.defense.place = place;
  l.levels = std::move(levels);
  return l;
}

}  // namespace

TEST_CASE("defend: accuracy per level is the defended pipeline's, one draw per test image", "[experiment]") {
  data::Dataset test = halves(40, 1);
  Model m = tiny(2);
  std::vector<experiment::DefenseLine> lines{line("ReLU1", "dropout", Place::intermediate, {0, 0.5}),
                                             line("ReLU1", "gaussian", Place::input, {0.7})};
  experiment::DefendOutcome o =
      experiment::run_defend(m, test, {0, 1}, test, settings_for(lines, experiment::Attackers::paper));
  REQUIRE(o.levels.size() == 3);
  // By hand: the pipeline with the same defense and seed, query i = test image i.
  for (const experiment::LevelOutcome& lo : o.levels) {
    const experiment::DefenseLine& l = lines[lo.line];
    DefenseChain chain = lo.level == 0 ? DefenseChain{} : make_defenses({l.defense.at_level(lo.level)}, 3);
    SplitPipeline p(m, l.split, chain);
    NoGradGuard ng;
    Tensor pred = argmax_rows(p.run(test.images, 0));
    int64_t correct = 0;
    for (int64_t i = 0; i < test.size(); ++i) correct += pred.data<int32_t>()[i] == test.labels[size_t(i)];
    CHECK(lo.accuracy == Approx(double(correct) / double(test.size())));
    REQUIRE(lo.by_attacker.count("paper"));
    CHECK(lo.by_attacker.at("paper").psnr.size() == 2);
  }
  CHECK(o.pixel_variance > 0);
}

TEST_CASE("defend: every level in one batch gives what each level attacked alone gives", "[experiment]") {
  data::Dataset test = halves(16, 4);
  Model m = tiny(5);
  auto l = line("ReLU1", "dropout", Place::intermediate, {0, 0.3, 0.6});
  experiment::DefendOutcome all =
      experiment::run_defend(m, test, {0, 1, 2}, test, settings_for({l}, experiment::Attackers::paper));
  for (size_t k = 0; k < l.levels.size(); ++k) {
    auto alone_line = l;
    alone_line.levels = {l.levels[k]};
    experiment::DefendOutcome alone =
        experiment::run_defend(m, test, {0, 1, 2}, test, settings_for({alone_line}, experiment::Attackers::paper));
    auto a = all.levels[k].by_attacker.at("paper").reconstructions.to_vector();
    auto b = alone.levels[0].by_attacker.at("paper").reconstructions.to_vector();
    REQUIRE(a.size() == b.size());
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
    CHECK(worst < 1e-4);
  }
}

TEST_CASE("defend: results files, grids and plots; the adaptive attacker beside the paper's", "[experiment]") {
  data::Dataset test = halves(16, 6);
  Model m = tiny(7);
  std::vector<experiment::DefenseLine> lines{line("ReLU1", "dropout", Place::intermediate, {0, 0.5}),
                                             line("ReLU1", "laplace", Place::input, {0.3})};
  experiment::DefendOutcome o =
      experiment::run_defend(m, test, {0, 1}, test, settings_for(lines, experiment::Attackers::both));
  CHECK(o.attackers() == std::vector<std::string>{"paper", "adaptive"});
  const fs::path dir = fs::temp_directory_path() / "splitleak-test-defend";
  fs::remove_all(dir);
  std::vector<std::string> written;
  experiment::RunInfo info{"splitleak defend ...", "2026-01-01T00:00:00Z", "cpu", "tiny", "halves"};
  nlohmann::json j = experiment::write_defend_results(dir.string(), o, lines, {{"attack", "whitebox"}}, info, &written);
  CHECK(j["device"] == "cpu");
  CHECK(j["command"] == "splitleak defend ...");
  CHECK(j["lines"].size() == 2);
  CHECK(j["lines"][0]["levels"][1]["adaptive"]["ssim"].is_number());
  for (const char* f : {"results.json", "results.csv", "grid-dropout-intermediate-paper.png",
                        "grid-laplace-input-adaptive.png", "curves-paper.gp", "curves-paper.dat"})
    CHECK(fs::is_regular_file(dir / f));
  std::ifstream csv(dir / "results.csv");
  std::string first;
  std::getline(csv, first);
  CHECK(first.find("cpu") != std::string::npos);  // the CSV says where and when it was made
  if (!experiment::gnuplot_png_terminal().empty()) {
    CHECK(fs::is_regular_file(dir / "curves-compare.png"));
    CHECK(fs::file_size(dir / "curves-paper.png") > 1000);
  } else {
    WARN("gnuplot not installed: the PNG plots were not drawn (apt-get install gnuplot-nox)");
  }
  fs::remove_all(dir);
}

TEST_CASE("defend: bad sweeps fail before any work; the figure presets", "[experiment]") {
  data::Dataset test = halves(8, 8);
  Model m = tiny(9);
  auto run = [&](const std::vector<experiment::DefenseLine>& lines) {
    return experiment::run_defend(m, test, {0}, test, settings_for(lines, experiment::Attackers::paper));
  };
  CHECK_THROWS_WITH(run({line("conv9", "dropout", Place::intermediate, {0.1})}), Catch::Contains("conv9"));
  CHECK_THROWS_WITH(run({line("ReLU1", "dropout", Place::intermediate, {0.1, 1.5})}), Catch::Contains("[0, 1]"));
  CHECK_THROWS_WITH(run({line("ReLU1", "gaussian", Place::input, {-1})}), Catch::Contains(">= 0"));
  CHECK_THROWS_WITH(run({line("ReLU1", "blur", Place::input, {1})}), Catch::Contains("unknown defense kind"));
  CHECK_THROWS_WITH(run({line("ReLU1", "dropout", Place::input, {})}), Catch::Contains("no levels"));

  auto f9 = experiment::figure_lines(9, "lenet", false);
  REQUIRE(f9.size() == 6);
  for (auto& l : f9) {
    CHECK(l.split == "ReLU2");
    CHECK(l.levels.size() >= 8);
  }
  auto f11 = experiment::figure_lines(11, "lenet", true);
  REQUIRE(f11.size() == 5);
  CHECK(f11[0].split == "ReLU1");
  CHECK(f11[4].split == "pool2");
  CHECK(f11[0].levels.size() == 8);
  CHECK(experiment::figure_lines(12, "cifar10cnn", false)[0].split == "ReLU12");
  CHECK_THROWS_WITH(experiment::figure_lines(10, "lenet", false), Catch::Contains("CIFAR"));
  CHECK_THROWS_WITH(experiment::figure_lines(8, "lenet", false), Catch::Contains("9, 10, 11, 12, 13"));
  CHECK(experiment::line_label(f11, 2) == "conv2");
  CHECK(experiment::line_label(f9, 1) == "gaussian@intermediate");
  CHECK(experiment::level_label("dropout", 0.3) == "r=0.3");
}

TEST_CASE("plot: gnuplot draws the PNG next to its script and data", "[experiment]") {
  const fs::path dir = fs::temp_directory_path() / "splitleak-test-plot";
  fs::remove_all(dir);
  fs::create_directories(dir);
  experiment::PlotPanel p;
  p.title = "it's a 'quoted' title";
  p.xlabel = "x";
  p.ylabel = "y";
  p.series.push_back({"line @input", {{0, 1}, {1, 2}, {2, 1.5}}, 0, false});
  p.series.push_back({"empty", {}, 1, true});
  bool drawn = experiment::plot_png((dir / "p.png").string(), {p, p}, 1);
  CHECK(fs::is_regular_file(dir / "p.gp"));
  CHECK(fs::is_regular_file(dir / "p.dat"));
  if (experiment::gnuplot_png_terminal().empty()) {
    CHECK_FALSE(drawn);
    WARN("gnuplot not installed: plot test checked the script only");
  } else {
    CHECK(drawn);
    std::ifstream f(dir / "p.png", std::ios::binary);
    char sig[8] = {};
    f.read(sig, 8);
    CHECK(std::string(sig + 1, 3) == "PNG");
    CHECK_FALSE(fs::exists(dir / "p.png.partial"));
  }
  fs::remove_all(dir);
}

TEST_CASE("defend read-outs: the largest level keeping accuracy, the smallest hiding the image", "[experiment]") {
  std::vector<experiment::DefenseLine> lines{line("s", "dropout", Place::intermediate, {0, 0.3, 0.6, 0.9})};
  experiment::DefendOutcome o;
  const double acc[] = {0.99, 0.97, 0.955, 0.80}, ssim[] = {0.6, 0.4, 0.2, 0.1};
  for (int k = 0; k < 4; ++k) {
    experiment::LevelOutcome lo;
    lo.line = 0;
    lo.level = lines[0].levels[size_t(k)];
    lo.accuracy = acc[k];
    lo.by_attacker["paper"].ssim = {ssim[k]};
    lo.by_attacker["paper"].psnr = {10.0 - k};
    o.levels.push_back(lo);
  }
  auto rule = experiment::accuracy_rule(o);  // base 99 %: the absolute 95 % rule
  CHECK(rule.str() == "acc>=95%");
  auto f = experiment::findings(o, lines, rule).at(0);
  CHECK(f.base_accuracy == 0.99);
  CHECK(f.max_level_at_accuracy == 0.6);
  CHECK(f.ssim_there == 0.2);
  CHECK(f.min_level_ssim_below == 0.6);
  CHECK(f.accuracy_at_ssim_below == 0.955);
  // A model under 96 %: at most 0.8 points of accuracy lost.
  for (auto& lo : o.levels) lo.accuracy -= 0.1;
  rule = experiment::accuracy_rule(o);
  CHECK(rule.str() == "drop<=0.8pt");
  f = experiment::findings(o, lines, rule).at(0);
  CHECK(f.max_level_at_accuracy == 0);
}
