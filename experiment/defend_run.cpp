// splitleak defend: the usability-privacy sweep of the paper's §IV (SPEC §5). For each defense, place and level:
// the defended accuracy over the test set and an attack on the defended observations of the class exemplars, by
// the paper's attacker and/or one that knows the defense. `--figure N` runs a whole figure of the paper.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/ui.h"
#include "datasets/fetch.h"
#include "experiment/defend.h"
#include "experiment/defend_report.h"

namespace sl::cli {

namespace {

constexpr double kUnset = std::numeric_limits<double>::quiet_NaN();

struct DefendOptions {
  std::string model, split, defense, where, levels, attack = "whitebox", preset = "reference", out, data, dataset;
  std::string device = "cpu", attacker_data = "train";
  int figure = 0, iters = -1, epochs = -1, eot = 4, threads = 0;
  int64_t images = -1, limit = -1, batch = 1000, attacker_limit = -1;
  double lr = kUnset, tv = kUnset;
  bool adaptive = false, compare = false, quick = false, json = false;
  uint64_t seed = 1, defense_seed = 1;
};

// "0,0.1,0.5" -> numbers; ValueError naming the piece that is not a finite number.
std::vector<double> parse_levels(const std::string& text) {
  std::vector<double> out;
  std::stringstream ss(text);
  std::string piece;
  while (std::getline(ss, piece, ',')) {
    char* end = nullptr;
    double v = std::strtod(piece.c_str(), &end);
    SL_CHECK(!piece.empty() && end == piece.c_str() + piece.size() && std::isfinite(v), ValueError, "--levels: '",
             piece, "' is not a finite number");
    out.push_back(v);
  }
  SL_CHECK(!out.empty(), ValueError, "--levels: no level given");
  return out;
}

// The lines of a custom sweep: every kind of --defense at every place of --where (or the spec's own place).
std::vector<exp::DefenseLine> custom_lines(const DefendOptions& o) {
  SL_CHECK(!o.split.empty(), ValueError, "defend: pass --split LAYER (or --figure N)");
  SL_CHECK(!o.defense.empty(), ValueError, "defend: pass --defense KIND (gaussian, laplace, dropout; or --figure N)");
  std::vector<DefenseSpec> specs = parse_defenses(o.defense, false);
  std::vector<Place> places;
  if (!o.where.empty()) {
    std::stringstream ss(o.where);
    std::string w;
    while (std::getline(ss, w, ',')) places.push_back(parse_place(w));
  }
  std::vector<exp::DefenseLine> lines;
  for (const DefenseSpec& s : specs) {
    SL_CHECK(!s.level, ValueError, "defend: give the levels with --levels, not in --defense (", s.str(), ")");
    std::vector<Place> at = places.empty() ? std::vector<Place>{s.place} : places;
    for (Place p : at) {
      exp::DefenseLine l;
      l.split = o.split;
      l.defense = s;
      l.defense.place = p;
      l.levels = o.levels.empty() ? exp::default_levels(s.kind, o.quick) : parse_levels(o.levels);
      lines.push_back(l);
    }
  }
  return lines;
}

// A ui::Progress line per phase, created on the phase's first report and finished at its last.
struct ProgressLines {
  std::map<std::string, std::unique_ptr<ui::Progress>> lines;
  inv::PhaseProgress sink() {
    return [this](const std::string& phase, int64_t done, int64_t total, const std::string& note) {
      auto& p = lines[phase];
      bool iters = phase.find("rMLE") != std::string::npos;
      bool images = phase == "accuracy";
      if (!p) p = std::make_unique<ui::Progress>(phase, total, iters ? "it" : images ? "img" : "step");
      if (done == 0) return;
      p->update(done, note);
      if (done >= total) p->finish(note);
    };
  }
};

void run_defend_cmd(const DefendOptions& o) {
  set_threads(o.threads);
  SL_CHECK(!(o.adaptive && o.compare), ValueError, "defend: --adaptive and --compare exclude each other");
  const Device device = Device::parse(o.device);
  LoadedModel lm = load_model(o.model, device);
  const Model& model = lm.model;
  // Everything that can be checked is checked before any data is read.
  std::vector<exp::DefenseLine> lines;
  if (o.figure) {
    SL_CHECK(o.split.empty() && o.defense.empty() && o.levels.empty() && o.where.empty(), ValueError,
             "defend: --figure sets the split, defenses, places and levels; drop --split/--defense/--where/--levels");
    lines = exp::figure_lines(o.figure, model.arch, o.quick);
  } else {
    lines = custom_lines(o);
  }
  inv::AttackKind kind = inv::attack_kind(o.attack);
  const ModelProfile profile = profile_of(model);
  const int quick_iters = 1000;
  auto attack_config = [&](const std::string& split) {
    inv::AttackConfig c = inv::default_config(kind, profile, split, o.preset);
    c.device = device;
    c.seed = o.seed;
    c.fit.seed = o.seed;
    if (o.quick) c.rmle.iters = std::min(c.rmle.iters, quick_iters);
    if (o.iters >= 0) c.rmle.iters = o.iters;
    if (!std::isnan(o.lr)) c.rmle.lr = o.lr;
    if (!std::isnan(o.tv)) c.rmle.tv = o.tv;
    if (o.epochs >= 0) c.fit.epochs = o.epochs;
    if (o.attacker_limit >= 0) c.fit.limit = o.attacker_limit;
    c.adaptive_options.eot_draws = o.eot;
    return c;
  };
  exp::DefendSettings s;
  s.lines = lines;
  s.attackers = o.compare ? exp::Attackers::both : o.adaptive ? exp::Attackers::adaptive : exp::Attackers::paper;
  s.attack_config = attack_config;
  s.defense_seed = o.defense_seed;
  s.eval_batch = o.batch;
  s.device = device;
  // Validate every line (split, kind, levels) against the model now.
  for (auto& l : lines) {
    SplitPipeline check(model, l.split);
    for (double level : l.levels)
      if (auto& k = defense_kind(l.defense.kind); k.validate) k.validate(l.defense.at_level(level));
  }
  std::filesystem::create_directories(o.out);

  const std::string ds = o.dataset.empty() ? lm.dataset : o.dataset;
  SL_CHECK(!ds.empty(), ValueError, o.model, ": the checkpoint does not say its data set; pass --dataset");
  const std::string dir = data::find_data_dir(o.data);
  data::Dataset test = data::load_dataset(ds, dir, false, o.limit);
  inv::check_model_fits_data(model, test);
  std::vector<int64_t> victims;
  if (o.images > 0)
    for (int64_t i = 0; i < std::min(o.images, test.size()); ++i) victims.push_back(i);
  else
    victims = inv::first_of_each_class(test);
  data::Dataset attacker = test.slice(0, 0);
  attacker.split = "none";
  if (kind != inv::AttackKind::whitebox) {
    if (o.attacker_data == "train") {
      attacker = data::load_dataset(ds, dir, true, o.attacker_limit);
    } else {
      attacker = inv::without(test, victims);
      if (o.attacker_limit >= 0 && o.attacker_limit < attacker.size()) attacker = attacker.slice(0, o.attacker_limit);
    }
  }
  int64_t levels = 0;
  for (auto& l : lines) levels += int64_t(l.levels.size());
  const inv::AttackConfig shown = attack_config(lines[0].split);
  std::cerr << "defend: " << model.arch << ", " << lines.size() << " line(s), " << levels << " levels, "
            << victims.size() << " image(s) per level attacked by " << o.attack << " ("
            << (o.compare    ? "paper's and adaptive attackers"
                : o.adaptive ? "adaptive attacker"
                             : "paper's attacker")
            << ", " << o.preset << " preset, " << shown.rmle.iters << " rMLE iterations), accuracy on " << test.size()
            << " test images, " << device.str() << "\n";
  if (o.quick)
    std::cerr << "defend: --quick: " << levels << " levels in all (8 per line), " << shown.rmle.iters
              << " rMLE iterations instead of 5000\n";

  ProgressLines progress;
  exp::DefendOutcome r = exp::run_defend(model, test, victims, attacker, s, progress.sink());

  nlohmann::json settings{{"attack", o.attack},
                          {"attackers", o.compare    ? "paper+adaptive"
                                        : o.adaptive ? "adaptive"
                                                     : "paper"},
                          {"preset", o.preset},
                          {"quick", o.quick},
                          {"figure", o.figure},
                          {"rmle_iters", shown.rmle.iters},
                          {"rmle_lr", shown.rmle.lr},
                          {"rmle_tv_beta", shown.rmle.tv_beta},
                          {"defense_seed", o.defense_seed},
                          {"attack_seed", o.seed},
                          {"eot_draws", o.eot},
                          {"images_attacked", victims.size()},
                          {"attacker_data", attacker.split + " (" + std::to_string(attacker.size()) + " images)"}};
  for (auto& l : lines) settings["tv_by_split"][l.split] = attack_config(l.split).rmle.tv;
  exp::RunInfo info{command_line(), ui::now_iso8601(), device.str(), model.arch, test.name};
  std::vector<std::string> written;
  nlohmann::json j = exp::write_defend_results(o.out, r, lines, settings, info, &written);
  if (o.json) {
    std::cout << j.dump() << std::endl;
    return;
  }
  // The table: one row per level, the attackers side by side.
  const std::vector<std::string> who = r.attackers();
  std::vector<std::string> header{"line", "level", "accuracy"};
  for (auto& w : who) {
    header.push_back(w + " PSNR");
    header.push_back(w + " SSIM");
    header.push_back(w + " recov.");
  }
  ui::Table t(header);
  for (const exp::LevelOutcome& lo : r.levels) {
    std::vector<std::string> row{exp::line_label(lines, lo.line),
                                 exp::level_label(lines[lo.line].defense.kind, lo.level), ui::percent(lo.accuracy)};
    for (auto& w : who) {
      const exp::AttackOutcome& a = lo.by_attacker.at(w);
      row.push_back(ui::fixed(a.mean_psnr(), 2));
      row.push_back(ui::fixed(a.mean_ssim(), 3));
      row.push_back(ui::percent(a.recovery, 0));
    }
    t.add(row);
  }
  std::cout << "\n";
  t.print();
  ui::Table f({"line", "attacker", "base acc.", "largest level acc>=95%", "SSIM there", "PSNR there",
               "smallest level SSIM<0.25", "acc. there"});
  for (const exp::LineFinding& x : exp::findings(r, lines)) {
    const std::string& kind_name = lines[x.line].defense.kind;
    f.add({exp::line_label(lines, x.line), x.attacker, ui::percent(x.base_accuracy),
           x.max_level_at_accuracy >= 0 ? exp::level_label(kind_name, x.max_level_at_accuracy) : "none",
           x.max_level_at_accuracy >= 0 ? ui::fixed(x.ssim_there, 3) : "-",
           x.max_level_at_accuracy >= 0 ? ui::fixed(x.psnr_there, 2) : "-",
           x.min_level_ssim_below >= 0 ? exp::level_label(kind_name, x.min_level_ssim_below) : "none",
           x.min_level_ssim_below >= 0 ? ui::percent(x.accuracy_at_ssim_below) : "-"});
  }
  std::cout << "\n";
  f.print();
  std::cout << "\naccuracy " << ui::duration(r.accuracy_seconds) << ", attacks " << ui::duration(r.attack_seconds)
            << ", total " << ui::duration(r.accuracy_seconds + r.attack_seconds) << "; written to " << o.out << ":";
  for (auto& w : written) std::cout << " " << w;
  std::cout << "\n";
}

}  // namespace

void add_defend(CLI::App& app) {
  auto o = std::make_shared<DefendOptions>();
  auto* c = app.add_subcommand("defend", "Defenses against the attacks: accuracy vs PSNR/SSIM per level (paper §IV)");
  c->add_option("--model", o->model, "Checkpoint written by `splitleak train`")->required();
  c->add_option("--out", o->out, "Folder for results.json/csv, the grids and the plots")->required();
  c->add_option("--figure", o->figure, "Run a figure of the paper: 9, 11, 13 (MNIST LeNet), 10, 12 (CIFAR10CNN)")
      ->check(CLI::IsMember({9, 10, 11, 12, 13}));
  c->add_flag("--quick", o->quick, "8 levels per line and 1000 rMLE iterations (stated in the output)");
  c->add_option("--split", o->split, "Split layer (e.g. ReLU2)");
  c->add_option("--defense", o->defense,
                "Defense kind(s) without level: gaussian, laplace, dropout[,rescale][@input]; comma-separated");
  c->add_option("--where", o->where,
                "input, intermediate, or both comma-separated (default: the spec's, else "
                "intermediate)");
  c->add_option("--levels", o->levels, "Levels, comma-separated: σ, b or r (default: the paper's sweep)");
  c->add_option("--attack", o->attack, "whitebox (default), blackbox or queryfree")
      ->check(CLI::IsMember({"whitebox", "blackbox", "queryfree"}));
  c->add_flag("--adaptive", o->adaptive, "An attacker who knows the defense (kind, place, level) and models it");
  c->add_flag("--compare", o->compare, "Run the paper's attacker and the adaptive one side by side");
  c->add_option("--images", o->images, "Attack the first N test images (default: the first of each class)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  c->add_option("--preset", o->preset, "Attack settings: reference (SPEC §4, default) or tuned")
      ->check(CLI::IsMember({"reference", "tuned"}));
  c->add_option("--iters", o->iters, "rMLE iterations (default 5000; 1000 with --quick)")
      ->check(CLI::Range(0, 1000000));
  c->add_option("--lr", o->lr, "rMLE learning rate")->check(CLI::PositiveNumber);
  c->add_option("--tv", o->tv, "λ, weight of total variation (default per preset and split)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--eot", o->eot, "Draws of an input defense the adaptive white-box attacker averages over")
      ->check(CLI::Range(1, 64));
  c->add_option("--epochs", o->epochs, "Training epochs of the decoder / shadow")->check(CLI::Range(1, 10000));
  c->add_option("--attacker-data", o->attacker_data, "The attacker's own images: train (default) or test")
      ->check(CLI::IsMember({"train", "test"}));
  c->add_option("--attacker-limit", o->attacker_limit, "Use only the first N attacker images")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  c->add_option("--limit", o->limit, "Accuracy on the first N test images only (default: all)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  c->add_option("--batch", o->batch, "Accuracy batch size")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  c->add_option("--seed", o->seed, "Seed of the attacker (decoder / shadow, its own draws)");
  c->add_option("--defense-seed", o->defense_seed, "Seed of the defense's draws");
  c->add_option("--dataset", o->dataset, "mnist or cifar10 (default: the checkpoint's)")
      ->check(CLI::IsMember({"mnist", "cifar10"}));
  c->add_option("--data", o->data, "Data directory (default: $SPLITLEAK_DATA or data/)");
  c->add_option("--device", o->device, "cpu or cuda[:N]");
  c->add_option("--threads", o->threads, "CPU threads (default: all cores)")->check(CLI::Range(0, 4096));
  c->add_flag("--json", o->json, "Print one JSON object with the results");
  c->callback([o] { run_defend_cmd(*o); });
}

}  // namespace sl::cli
