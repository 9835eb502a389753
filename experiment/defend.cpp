#include "experiment/defend.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <set>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "inversion/metrics.h"

namespace sl::experiment {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Level 0 is the undefended baseline of every line (every noise and dropout defense is the identity there; for CIS,
// whose ε must be > 0, it stands for "no defense").
DefenseChain chain_at(const DefenseLine& line, double level, const DefendSettings& s) {
  if (level == 0) return {};
  auto cal = s.calibration.find(line.split);
  return make_defenses({line.defense.at_level(level)}, s.defense_seed,
                       cal == s.calibration.end() ? nullptr : &cal->second);
}

void validate(const Model& model, const DefendSettings& s) {
  SL_CHECK(!s.lines.empty(), ValueError, "defend: no defense to sweep");
  SL_CHECK(bool(s.attack_config), ValueError, "defend: no attack settings");
  SL_CHECK(s.eval_batch >= 1, ValueError, "defend: accuracy batch must be >= 1, got ", s.eval_batch);
  for (const DefenseLine& l : s.lines) {
    SplitPipeline check(model, l.split);  // ValueError listing the layer names
    SL_CHECK(!l.levels.empty(), ValueError, "defend: no levels for ", l.name());
    const DefenseKind& k = defense_kind(l.defense.kind);
    for (double level : l.levels)
      if (k.validate && level != 0) k.validate(l.defense.at_level(level));
    SL_CHECK(!(k.needs_calibration && k.needs_calibration(l.defense)) || s.calibration.count(l.split), ValueError,
             "defend: ", l.name(), " at ", l.split, " needs a calibration on the edge's own data");
  }
}

Tensor concat_rows(const std::vector<Tensor>& parts) {
  Shape s = parts.at(0).shape();
  int64_t rows = 0;
  for (auto& p : parts) rows += p.size(0);
  s[0] = rows;
  Tensor all = Tensor::empty(s, parts[0].dtype(), parts[0].device());
  int64_t at = 0;
  for (auto& p : parts) {
    Tensor dst = all.slice(at, at + p.size(0));
    dst.copy_(p);
    at += p.size(0);
  }
  return all;
}

}  // namespace

double pixel_variance(const data::Dataset& d) {
  double sum = 0, sq = 0;
  int64_t n = 0;
  for (int64_t b = 0; b < d.size(); b += 1000) {
    Tensor px = data::denormalize(d.images.slice(b, std::min(d.size(), b + 1000)), d.norm, true);
    const float* p = px.data<float>();
    for (int64_t i = 0; i < px.numel(); ++i) {
      sum += p[i];
      sq += double(p[i]) * p[i];
    }
    n += px.numel();
  }
  if (n == 0) return 0;
  const double mean = sum / double(n);
  return std::max(0.0, sq / double(n) - mean * mean);
}

std::string DefenseLine::name() const {
  std::string opts;
  for (auto& [k, v] : defense.options) opts += (opts.empty() ? ":" : ",") + k + (v.empty() ? "" : "=" + v);
  return defense.kind + opts + "@" + place_name(defense.place);
}

double AttackOutcome::mean_psnr() const { return inv::mean_score(psnr); }

double AttackOutcome::mean_ssim() const { return inv::mean_score(ssim); }

std::vector<std::string> DefendOutcome::attackers() const {
  std::set<std::string> names;
  for (auto& l : levels)
    for (auto& [n, o] : l.by_attacker) names.insert(n);
  std::vector<std::string> out;
  for (const char* n : {"paper", "adaptive"})
    if (names.count(n)) out.push_back(n);
  return out;
}

DefendOutcome run_defend(const Model& model, const data::Dataset& test, const std::vector<int64_t>& victim_index,
                         const data::Dataset& attacker_data, const DefendSettings& s,
                         const inv::PhaseProgress& progress) {
  inv::check_model_fits_data(model, test);
  validate(model, s);
  SL_CHECK(!victim_index.empty(), ValueError, "defend: no images to attack");
  model.net->eval();
  const Device dev = s.device;
  DefendOutcome out;
  data::Dataset victims = inv::select(test, victim_index);
  out.originals = data::denormalize(victims.images, victims.norm, true);
  out.labels = victims.labels;
  out.test_index = victim_index;
  out.accuracy_images = test.size();
  out.pixel_variance = pixel_variance(test);
  for (size_t li = 0; li < s.lines.size(); ++li)
    for (double level : s.lines[li].levels) {
      LevelOutcome lo;
      lo.line = li;
      lo.level = level;
      out.levels.push_back(lo);
    }

  // ---- usability: accuracy of the defended split over the test set, a fresh draw per image ----------------------
  auto t0 = Clock::now();
  {
    NoGradGuard no_grad;
    const int64_t total = int64_t(out.levels.size()) * test.size();
    int64_t done = 0;
    std::map<std::string, double> seen;  // (split, deployment) -> accuracy: level 0 of every line is one run
    if (progress) progress("accuracy", 0, total, "");
    for (LevelOutcome& lo : out.levels) {
      const DefenseLine& line = s.lines[lo.line];
      DefenseChain chain = chain_at(line, lo.level, s);
      const std::string key = line.split + "|" + chain_str(chain);
      if (auto it = seen.find(key); it != seen.end()) {
        lo.accuracy = it->second;
        done += test.size();
        continue;
      }
      SplitPipeline p(model, line.split, chain);
      int64_t correct = 0;
      for (int64_t b = 0; b < test.size(); b += s.eval_batch) {
        const int64_t e = std::min(test.size(), b + s.eval_batch);
        Tensor pred = argmax_rows(p.run(test.images.slice(b, e).to(dev), uint64_t(b))).to(Device::cpu());
        const int32_t* pp = pred.data<int32_t>();
        for (int64_t i = 0; i < e - b; ++i) correct += pp[i] == test.labels[size_t(b + i)];
        done += e - b;
        if (progress) progress("accuracy", done, total, line.name() + " " + line.split + " level " + str(lo.level));
      }
      lo.accuracy = test.size() ? double(correct) / double(test.size()) : 0;
      seen[key] = lo.accuracy;
    }
  }
  out.accuracy_seconds = since(t0);

  // ---- privacy: per split, every level of every line in one batch, per attacker -----------------------------------
  t0 = Clock::now();
  std::vector<std::string> splits;
  for (auto& l : s.lines)
    if (std::find(splits.begin(), splits.end(), l.split) == splits.end()) splits.push_back(l.split);
  std::vector<bool> modes;
  if (s.attackers != Attackers::adaptive) modes.push_back(false);
  if (s.attackers != Attackers::paper) modes.push_back(true);
  const int64_t n_img = victims.size();
  const Tensor x = victims.images.to(dev);
  std::vector<uint64_t> queries(victim_index.begin(), victim_index.end());
  for (const std::string& split : splits) {
    SplitPipeline base(model, split);
    // The rows: for each level of each line at this split, the exemplars as that deployment answers them.
    inv::Observation obs;
    obs.kind = inv::TargetKind::feature;
    std::vector<Tensor> parts;
    std::vector<size_t> level_of_group;  // index into out.levels
    {
      NoGradGuard no_grad;
      for (size_t k = 0; k < out.levels.size(); ++k) {
        const DefenseLine& line = s.lines[out.levels[k].line];
        if (line.split != split) continue;
        DefenseChain chain = chain_at(line, out.levels[k].level, s);
        const int64_t begin = int64_t(parts.size()) * n_img;
        parts.push_back(inv::observe(base, inv::TargetKind::feature, x, queries, chain).v);
        obs.groups.push_back(inv::ObservedGroup{begin, begin + n_img, chain});
        level_of_group.push_back(k);
      }
    }
    obs.v = concat_rows(parts);
    inv::AttackTarget t;
    t.pipeline = base;
    t.kind = inv::TargetKind::feature;
    t.attacker_data = &attacker_data;
    t.range = inv::PixelRange::of(test.norm);
    t.image = model.input_shape;
    t.device = dev;
    for (bool adaptive : modes) {
      inv::AttackConfig cfg = s.attack_config(split);
      cfg.split = split;
      cfg.adaptive = adaptive;
      cfg.device = dev;
      cfg.batch = std::max<int64_t>(cfg.batch, obs.rows());  // all levels in one optimisation
      const std::string who = adaptive ? "adaptive" : "paper";
      auto attack = inv::make_attack(cfg);
      inv::PhaseProgress tagged;
      if (progress)
        tagged = [&](const std::string& phase, int64_t done, int64_t total, const std::string& note) {
          progress(split + " " + who + ": " + phase, done, total, note);
        };
      attack->prepare(t, tagged);
      Tensor recon = attack->invert(t, obs, tagged);  // normalised, CPU
      out.details[split + " / " + who] = attack->detail();
      // Score each group against the exemplars.
      Tensor pixels = data::denormalize(recon, test.norm, true);
      Tensor predicted;
      {
        NoGradGuard no_grad;
        predicted = argmax_rows((*model.net)(recon.to(dev))).to(Device::cpu());
      }
      for (size_t g = 0; g < obs.groups.size(); ++g) {
        const inv::ObservedGroup& grp = obs.groups[g];
        AttackOutcome a;
        a.reconstructions = pixels.slice(grp.begin, grp.end).contiguous();
        a.psnr = inv::psnr_per_image(out.originals, a.reconstructions);
        a.ssim = inv::ssim_per_image(out.originals, a.reconstructions);
        a.predicted.assign(predicted.data<int32_t>() + grp.begin, predicted.data<int32_t>() + grp.end);
        a.recovery = inv::recovery_rate(out.labels, a.predicted);
        a.mse = inv::mean_squared_error(out.originals, a.reconstructions);
        a.leakage_bits = inv::leakage_index(out.pixel_variance, a.mse);
        out.levels[level_of_group[g]].by_attacker[who] = std::move(a);
      }
    }
  }
  out.attack_seconds = since(t0);
  return out;
}

// ---- the paper's figures ----------------------------------------------------------------------------------------

std::vector<double> default_levels(const std::string& kind, bool quick) {
  if (kind == "cis")  // ε: 0 is the undefended baseline
    return quick ? std::vector<double>{0, 1, 5, 10, 50, 100, 500, 1000}
                 : std::vector<double>{0, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
  if (kind == "dropout")
    return quick ? std::vector<double>{0, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.9}
                 : std::vector<double>{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  // σ or b: the authors' script sweeps 0..5 in steps of 0.1; fine steps up to 1 (where accuracy gives way), then
  // coarser.
  return quick ? std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0}
               : std::vector<double>{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0};
}

std::vector<DefenseLine> figure_lines(int figure, const std::string& arch, bool quick) {
  const bool mnist = figure == 9 || figure == 11 || figure == 13;
  SL_CHECK(mnist || figure == 10 || figure == 12, ValueError, "--figure ", figure,
           " is not one of the paper's defense figures (9, 10, 11, 12, 13)");
  const std::string want = mnist ? "lenet" : "cifar10cnn";
  SL_CHECK(arch == want, ValueError, "figure ", figure, " is the ", mnist ? "MNIST LeNet" : "CIFAR-10 CIFAR10CNN",
           " figure; the model is a ", arch, " (use a ", want, " checkpoint)");
  std::vector<DefenseLine> lines;
  auto line = [&](const std::string& split, const std::string& kind, Place place) {
    DefenseLine l;
    l.split = split;
    l.defense.kind = kind;
    l.defense.place = place;
    l.levels = default_levels(kind, quick);
    lines.push_back(l);
  };
  if (figure == 9 || figure == 10) {
    const std::string split = figure == 9 ? "ReLU2" : "ReLU22";
    for (const char* kind : {"gaussian", "laplace", "dropout"})
      for (Place place : {Place::input, Place::intermediate}) line(split, kind, place);
  } else {
    const std::vector<std::string> splits =
        mnist ? std::vector<std::string>{"ReLU1", "pool1", "conv2", "ReLU2", "pool2"}
              : std::vector<std::string>{"ReLU12", "pool1", "conv22", "ReLU22", "pool2"};
    for (auto& split : splits) line(split, "dropout", Place::intermediate);
  }
  return lines;
}

std::string AccuracyRule::str() const {
  return max_drop >= 0 ? "drop<=" + ::sl::str(max_drop * 100) + "pt" : "acc>=" + ::sl::str(min_accuracy * 100) + "%";
}

AccuracyRule accuracy_rule(const DefendOutcome& o) {
  double base = 0;
  for (const LevelOutcome& lo : o.levels)
    if (lo.level == 0) base = std::max(base, lo.accuracy);
  AccuracyRule r;
  if (base < 0.96) r.max_drop = 0.008;
  return r;
}

std::vector<LineFinding> findings(const DefendOutcome& o, const std::vector<DefenseLine>& lines,
                                  const AccuracyRule& rule, double ssim_threshold) {
  std::vector<LineFinding> out;
  for (const std::string& who : o.attackers())
    for (size_t li = 0; li < lines.size(); ++li) {
      LineFinding f;
      f.line = li;
      f.attacker = who;
      bool base_set = false;
      for (const LevelOutcome& lo : o.levels) {
        if (lo.line != li || !lo.by_attacker.count(who)) continue;
        if (!base_set || lo.level == 0) f.base_accuracy = lo.accuracy;
        base_set = true;
      }
      for (const LevelOutcome& lo : o.levels) {
        if (lo.line != li || !lo.by_attacker.count(who)) continue;
        const AttackOutcome& a = lo.by_attacker.at(who);
        if (rule.keeps(lo.accuracy, f.base_accuracy) && lo.level > f.max_level_at_accuracy) {
          f.max_level_at_accuracy = lo.level;
          f.ssim_there = a.mean_ssim();
          f.psnr_there = a.mean_psnr();
          f.accuracy_there = lo.accuracy;
        }
        if (a.mean_ssim() < ssim_threshold && (f.min_level_ssim_below < 0 || lo.level < f.min_level_ssim_below)) {
          f.min_level_ssim_below = lo.level;
          f.accuracy_at_ssim_below = lo.accuracy;
          f.psnr_at_ssim_below = a.mean_psnr();
        }
      }
      out.push_back(f);
    }
  return out;
}

}  // namespace sl::experiment
