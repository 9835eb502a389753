// The run behind `splitleak defend` (experiment/defend_run.h): the usability-privacy sweep of the paper's §IV. For each
// defense, place and level: the defended accuracy over the test set and an attack on the defended observations of the
// class exemplars, by the paper's attacker and/or one that knows the defense. `--figure N` runs a whole figure of the
// paper.
#include "experiment/defend_run.h"

#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "datasets/fetch.h"
#include "experiment/common.h"
#include "experiment/defend.h"
#include "experiment/defend_report.h"
#include "experiment/ui.h"
#include "tensor/io.h"

namespace sl::experiment {

namespace {

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
std::vector<DefenseLine> custom_lines(const DefendOptions& o) {
  SL_CHECK(!o.split.empty(), ValueError, "defend: pass --split LAYER (or --figure N)");
  SL_CHECK(!o.defense.empty(), ValueError, "defend: pass --defense KIND (gaussian, laplace, dropout; or --figure N)");
  std::vector<DefenseSpec> specs = parse_defenses(o.defense, false);
  std::vector<Place> places;
  if (!o.where.empty()) {
    std::stringstream ss(o.where);
    std::string w;
    while (std::getline(ss, w, ',')) places.push_back(parse_place(w));
  }
  std::vector<DefenseLine> lines;
  for (const DefenseSpec& s : specs) {
    SL_CHECK(!s.level, ValueError, "defend: give the levels with --levels, not in --defense (", s.str(), ")");
    std::vector<Place> at = places.empty() ? std::vector<Place>{s.place} : places;
    for (Place p : at) {
      DefenseLine l;
      l.split = o.split;
      l.defense = s;
      l.defense.place = p;
      l.levels = o.levels.empty() ? default_levels(s.kind, o.quick) : parse_levels(o.levels);
      lines.push_back(l);
    }
  }
  return lines;
}

}  // namespace

void run_defend_command(const DefendOptions& o) {
  set_threads(o.threads);
  SL_CHECK(!(o.adaptive && o.compare), ValueError, "defend: --adaptive and --compare exclude each other");
  io::check_output_dir(o.out, "--out");  // before the model and the data are loaded
  const Device device = parse_device(o.device);
  LoadedModel lm = load_model(o.model, device, o.allow_nonfinite);
  const Model& model = lm.model;
  // Everything that can be checked is checked before any data is read.
  std::vector<DefenseLine> lines;
  if (o.figure) {
    SL_CHECK(o.split.empty() && o.defense.empty() && o.levels.empty() && o.where.empty(), ValueError,
             "defend: --figure sets the split, defenses, places and levels; drop --split/--defense/--where/--levels");
    lines = figure_lines(o.figure, model.arch, o.quick);
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
  DefendSettings s;
  s.lines = lines;
  s.attackers = o.compare ? Attackers::both : o.adaptive ? Attackers::adaptive : Attackers::paper;
  s.attack_config = attack_config;
  s.defense_seed = o.defense_seed;
  s.eval_batch = o.batch;
  s.device = device;
  // Validate every line (split, kind, levels) against the model now.
  for (auto& l : lines) {
    SplitPipeline check(model, l.split);
    for (double level : l.levels)
      if (auto& k = defense_kind(l.defense.kind); k.validate && level != 0) k.validate(l.defense.at_level(level));
  }

  const std::string ds = o.dataset.empty() ? lm.dataset : o.dataset;
  SL_CHECK(!ds.empty(), ValueError, o.model, ": the checkpoint does not say its data set; pass --dataset");
  const std::string dir = data::find_data_dir(o.data);
  data::Dataset test = data::load_dataset(ds, dir, false, o.limit);
  check_not_empty(test, "test set", "no accuracy to measure");
  inv::check_model_fits_data(model, test);
  // CIS rank allocation: the mean channel ranks at each split, measured once on the edge's own (training) images.
  for (auto& l : lines)
    if (needs_calibration({l.defense}) && !s.calibration.count(l.split)) {
      s.calibration[l.split] = calibrate_on_training_data(SplitPipeline(model, l.split), ds, dir, device);
    }
  std::vector<int64_t> victims;
  if (o.images > 0)
    for (int64_t i = 0; i < std::min(o.images, test.size()); ++i) victims.push_back(i);
  else
    victims = inv::first_of_each_class(test);
  data::Dataset attacker = test.slice(0, 0);
  attacker.split = "none";
  bool cis = false;
  for (auto& l : lines) cis = cis || l.defense.kind == "cis";
  if (const auto need = attacker_images_needed(kind == inv::AttackKind::whitebox, (o.adaptive || o.compare) && cis,
                                               o.attacker_limit)) {
    const int64_t limit = *need;
    if (o.attacker_data == "train") {
      attacker = data::load_dataset(ds, dir, true, limit);
    } else {
      attacker = inv::without(test, victims);
      if (limit >= 0 && limit < attacker.size()) attacker = attacker.slice(0, limit);
    }
    check_not_empty(attacker, "attacker's data set", "the black-box and query-free attacks learn from its images");
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

  ui::PhaseLines progress;
  DefendOutcome r = run_defend(model, test, victims, attacker, s, progress.sink());

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
  RunInfo info = this_run(device.str(), model.arch, test.name);
  std::vector<std::string> written;
  nlohmann::json j = write_defend_results(o.out, r, lines, settings, info, &written);
  if (o.json) {
    std::cout << json_text(j) << std::endl;
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
  for (const LevelOutcome& lo : r.levels) {
    std::vector<std::string> row{line_label(lines, lo.line), level_label(lines[lo.line].defense.kind, lo.level),
                                 ui::percent(lo.accuracy)};
    for (auto& w : who) {
      const AttackOutcome& a = lo.by_attacker.at(w);
      row.push_back(ui::fixed(a.mean_psnr(), 2));
      row.push_back(ui::fixed(a.mean_ssim(), 3));
      row.push_back(ui::percent(a.recovery, 0));
    }
    t.add(row);
  }
  std::cout << "\n";
  t.print();
  const AccuracyRule rule = accuracy_rule(r);
  ui::Table f({"line", "attacker", "base acc.", "largest level " + rule.str(), "SSIM there", "PSNR there",
               "smallest level SSIM<0.25", "acc. there"});
  for (const LineFinding& x : findings(r, lines, rule)) {
    const std::string& kind_name = lines[x.line].defense.kind;
    f.add({line_label(lines, x.line), x.attacker, ui::percent(x.base_accuracy),
           x.max_level_at_accuracy >= 0 ? level_label(kind_name, x.max_level_at_accuracy) : "none",
           x.max_level_at_accuracy >= 0 ? ui::fixed(x.ssim_there, 3) : "-",
           x.max_level_at_accuracy >= 0 ? ui::fixed(x.psnr_there, 2) : "-",
           x.min_level_ssim_below >= 0 ? level_label(kind_name, x.min_level_ssim_below) : "none",
           x.min_level_ssim_below >= 0 ? ui::percent(x.accuracy_at_ssim_below) : "-"});
  }
  std::cout << "\n";
  f.print();
  std::cout << "\naccuracy " << ui::duration(r.accuracy_seconds) << ", attacks " << ui::duration(r.attack_seconds)
            << ", total " << ui::duration(r.accuracy_seconds + r.attack_seconds) << "; written to " << o.out << ":";
  for (auto& w : written) std::cout << " " << w;
  std::cout << "\n";
}

}  // namespace sl::experiment
