#include "experiment/partition.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "datasets/fetch.h"
#include "datasets/image_io.h"
#include "experiment/common.h"
#include "experiment/defend.h"
#include "experiment/plot.h"
#include "experiment/results.h"
#include "experiment/ui.h"
#include "inversion/attack.h"
#include "inversion/metrics.h"
#include "nn/profile.h"
#include "tensor/io.h"

namespace sl::experiment {

namespace {

// A number followed by a unit from `units` (case-insensitive; "" for none), times the unit's factor.
double number_with_unit(const std::string& text, const std::vector<std::pair<std::string, double>>& units,
                        const std::string& what, const std::string& example) {
  std::string t;
  for (char ch : text)
    if (ch != ' ') t += char(std::tolower(static_cast<unsigned char>(ch)));
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  const std::string unit = end ? std::string(end) : "";
  SL_CHECK(end != t.c_str() && std::isfinite(v) && v > 0, ValueError, what, ": '", text,
           "' is not a positive number with a unit (e.g. ", example, ")");
  for (auto& [u, f] : units)
    if (unit == u) return v * f;
  std::string list;
  for (auto& [u, f] : units) list += (list.empty() ? "" : ", ") + (u.empty() ? std::string("(none)") : u);
  throw ValueError(str(what, ": unknown unit '", unit, "' in '", text, "' (units: ", list, ")"));
}

}  // namespace

double parse_bandwidth(const std::string& text) {
  return number_with_unit(text,
                          {{"", 1},
                           {"bit", 1},
                           {"bit/s", 1},
                           {"bps", 1},
                           {"kbit", 1e3},
                           {"kbit/s", 1e3},
                           {"kbps", 1e3},
                           {"mbit", 1e6},
                           {"mbit/s", 1e6},
                           {"mbps", 1e6},
                           {"gbit", 1e9},
                           {"gbit/s", 1e9},
                           {"gbps", 1e9}},
                          "--bandwidth", "1Mbit, 100Mbit, 2.5e6");
}

int64_t parse_bytes(const std::string& text) {
  double v = number_with_unit(text,
                              {{"", 1},
                               {"b", 1},
                               {"kb", 1e3},
                               {"mb", 1e6},
                               {"gb", 1e9},
                               {"kib", 1024.0},
                               {"mib", 1024.0 * 1024},
                               {"gib", 1024.0 * 1024 * 1024}},
                              "--edge-memory", "2MB, 512KiB");
  SL_CHECK(v < 9e18, ValueError, "--edge-memory: '", text, "' is too large");
  return int64_t(std::llround(v));
}

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string piece;
  while (std::getline(ss, piece, ','))
    if (!piece.empty()) out.push_back(piece);
  return out;
}

struct AttackAtLayer {
  double psnr = 0, ssim = 0, recovery = 0, mse = 0, leakage_bits = 0, seconds = 0;
  Tensor reconstructions;
};

struct LayerRow {
  SplitCost cost;
  std::map<std::string, AttackAtLayer> by_attack;
  double worst_ssim = 0, worst_leakage = 0, worst_psnr = 0;
};

nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

std::string fmt(double v, int d) { return ui::fixed(v, d); }

}  // namespace

Scenario parse_scenario(const std::string& text) {
  Scenario sc;
  sc.text = text;
  const size_t comma = text.find(',');
  const std::string bw = text.substr(0, comma);
  SL_CHECK(!bw.empty(), ValueError, "--scenario '", text, "': expected BANDWIDTH[,EDGE_MEMORY], e.g. 1Mbit,2MB");
  try {
    sc.bandwidth_bps = parse_bandwidth(bw);
    if (comma != std::string::npos) sc.edge_memory_bytes = parse_bytes(text.substr(comma + 1));
  } catch (const ValueError& e) {
    throw ValueError(str("--scenario '", text, "': ", e.what()));
  }
  return sc;
}

