#include "experiment/defend_report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <set>
#include <sstream>

#include "datasets/image_io.h"
#include "experiment/plot.h"
#include "tensor/io.h"

namespace sl::experiment {

namespace {

std::string fmt(double v, int decimals) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(decimals) << v;
  return os.str();
}

std::string number(double v) {
  std::ostringstream os;
  os << std::setprecision(6) << v;
  return os.str();
}

// JSON cannot hold inf (identical images give PSNR = inf): written as a large finite stand-in is a lie, so null.
nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json vector_json(const std::vector<double>& v) {
  nlohmann::json j = nlohmann::json::array();
  for (double e : v) j.push_back(finite_or_null(e));
  return j;
}

void write_text(const std::string& path, const std::string& text) { io::write_file_atomic(path, text, "output"); }

// A file-name-safe form of a label.
std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ? c : '-';
  return out;
}

int kind_color(const std::string& kind) {  // the paper's colours: Gaussian blue, Laplace orange, dropout green
  return kind == "gaussian" ? 0 : kind == "laplace" ? 1 : kind == "dropout" ? 2 : 4;
}

}  // namespace

std::string line_label(const std::vector<DefenseLine>& lines, size_t i) {
  bool one_split = true, one_defense = true;
  for (auto& l : lines) {
    one_split = one_split && l.split == lines[0].split;
    one_defense = one_defense && l.name() == lines[0].name();
  }
  if (one_split) return lines[i].name();
  if (one_defense) return lines[i].split;
  return lines[i].split + " " + lines[i].name();
}

std::string level_label(const std::string& kind, double level) {
  const char* sym = kind == "gaussian" ? "sigma" : kind == "laplace" ? "b" : kind == "dropout" ? "r" : "level";
  return std::string(sym) + "=" + number(level);
}

nlohmann::json write_defend_results(const std::string& dir, const DefendOutcome& o,
                                    const std::vector<DefenseLine>& lines, const nlohmann::json& settings,
                                    const RunInfo& info, std::vector<std::string>* written) {
  std::filesystem::create_directories(dir);
  auto note = [&](const std::string& name) {
    if (written) written->push_back(name);
  };
  const std::vector<std::string> attackers = o.attackers();

  // ---- results.json ----------------------------------------------------------------------------------------
  nlohmann::json j = run_json(info);
  j.update({{"settings", settings},
            {"accuracy_images", o.accuracy_images},
            {"pixel_variance", o.pixel_variance},
            {"exemplars", o.test_index},
            {"labels", o.labels},
            {"seconds", {{"accuracy", o.accuracy_seconds}, {"attack", o.attack_seconds}}},
            {"details", o.details}});
  for (size_t li = 0; li < lines.size(); ++li) {
    const DefenseLine& l = lines[li];
    nlohmann::json jl{{"label", line_label(lines, li)},
                      {"split", l.split},
                      {"defense", l.defense.kind},
                      {"place", place_name(l.defense.place)},
                      {"spec", l.defense.str()}};
    for (const LevelOutcome& lo : o.levels) {
      if (lo.line != li) continue;
      nlohmann::json jv{{"level", lo.level}, {"accuracy", lo.accuracy}};
      for (auto& [who, a] : lo.by_attacker)
        jv[who] = {{"psnr", finite_or_null(a.mean_psnr())}, {"ssim", a.mean_ssim()},
                   {"recovery_rate", a.recovery},           {"mse", a.mse},
                   {"leakage_bits", a.leakage_bits},        {"psnr_per_image", vector_json(a.psnr)},
                   {"ssim_per_image", vector_json(a.ssim)}, {"predicted", a.predicted}};
      jl["levels"].push_back(jv);
    }
    j["lines"].push_back(jl);
  }
  const AccuracyRule rule = accuracy_rule(o);
  j["findings_rule"] = rule.str();
  for (const LineFinding& f : findings(o, lines, rule)) {
    nlohmann::json jf{
        {"line", line_label(lines, f.line)}, {"attacker", f.attacker}, {"base_accuracy", f.base_accuracy}};
    if (f.max_level_at_accuracy >= 0)
      jf["largest_level_keeping_accuracy"] = {{"level", f.max_level_at_accuracy},
                                              {"accuracy", f.accuracy_there},
                                              {"ssim", f.ssim_there},
                                              {"psnr", finite_or_null(f.psnr_there)}};
    if (f.min_level_ssim_below >= 0)
      jf["smallest_level_with_ssim_below_0.25"] = {{"level", f.min_level_ssim_below},
                                                   {"accuracy", f.accuracy_at_ssim_below},
                                                   {"psnr", finite_or_null(f.psnr_at_ssim_below)}};
    j["findings"].push_back(jf);
  }
  write_text(dir + "/results.json", j.dump(2) + "\n");
  note("results.json");

  // ---- results.csv -------------------------------------------------------------------------------------------
  std::ostringstream csv;
  csv << csv_preamble("splitleak defend", info, settings);
  csv << "split,defense,place,level,attacker,accuracy,psnr,ssim,recovery_rate,leakage_bits\n";
  for (const LevelOutcome& lo : o.levels) {
    const DefenseLine& l = lines[lo.line];
    for (auto& [who, a] : lo.by_attacker)
      csv << l.split << ',' << l.defense.kind << ',' << place_name(l.defense.place) << ',' << lo.level << ',' << who
          << ',' << fmt(lo.accuracy, 4) << ',' << fmt(a.mean_psnr(), 3) << ',' << fmt(a.mean_ssim(), 4) << ','
          << fmt(a.recovery, 3) << ',' << fmt(a.leakage_bits, 4) << '\n';
  }
  write_text(dir + "/results.csv", csv.str());
  note("results.csv");

  // ---- grids: one per line and attacker, rows = levels --------------------------------------------------------
  for (size_t li = 0; li < lines.size(); ++li)
    for (const std::string& who : attackers) {
      std::vector<Tensor> rows{o.originals};
      data::GridOptions g;
      g.scale = o.originals.size(2) < 64 ? 2 : 1;
      g.row_labels = {"original"};
      for (const LevelOutcome& lo : o.levels) {
        if (lo.line != li || !lo.by_attacker.count(who)) continue;
        rows.push_back(lo.by_attacker.at(who).reconstructions);
        g.row_labels.push_back(level_label(lines[li].defense.kind, lo.level));
      }
      const std::string name = "grid-" + slug(line_label(lines, li)) + "-" + who + ".png";
      data::write_grid(dir + "/" + name, rows, g);
      note(name);
    }

  // ---- curves: accuracy against SSIM and PSNR -----------------------------------------------------------------
  std::set<std::string> kinds;
  for (auto& l : lines) kinds.insert(l.defense.kind);
  const bool by_split = line_label(lines, 0) == lines[0].split && lines.size() > 1;
  auto series_of = [&](const std::string& who, bool ssim) {
    std::vector<PlotSeries> out;
    for (size_t li = 0; li < lines.size(); ++li) {
      PlotSeries s;
      s.title = line_label(lines, li);
      // Lines of one kind at one place (e.g. CIS with rank and with uniform allocation) get colours of their own.
      int same = 0;
      for (size_t k = 0; k < lines.size(); ++k)
        same += lines[k].defense.kind == lines[li].defense.kind && lines[k].defense.place == lines[li].defense.place;
      s.color = by_split || same > 1 ? int(li) : kind_color(lines[li].defense.kind);
      s.dashed = !by_split && lines[li].defense.place == Place::intermediate;  // the paper: dotted = intermediate
      for (const LevelOutcome& lo : o.levels) {
        if (lo.line != li || !lo.by_attacker.count(who)) continue;
        const AttackOutcome& a = lo.by_attacker.at(who);
        double x = ssim ? a.mean_ssim() : a.mean_psnr();
        if (std::isfinite(x)) s.points.emplace_back(x, 100 * lo.accuracy);
      }
      out.push_back(s);
    }
    return out;
  };
  // The dotted line: the accuracy the paper's rule keeps (95 %, or the base accuracy less 0.8 points on CIFAR-10).
  double base = 0;
  for (const LevelOutcome& l : o.levels)
    if (l.level == 0) base = std::max(base, l.accuracy);
  const double keep_line = 100 * (rule.max_drop >= 0 ? base - rule.max_drop : rule.min_accuracy);
  auto panel = [&](const std::string& who, bool ssim) {
    PlotPanel p;
    p.title = std::string(who == "paper" ? "paper's attacker" : "adaptive attacker") + ": accuracy vs " +
              (ssim ? "SSIM" : "PSNR");
    p.xlabel = ssim ? "SSIM of the reconstructions (lower = more private)"
                    : "PSNR of the reconstructions, dB (lower = more private)";
    p.ylabel = "test accuracy, %";
    p.series = series_of(who, ssim);
    if (ssim) p.xrange = std::make_pair(0.0, 1.0);
    p.hline = keep_line;
    return p;
  };
  // Accuracy and attack SSIM against the level (log scale where the levels span more than a decade, as CIS's ε).
  auto level_panel = [&](const std::string& who, bool accuracy) {
    PlotPanel p;
    double lo = INFINITY, hi = 0;
    for (const LevelOutcome& l : o.levels)
      if (l.level > 0) lo = std::min(lo, l.level), hi = std::max(hi, l.level);
    p.logx = hi > 10 * lo;
    p.title = accuracy ? "accuracy vs level"
                       : std::string(who == "paper" ? "paper's" : "adaptive") + " attacker: SSIM vs level";
    p.xlabel = std::string("level") + (p.logx ? " (log scale; level 0, the undefended baseline, left out)" : "");
    p.ylabel = accuracy ? "test accuracy, %" : "SSIM of the reconstructions";
    for (size_t li = 0; li < lines.size(); ++li) {
      PlotSeries s;
      s.title = line_label(lines, li);
      s.color = int(li);
      for (const LevelOutcome& l : o.levels)
        if (l.line == li && (accuracy || l.by_attacker.count(who)))
          s.points.emplace_back(l.level, accuracy ? 100 * l.accuracy : l.by_attacker.at(who).mean_ssim());
      std::sort(s.points.begin(), s.points.end());
      p.series.push_back(s);
    }
    if (accuracy) p.hline = keep_line;
    return p;
  };
  {
    std::vector<PlotPanel> panels{level_panel(attackers.front(), true)};
    for (const std::string& who : attackers) panels.push_back(level_panel(who, false));
    if (plot_png(dir + "/levels.png", panels, int(panels.size()))) note("levels.png");
  }
  for (const std::string& who : attackers) {
    const std::string name = "curves-" + who + ".png";
    if (plot_png(dir + "/" + name, {panel(who, true), panel(who, false)}, 2)) note(name);
  }
  if (attackers.size() == 2) {
    const std::string name = "curves-compare.png";
    if (plot_png(dir + "/" + name,
                 {panel("paper", true), panel("adaptive", true), panel("paper", false), panel("adaptive", false)}, 2))
      note(name);
  }
  return j;
}

}  // namespace sl::experiment