void run_partition_command(const PartitionOptions& o) {
  set_threads(o.threads);
  // Everything the command line says is checked before the model and the data are loaded.
  io::check_output_dir(o.out, "--out");
  for (const char* f :
       {"results.json", "results.csv", "table.txt", "layers.png", "latency-leakage.png", "recovered.png"})
    io::check_output_file(o.out + "/" + f, "--out");
  Link link{parse_bandwidth(o.bandwidth), o.rtt_ms / 1000.0};
  SL_CHECK(std::isfinite(o.rtt_ms) && o.rtt_ms >= 0, ValueError, "--rtt-ms must be >= 0, got ", o.rtt_ms);
  SplitConstraints limits;
  if (!o.edge_memory.empty()) limits.edge_memory_bytes = parse_bytes(o.edge_memory);
  if (!std::isnan(o.max_ssim)) limits.max_ssim = o.max_ssim;
  if (!std::isnan(o.max_leakage)) limits.max_leakage_bits = o.max_leakage;
  std::vector<Scenario> scenarios;
  for (auto& text : o.scenarios) scenarios.push_back(parse_scenario(text));
  std::vector<inv::AttackKind> attacks;
  for (auto& a : split_list(o.attacks)) attacks.push_back(inv::attack_kind(a));  // ValueError listing them
  SL_CHECK(!attacks.empty(), ValueError, "--attacks: no attack given (whitebox, blackbox, queryfree)");

  const Device device = parse_device(o.device);
  LoadedModel lm = load_model(o.model, device, o.allow_nonfinite);
  const Model& model = lm.model;
  const ModelProfile profile = profile_of(model);
  std::vector<SplitCost> costs = split_costs(model);
  std::vector<std::string> splits;
  if (o.splits.empty()) {
    for (auto& f : profile.layers)
      if (f.kind != LayerKind::flatten) splits.push_back(f.name);  // a flatten sends what the layer before it sends
  } else {
    for (auto& s : split_list(o.splits)) {
      model.net->index_of(s);  // ValueError listing the names
      splits.push_back(s);
    }
  }
  const std::string ds = o.dataset.empty() ? lm.dataset : o.dataset;
  SL_CHECK(!ds.empty(), ValueError, o.model, ": the checkpoint does not say its data set; pass --dataset");
  const std::string dir = data::find_data_dir(o.data);
  data::Dataset test = data::load_dataset(ds, dir, false);
  check_not_empty(test, "test set", "no images to attack");
  inv::check_model_fits_data(model, test);
  std::vector<int64_t> victim_index;
  if (o.images > 0)
    for (int64_t i = 0; i < std::min(o.images, test.size()); ++i) victim_index.push_back(i);
  else
    victim_index = inv::first_of_each_class(test);
  data::Dataset victims = inv::select(test, victim_index);
  const QuickSettings quick;
  int64_t attacker_limit = o.attacker_limit >= 0 ? o.attacker_limit : o.quick ? quick.attacker_limit : -1;
  bool learns = false;
  for (auto& a : attacks) learns = learns || a != inv::AttackKind::whitebox;
  data::Dataset attacker = test.slice(0, 0);
  if (learns) {
    attacker = data::load_dataset(ds, dir, true, attacker_limit);
    check_not_empty(attacker, "attacker's data set", "the black-box and query-free attacks learn from its images");
  }
  const double var = pixel_variance(test);

  std::cerr << "partition: " << model.arch << ", " << splits.size() << " splits x " << attacks.size() << " attack(s), "
            << victims.size() << " victim images, "
            << (learns ? "attacker data train (" + std::to_string(attacker.size()) + " images), " : "") << device.str();
  if (o.quick)
    std::cerr << "; --quick: " << (o.iters >= 0 ? o.iters : quick.iters) << " rMLE iterations, "
              << (o.epochs >= 0 ? o.epochs : quick.epochs) << " decoder/shadow epoch(s), " << attacker.size()
              << " attacker images";
  std::cerr << "\n";

  // Costs: analytic, then each layer's forward time on this device.
  measure_split_times(model, costs, 64, 5);
  std::map<std::string, SplitCost> cost_of;
  for (auto& c : costs) cost_of[c.split] = c;

  auto t_start = Clock::now();
  ui::Progress progress("partition", int64_t(splits.size() * attacks.size()), "attack");
  std::vector<LayerRow> rows;
  int64_t done = 0;
  for (const std::string& split : splits) {
    LayerRow row;
    row.cost = cost_of.at(split);
    for (const inv::AttackKind& kind : attacks) {
      inv::AttackConfig c = inv::default_config(kind, profile, split, o.preset);
      c.device = device;
      c.seed = o.seed;
      c.fit.seed = o.seed;
      if (o.quick) {
        c.rmle.iters = quick.iters;
        c.fit.epochs = quick.epochs;
      }
      if (o.iters >= 0) c.rmle.iters = o.iters;
      if (o.epochs >= 0) c.fit.epochs = o.epochs;
      inv::AttackResult r = inv::run_attack(model, victims, attacker, c);
      AttackAtLayer a;
      a.psnr = r.mean_psnr();
      a.ssim = r.mean_ssim();
      a.recovery = r.recovery_rate;
      a.mse = inv::mean_squared_error(r.originals, r.reconstructions);
      a.leakage_bits = inv::leakage_index(var, a.mse);
      a.seconds = r.train_seconds + r.invert_seconds;
      a.reconstructions = r.reconstructions;
      if (row.by_attack.empty() || a.ssim > row.worst_ssim) row.worst_ssim = a.ssim;
      if (row.by_attack.empty() || a.leakage_bits > row.worst_leakage) row.worst_leakage = a.leakage_bits;
      if (row.by_attack.empty() || a.psnr > row.worst_psnr) row.worst_psnr = a.psnr;
      row.by_attack[inv::attack_name(kind)] = a;
      progress.update(++done,
                      split + " " + inv::attack_name(kind) + " PSNR " + fmt(a.psnr, 2) + " SSIM " + fmt(a.ssim, 3));
    }
    rows.push_back(row);
  }
  progress.finish();
  const double total_s = std::chrono::duration<double>(Clock::now() - t_start).count();

  std::vector<SplitCandidate> cands;
  for (auto& r : rows) cands.push_back({r.cost, r.worst_ssim, r.worst_leakage});
  const SplitChoice choice = choose_split(cands, link, limits);
  // The other scenarios, from the same measurements.
  std::vector<SplitChoice> scenario_choice;
  for (auto& sc : scenarios) {
    SplitConstraints l = limits;
    l.edge_memory_bytes = sc.edge_memory_bytes;
    scenario_choice.push_back(choose_split(cands, Link{sc.bandwidth_bps, link.rtt_s}, l));
  }

  // ---- the table ----------------------------------------------------------------------------------------------
  std::vector<std::string> header{"split"};
  for (auto& a : attacks) {
    header.push_back(inv::attack_name(a) + " PSNR");
    header.push_back("SSIM");
    header.push_back("bit/px");
  }
  for (const char* h : {"sent", "edge MFLOP", "edge mem", "edge ms", "cloud ms", "latency ms", "allowed"})
    header.push_back(h);
  ui::Table t(header);
  std::ostringstream csv;
  const RunInfo info = this_run(device.str(), model.arch, test.name);
  nlohmann::json settings{{"attacks", o.attacks},
                          {"bandwidth_bps", link.bandwidth_bps},
                          {"rtt_s", link.rtt_s},
                          {"edge_memory_bytes", limits.edge_memory_bytes ? nlohmann::json(*limits.edge_memory_bytes)
                                                                         : nlohmann::json(nullptr)},
                          {"max_ssim", limits.max_ssim ? nlohmann::json(*limits.max_ssim) : nlohmann::json(nullptr)},
                          {"max_leakage_bits", limits.max_leakage_bits ? nlohmann::json(*limits.max_leakage_bits)
                                                                       : nlohmann::json(nullptr)},
                          {"quick", o.quick},
                          {"preset", o.preset},
                          {"victims", victims.size()},
                          {"attacker_images", attacker.size()},
                          {"pixel_variance", var}};
  csv << csv_preamble("partition", info, settings);
  csv << "split,attack,psnr,ssim,recovery_rate,mse,leakage_bits,attack_seconds,bytes_sent,edge_flops,edge_param_bytes,"
         "edge_peak_act_bytes,edge_ms,cloud_ms,latency_ms,allowed\n";
  nlohmann::json j = run_json(info);
  j["settings"] = settings;
  j["attack_seconds_total"] = total_s;
  for (size_t i = 0; i < rows.size(); ++i) {
    const LayerRow& r = rows[i];
    const bool chosen = choice.index && *choice.index == i;
    std::vector<std::string> cells{r.cost.split + (chosen ? " *" : "")};
    nlohmann::json jl{{"split", r.cost.split},
                      {"bytes_sent", r.cost.bytes_sent},
                      {"edge_flops", r.cost.edge_flops},
                      {"edge_param_bytes", r.cost.edge_param_bytes},
                      {"edge_peak_act_bytes", r.cost.edge_peak_act_bytes},
                      {"edge_seconds", r.cost.edge_seconds},
                      {"cloud_seconds", r.cost.cloud_seconds},
                      {"latency_seconds", choice.latency_s[i]},
                      {"worst_ssim", r.worst_ssim},
                      {"worst_leakage_bits", r.worst_leakage},
                      {"excluded_by", choice.why_not[i]},
                      {"chosen", chosen}};
    for (auto& kind : attacks) {
      const std::string n = inv::attack_name(kind);
      const AttackAtLayer& a = r.by_attack.at(n);
      cells.push_back(fmt(a.psnr, 2));
      cells.push_back(fmt(a.ssim, 3));
      cells.push_back(fmt(a.leakage_bits, 2));
      jl["attacks"][n] = {{"psnr", finite_or_null(a.psnr)}, {"ssim", a.ssim},
                          {"recovery_rate", a.recovery},    {"mse", a.mse},
                          {"leakage_bits", a.leakage_bits}, {"seconds", a.seconds}};
      csv << r.cost.split << ',' << n << ',' << a.psnr << ',' << a.ssim << ',' << a.recovery << ',' << a.mse << ','
          << a.leakage_bits << ',' << a.seconds << ',' << r.cost.bytes_sent << ',' << r.cost.edge_flops << ','
          << r.cost.edge_param_bytes << ',' << r.cost.edge_peak_act_bytes << ',' << r.cost.edge_seconds * 1e3 << ','
          << r.cost.cloud_seconds * 1e3 << ',' << choice.latency_s[i] * 1e3 << ','
          << (choice.why_not[i].empty() ? "yes" : "no") << '\n';
    }
    cells.push_back(ui::bytes(double(r.cost.bytes_sent)));
    cells.push_back(fmt(r.cost.edge_flops / 1e6, 3));
    cells.push_back(ui::bytes(double(r.cost.edge_memory())));
    cells.push_back(fmt(r.cost.edge_seconds * 1e3, 3));
    cells.push_back(fmt(r.cost.cloud_seconds * 1e3, 3));
    cells.push_back(fmt(choice.latency_s[i] * 1e3, 2));
    cells.push_back(choice.why_not[i].empty() ? "yes" : choice.why_not[i]);
    t.add(cells);
    j["layers"].push_back(jl);
  }
  // Does the leakage index order the layers as PSNR does? Per attack, over pairs of layers: concordant, discordant
  // (listed), or tied in the index (both floored at 0: no better than the mean image by MSE).
  std::ostringstream order;
  for (auto& kind : attacks) {
    const std::string n = inv::attack_name(kind);
    int concordant = 0, tied = 0;
    std::vector<std::string> discordant;
    for (size_t a = 0; a < rows.size(); ++a)
      for (size_t b = a + 1; b < rows.size(); ++b) {
        const AttackAtLayer &x = rows[a].by_attack.at(n), &y = rows[b].by_attack.at(n);
        const double dp = x.psnr - y.psnr, dl = x.leakage_bits - y.leakage_bits;
        if (dl == 0)
          ++tied;
        else if (dp * dl > 0)
          ++concordant;
        else
          discordant.push_back(rows[a].cost.split + "/" + rows[b].cost.split);
      }
    order << "  " << n << ": " << concordant << " pairs of layers ordered alike, " << discordant.size()
          << " differently" << (discordant.empty() ? "" : " (");
    for (size_t i = 0; i < discordant.size(); ++i) order << (i ? ", " : "") << discordant[i];
    order << (discordant.empty() ? "" : ")") << ", " << tied << " tied in the index\n";
    j["index_vs_psnr"][n] = {{"concordant", concordant}, {"discordant", discordant}, {"tied", tied}};
  }
  j["recommendation"] = {{"split", choice.index ? nlohmann::json(cands[*choice.index].cost.split) : nlohmann::json()},
                         {"reason", choice.reason}};
  std::ostringstream sctext;
  for (size_t k = 0; k < scenarios.size(); ++k) {
    const Scenario& sc = scenarios[k];
    const SplitChoice& c = scenario_choice[k];
    j["scenarios"].push_back(
        {{"scenario", sc.text},
         {"bandwidth_bps", sc.bandwidth_bps},
         {"edge_memory_bytes", sc.edge_memory_bytes ? nlohmann::json(*sc.edge_memory_bytes) : nlohmann::json(nullptr)},
         {"split", c.index ? nlohmann::json(cands[*c.index].cost.split) : nlohmann::json()},
         {"latency_seconds", c.index ? nlohmann::json(c.latency_s[*c.index]) : nlohmann::json(nullptr)},
         {"reason", c.reason}});
    sctext << "  " << fmt(sc.bandwidth_bps / 1e6, 3) << " Mbit/s"
           << (sc.edge_memory_bytes ? ", edge memory " + ui::bytes(double(*sc.edge_memory_bytes)) : "") << ": "
           << c.reason << "\n";
  }
  const std::string scenario_block =
      scenarios.empty() ? "" : "\nother scenarios (the same measurements, rtt and thresholds):\n" + sctext.str();

  // ---- figures ------------------------------------------------------------------------------------------------
  std::vector<std::string> written{"results.json", "results.csv", "table.txt"};
  std::vector<PlotPanel> panels(2);
  panels[0].title = model.arch + ": attack PSNR per split layer (x: layer index, see results.csv)";
  panels[0].xlabel =
      "split layer (1 = " + splits.front() + ", " + std::to_string(splits.size()) + " = " + splits.back() + ")";
  panels[0].ylabel = "PSNR dB";
  panels[0].hline = 10;
  panels[1] = panels[0];
  panels[1].title = model.arch + ": attack SSIM per split layer";
  panels[1].ylabel = "SSIM";
  panels[1].hline = 0.3;
  panels[1].yrange = std::make_pair(-0.1, 1.05);
  int color = 0;
  for (auto& kind : attacks) {
    PlotSeries ps{inv::attack_name(kind), {}, color, false}, ss{inv::attack_name(kind), {}, color, false};
    for (size_t i = 0; i < rows.size(); ++i) {
      const AttackAtLayer& a = rows[i].by_attack.at(inv::attack_name(kind));
      if (std::isfinite(a.psnr)) ps.points.push_back({double(i + 1), a.psnr});
      ss.points.push_back({double(i + 1), a.ssim});
    }
    panels[0].series.push_back(ps);
    panels[1].series.push_back(ss);
    ++color;
  }
  if (plot_png(o.out + "/layers.png", panels, 2)) written.push_back("layers.png");
  // Latency against the worst attack's SSIM and leakage index, one point per split, the chosen one marked.
  auto latency_panel = [&](bool ssim) {
    PlotPanel p;
    p.title = std::string("latency vs ") + (ssim ? "worst SSIM" : "worst leakage index") + " at " +
              fmt(link.bandwidth_bps / 1e6, 3) + " Mbit/s";
    p.xlabel = "latency ms";
    p.ylabel = ssim ? "worst SSIM" : "worst leakage index, bit/px";
    if (ssim && limits.max_ssim) p.hline = *limits.max_ssim;
    if (!ssim && limits.max_leakage_bits) p.hline = *limits.max_leakage_bits;
    PlotSeries all{"splits (in layer order)", {}, 0, false};
    for (size_t i = 0; i < rows.size(); ++i)
      all.points.push_back({choice.latency_s[i] * 1e3, ssim ? rows[i].worst_ssim : rows[i].worst_leakage});
    p.series.push_back(all);
    if (choice.index) {
      const size_t c = *choice.index;
      p.series.push_back(PlotSeries{"chosen: " + rows[c].cost.split,
                                    {{choice.latency_s[c] * 1e3, ssim ? rows[c].worst_ssim : rows[c].worst_leakage}},
                                    1,
                                    false});
    }
    return p;
  };
  if (plot_png(o.out + "/latency-leakage.png", {latency_panel(true), latency_panel(false)}, 2))
    written.push_back("latency-leakage.png");
  {
    std::vector<Tensor> grid{data::denormalize(victims.images, victims.norm, true)};
    data::GridOptions g;
    g.scale = victims.height() < 64 ? 2 : 1;
    g.row_labels = {"original"};
    const std::string first = inv::attack_name(attacks.front());
    for (auto& r : rows) {
      grid.push_back(r.by_attack.at(first).reconstructions);
      g.row_labels.push_back(first + " " + r.cost.split);
    }
    data::write_grid(o.out + "/recovered.png", grid, g);
    written.push_back("recovered.png");
  }
  io::write_file_atomic(o.out + "/results.csv", csv.str(), "output");
  io::write_file_atomic(o.out + "/results.json", json_text(j, 2) + "\n", "output");
  std::ostringstream txt;
  txt << t.str() << "\nleakage index vs PSNR (pairs of layers):\n"
      << order.str() << "\nrecommendation: " << choice.reason << "\n"
      << scenario_block;
  io::write_file_atomic(o.out + "/table.txt", txt.str(), "output");

  if (o.json) {
    std::cout << json_text(j) << std::endl;
    return;
  }
  std::cout << "\nlink " << fmt(link.bandwidth_bps / 1e6, 3) << " Mbit/s, rtt " << fmt(o.rtt_ms, 1) << " ms"
            << (limits.edge_memory_bytes ? ", edge memory " + ui::bytes(double(*limits.edge_memory_bytes)) : "")
            << (limits.max_ssim ? ", max SSIM " + fmt(*limits.max_ssim, 3) : "")
            << (limits.max_leakage_bits ? ", max leakage " + fmt(*limits.max_leakage_bits, 2) + " bit/px" : "")
            << "; bit/px = leakage index; edge mem = parameters + peak activations of one image\n";
  t.print();
  std::cout << "\nleakage index vs PSNR (pairs of layers):\n" << order.str();
  std::cout << "\nrecommendation: " << choice.reason << "\n"
            << scenario_block << "\nattacks took " << ui::duration(total_s) << "; written to " << o.out << ":";
  for (auto& w : written) std::cout << " " << w;
  std::cout << "\n";
}

}  // namespace sl::experiment
