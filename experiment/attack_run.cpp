// splitleak attack: the three model-inversion attacks of He, Zhang & Lee against a trained model split at a
// named layer (white-box rMLE, black-box inverse network, query-free shadow model), scored with PSNR, SSIM
// and the recovery rate; and `attack table`, which reproduces the paper's MNIST table in one go.
//
// Outputs in --out: grid.png (originals over reconstructions, labelled "true>predicted"), results.csv and
// results.json (one row per image, plus the means, the settings, the device, the date and the command).
#include "experiment/attack_run.h"

#include <cmath>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "datasets/fetch.h"
#include "datasets/image_io.h"
#include "experiment/common.h"
#include "experiment/results.h"
#include "experiment/ui.h"
#include "inversion/attack.h"
#include "runtime/deploy.h"
#include "runtime/observations.h"
#include "tensor/io.h"

namespace sl::experiment {

namespace {

// Everything a run needs once: the model on its device, the victims, the attacker's data.
struct Scene {
  LoadedModel lm;
  Device device;
  data::Dataset test, victims, attacker;
  std::vector<int64_t> victim_index;  // positions of the victims in the test set (= their query numbers)
  DefenseChain defenses;              // on the edge (none by default)
  Tensor observed;                    // --observed: the recorded rows of the victims, in victim order
  std::string observed_note;          // what the recording held
};

// --observed: the records of this model's split (by fingerprint: the recording must come from a deployment of this
// very model, `splitleak split` of the same checkpoint), one row per test image. The victims become those of the
// chosen ones that the recording holds, in the same order.
void load_observed(const AttackOptions& o, const std::string& split, Scene& s) {
  SL_CHECK(split != "prob" && split != "label", ValueError, "--observed needs a split layer; '", split,
           "' is the model's output, which the cloud computes itself");
  std::string fp = runtime::split_points(s.lm.model, {split}).front().fingerprint;
  std::string note;
  std::vector<runtime::Observation> records = runtime::read_observations(o.observed, &note);
  std::map<int64_t, Tensor> rows = runtime::observed_images(records, fp);
  if (rows.empty()) {
    std::set<std::string> seen;
    for (auto& r : records) seen.insert(r.fingerprint);
    std::string list;
    for (auto& f : seen) list += (list.empty() ? "" : ", ") + f;
    throw ValueError(str(o.observed, ": no records of ", fp, " (this model split at ", split, "); the recording holds ",
                         records.empty() ? std::string("no records") : list));
  }
  std::vector<int64_t> kept;
  for (int64_t i : s.victim_index)
    if (rows.count(i)) kept.push_back(i);
  SL_CHECK(!kept.empty(), ValueError, o.observed, ": none of the chosen test images is recorded (it holds ",
           rows.size(), " images from index ", rows.begin()->first, "); choose them with --images N or --all");
  Shape shape = rows.at(kept[0]).shape();
  shape[0] = int64_t(kept.size());
  s.observed = Tensor::empty(shape, DType::f32, Device::cpu());
  for (size_t k = 0; k < kept.size(); ++k) {
    const Tensor& r = rows.at(kept[k]);
    SL_CHECK(r.dtype() == DType::f32 && r.numel() * int64_t(kept.size()) == s.observed.numel(), ValueError, o.observed,
             ": the record of image ", kept[k], " is ", r.str(), ", not one row of ", shape.str());
    Tensor dst = s.observed.slice(int64_t(k), int64_t(k) + 1);
    dst.copy_(r.contiguous());
  }
  s.observed_note =
      str(o.observed, ": ", records.size(), " records, ", rows.size(), " images of ", fp, "; ", kept.size(), " of the ",
          s.victim_index.size(), " chosen images recorded", note.empty() ? std::string() : "; " + note);
  if (kept.size() != s.victim_index.size()) {
    s.victim_index = kept;
    s.victims = inv::select(s.test, s.victim_index);
  }
}

// Loads the model, the victims and (when the attack learns from data) the attacker's images. Splits are
// checked first, before any data set is read.
// `attacker`: how many of the attacker's own images to load (-1: all; nullopt: none; attacker_images_needed).
Scene load_scene(const AttackOptions& o, const std::vector<std::string>& splits, std::optional<int64_t> attacker) {
  const bool need_attacker = attacker.has_value();
  Scene s;
  s.device = parse_device(o.device);
  s.lm = load_model(o.model, s.device, o.allow_nonfinite);
  for (auto& split : splits)
    if (split != "prob" && split != "label") s.lm.model.net->index_of(split);  // ValueError listing the names
  std::string ds = o.dataset.empty() ? s.lm.dataset : o.dataset;
  SL_CHECK(!ds.empty(), ValueError, o.model, ": the checkpoint does not say its data set; pass --dataset");
  std::string dir = data::find_data_dir(o.data);
  if (!o.defense.empty()) {
    auto specs = parse_defenses(o.defense);  // ValueError for a bad spec
    for (auto& split : splits)
      SL_CHECK(split != "prob" && split != "label", ValueError, "--defense needs a split layer; '", split,
               "' is the model's output");
    DefenseCalibration cal;
    if (needs_calibration(specs)) {
      SL_CHECK(splits.size() == 1, ValueError, "--defense ", o.defense, ": a calibrated defense needs one split");
      cal = calibrate_on_training_data(SplitPipeline(s.lm.model, splits[0]), ds, dir, s.device);
    }
    s.defenses = make_defenses(specs, o.defense_seed, &cal);
  }
  s.test = data::load_dataset(ds, dir, false);
  check_not_empty(s.test, "test set", "no images to attack");
  inv::check_model_fits_data(s.lm.model, s.test);
  if (o.all) {
    for (int64_t i = 0; i < s.test.size(); ++i) s.victim_index.push_back(i);
  } else if (o.images > 0) {
    for (int64_t i = 0; i < std::min(o.images, s.test.size()); ++i) s.victim_index.push_back(i);
  } else {
    s.victim_index = inv::first_of_each_class(s.test);  // the paper's figures: one image per class
  }
  s.victims = inv::select(s.test, s.victim_index);
  if (!o.observed.empty()) load_observed(o, splits.at(0), s);
  SL_CHECK(o.attacker_data == "train" || o.attacker_data == "test", ValueError,
           "--attacker-data must be train or test, got '", o.attacker_data, "'");
  if (!need_attacker) {
    s.attacker = s.test.slice(0, 0);
    s.attacker.split = "none";
  } else if (o.attacker_data == "train") {
    s.attacker = data::load_dataset(ds, dir, true, *attacker);
  } else {  // the test set minus the victims: the attacker never trains on the images it attacks
    s.attacker = inv::without(s.test, s.victim_index);
    const int64_t limit = *attacker;
    if (limit >= 0 && limit < s.attacker.size()) s.attacker = s.attacker.slice(0, limit);
  }
  if (need_attacker)
    check_not_empty(s.attacker, "attacker's data set",
                    "the black-box and query-free attacks learn from the attacker's own images (check --attacker-data "
                    "and --all: the test set minus the victims may hold none)");
  return s;
}

inv::AttackConfig make_config(const AttackOptions& o, const inv::AttackKind& kind, const Model& model,
                              const std::string& split, Device device) {
  inv::AttackConfig c = inv::default_config(kind, profile_of(model), split, o.preset);
  c.device = device;
  c.batch = o.batch;
  c.seed = o.seed;
  c.fit.seed = o.seed;
  c.fit.batch = o.fit_batch;
  if (o.iters >= 0) c.rmle.iters = o.iters;
  if (!std::isnan(o.lr)) c.rmle.lr = o.lr;
  if (!std::isnan(o.tv)) c.rmle.tv = o.tv;
  if (!std::isnan(o.tv_beta)) c.rmle.tv_beta = o.tv_beta;
  if (!std::isnan(o.l2)) c.rmle.l2 = o.l2;
  if (!o.optimizer.empty()) c.rmle.optimizer = o.optimizer;
  if (!o.schedule.empty()) c.rmle.schedule = o.schedule;
  if (o.project) c.rmle.project = true;
  if (o.no_project) c.rmle.project = false;
  if (o.epochs >= 0) c.fit.epochs = o.epochs;
  if (!std::isnan(o.fit_lr)) c.fit.lr = o.fit_lr;
  c.adaptive = o.adaptive;
  c.adaptive_options.eot_draws = o.eot;
  return c;
}

// The attack against the scene's split, defended as the scene says; the victims are the edge's queries numbered by
// their test-set index.
inv::AttackResult run_on_scene(const Scene& s, const inv::AttackConfig& c, const inv::PhaseProgress& progress) {
  SplitPipeline pipe = inv::pipeline_for(s.lm.model, c.split, s.defenses);
  if (s.observed.defined()) {  // what the cloud recorded, row r for victim r
    inv::Observation obs;
    obs.kind = inv::target_of(c.split);
    obs.v = s.observed.to(c.device);
    obs.groups.push_back(inv::ObservedGroup{0, obs.rows(), s.defenses});
    return inv::run_attack_observed(pipe, obs, s.victims, s.attacker, c, progress);
  }
  std::vector<uint64_t> queries(s.victim_index.begin(), s.victim_index.end());
  return inv::run_attack(pipe, inv::target_of(c.split), s.victims, queries, s.attacker, c, progress);
}

nlohmann::json config_json(const inv::AttackConfig& c, const std::string& preset, const DefenseChain& defenses) {
  nlohmann::json j{{"attack", inv::attack_name(c.kind)},
                   {"split", c.split},
                   {"preset", preset},
                   {"batch", c.batch},
                   {"seed", c.seed}};
  if (c.kind != inv::AttackKind::blackbox)
    j["rmle"] = {{"iters", c.rmle.iters},       {"lr", c.rmle.lr},           {"tv", c.rmle.tv},
                 {"tv_beta", c.rmle.tv_beta},   {"l2", c.rmle.l2},           {"optimizer", c.rmle.optimizer},
                 {"adam_eps", c.rmle.adam_eps}, {"amsgrad", c.rmle.amsgrad}, {"schedule", c.rmle.schedule},
                 {"project", c.rmle.project}};
  if (c.kind != inv::AttackKind::whitebox)
    j["fit"] = {{"epochs", c.fit.epochs},
                {"batch", c.fit.batch},
                {"lr", c.fit.lr},
                {"schedule", c.fit.schedule},
                {"limit", c.fit.limit}};
  if (!defenses.empty()) j["defense"] = chain_str(defenses);
  if (c.adaptive) j["adaptive"] = {{"eot_draws", c.adaptive_options.eot_draws}};
  return j;
}

// Writes a text file atomically, only over a regular file (tensor/io.h).
void write_text(const std::string& path, const std::string& text) { io::write_file_atomic(path, text, "output"); }

const char* const kResultFiles[] = {"grid.png", "results.csv", "results.json"};

// Checks, before any work, that the results of one attack can be written into dir.
void check_results_dir(const std::string& dir, const std::string& what) {
  io::check_output_dir(dir, what);
  for (const char* f : kResultFiles) io::check_output_file(dir + "/" + f, what);
}

// Writes grid.png, results.csv and results.json for one attack into dir (created if missing); returns the JSON.
nlohmann::json write_results(const std::string& dir, const Scene& s, const inv::AttackConfig& c,
                             const std::string& preset, const inv::AttackResult& r) {
  const auto n = r.labels.size();
  data::GridOptions g;
  g.scale = s.victims.height() < 64 ? 3 : 1;
  g.row_labels = {"original", inv::attack_name(c.kind) + " " + c.split};
  if (n <= 32)
    for (size_t i = 0; i < n; ++i)
      g.col_labels.push_back(std::to_string(r.labels[i]) + ">" + std::to_string(r.predicted[i]));
  int64_t shown = std::min<int64_t>(int64_t(n), 32);
  data::write_grid(dir + "/grid.png", {r.originals.slice(0, shown), r.reconstructions.slice(0, shown)}, g);

  std::ostringstream csv;
  csv << "image,test_index,label,predicted,psnr,ssim\n";
  nlohmann::json j{{"model", s.lm.model.arch},
                   {"dataset", s.test.name},
                   {"device", s.device.str()},
                   {"date", ui::now_iso8601()},
                   {"commit", build_commit()},
                   {"command", command_line()},
                   {"config", config_json(c, preset, s.defenses)},
                   {"observed", s.observed_note.empty() ? nlohmann::json() : nlohmann::json(s.observed_note)},
                   {"attacker_data", s.attacker.split + " (" + std::to_string(s.attacker.size()) + " images)"},
                   {"detail", r.detail},
                   {"mean_psnr", r.mean_psnr()},
                   {"mean_ssim", r.mean_ssim()},
                   {"recovery_rate", r.recovery_rate},
                   {"train_seconds", r.train_seconds},
                   {"invert_seconds", r.invert_seconds},
                   {"ssim_data_range", 1.0}};
  for (size_t i = 0; i < n; ++i) {
    csv << i << ',' << s.victim_index[i] << ',' << r.labels[i] << ',' << r.predicted[i] << ','
        << ui::fixed(r.psnr[i], 4) << ',' << ui::fixed(r.ssim[i], 4) << '\n';
    j["images"].push_back({{"test_index", s.victim_index[i]},
                           {"label", r.labels[i]},
                           {"predicted", r.predicted[i]},
                           {"psnr", r.psnr[i]},
                           {"ssim", r.ssim[i]}});
  }
  write_text(dir + "/results.csv", csv.str());
  write_text(dir + "/results.json", json_text(j, 2) + "\n");
  return j;
}

}  // namespace

void run_attack_command(const AttackOptions& o, const inv::AttackKind& kind) {
  set_threads(o.threads);
  check_results_dir(o.out, "--out");  // before the model and the data are loaded
  const auto need =
      attacker_images_needed(kind == inv::AttackKind::whitebox, o.adaptive && has_cis(o.defense), o.attacker_limit);
  Scene s = load_scene(o, {o.split}, need);
  inv::AttackConfig c = make_config(o, kind, s.lm.model, o.split, s.device);
  std::cerr << "attack: " << inv::attack_name(kind) << " on " << s.lm.model.arch << " split at " << o.split << ", "
            << s.victims.size() << " victim image(s), " << s.device.str();
  if (kind != inv::AttackKind::whitebox)
    std::cerr << ", attacker data " << s.attacker.split << " (" << s.attacker.size() << " images)";
  if (!s.defenses.empty())
    std::cerr << ", defense " << chain_str(s.defenses) << " (seed " << o.defense_seed << ")"
              << (o.adaptive ? ", adaptive attacker" : "");
  std::cerr << "\n";
  if (!s.observed_note.empty()) std::cerr << "attack: observed " << s.observed_note << "\n";
  ui::PhaseLines lines;
  inv::AttackResult r = run_on_scene(s, c, lines.sink());
  nlohmann::json j = write_results(o.out, s, c, o.preset, r);
  if (o.json) {
    std::cout << json_text(j) << std::endl;
    return;
  }
  ui::Table t({"attack", "split", "images", "PSNR dB", "SSIM", "recovered", "train s", "invert s"});
  t.add({inv::attack_name(kind), o.split, std::to_string(r.labels.size()), ui::fixed(r.mean_psnr(), 2),
         ui::fixed(r.mean_ssim(), 3), ui::percent(r.recovery_rate, 0), ui::fixed(r.train_seconds, 1),
         ui::fixed(r.invert_seconds, 1)});
  std::cout << "\n";
  t.print();
  std::cout << "\n" << r.detail << "\nwritten: " << o.out << "/grid.png, results.csv, results.json\n";
}

namespace {

// The paper's numbers (He, Zhang & Lee, MNIST table), PSNR / SSIM.
struct PaperCell {
  const char* attack;
  const char* split;
  double psnr, ssim;
};
constexpr PaperCell kPaper[] = {
    {"whitebox", "conv1", 39.69, 1.00}, {"whitebox", "ReLU2", 15.10, 0.60},  {"blackbox", "conv1", 40.72, 0.99},
    {"blackbox", "ReLU2", 20.81, 0.80}, {"queryfree", "conv1", 17.86, 0.64}, {"queryfree", "ReLU2", 8.03, 0.38},
};

}  // namespace

void run_table(const AttackOptions& o) {
  set_threads(o.threads);
  const std::string out = o.out.empty() ? "runs/table" : o.out;
  io::check_output_dir(out, "--out");  // every output location, before the model and the data are loaded
  for (const char* f : {"table.md", "table.csv", "grid.png"}) io::check_output_file(out + "/" + f, "--out");
  for (const PaperCell& cell : kPaper) check_results_dir(out + "/" + cell.attack + "-" + cell.split, "--out");
  SL_CHECK(o.observed.empty(), ValueError,
           "--observed attacks one split: give the attack (whitebox, blackbox, "
           "queryfree) and --split, not table");
  Scene s = load_scene(o, {"conv1", "ReLU2"}, o.attacker_limit);
  SL_CHECK(s.lm.model.arch == "lenet", ValueError, "attack table reproduces the MNIST LeNet table of He, Zhang & Lee; ",
           o.model, " is a ", s.lm.model.arch, " model");
  std::cerr << "attack table (" << o.preset << " preset): 3 attacks x {conv1, ReLU2} on " << s.victims.size()
            << " images, attacker data " << s.attacker.split << " (" << s.attacker.size() << " images), "
            << s.device.str() << "\n";
  ui::Table t(
      {"attack", "split", "PSNR dB", "paper", "SSIM", "paper", "paper -2 dB/-0.05 or better", "recovered", "seconds"});
  std::ostringstream md, csv;
  std::vector<Tensor> grid_rows;  // originals, then each cell's reconstructions
  std::vector<std::string> grid_labels{"original"};
  md << "| attack | split | PSNR dB (paper) | SSIM (paper) | recovered | seconds |\n|---|---|---|---|---|---|\n";
  csv << "attack,split,psnr,ssim,paper_psnr,paper_ssim,recovery_rate,train_seconds,invert_seconds\n";
  double total_s = 0;
  // Every cell runs before anything is written: a run that fails half-way (a diverged attack) writes no results.
  std::vector<std::pair<inv::AttackConfig, inv::AttackResult>> done;
  for (const PaperCell& cell : kPaper) {
    inv::AttackKind kind = inv::attack_kind(cell.attack);
    inv::AttackConfig c = make_config(o, kind, s.lm.model, cell.split, s.device);
    ui::PhaseLines lines(std::string(cell.attack) + " " + cell.split + ": ");
    inv::AttackResult r = run_on_scene(s, c, lines.sink());
    done.emplace_back(c, r);
    if (grid_rows.empty()) grid_rows.push_back(r.originals);
    grid_rows.push_back(r.reconstructions);
    grid_labels.push_back(std::string(cell.attack) + " " + cell.split);
    double secs = r.train_seconds + r.invert_seconds;
    total_s += secs;
    bool ok = r.mean_psnr() >= cell.psnr - 2 && r.mean_ssim() >= cell.ssim - 0.05;
    t.add({cell.attack, cell.split, ui::fixed(r.mean_psnr(), 2), ui::fixed(cell.psnr, 2), ui::fixed(r.mean_ssim(), 3),
           ui::fixed(cell.ssim, 2), ok ? "yes" : "NO", ui::percent(r.recovery_rate, 0), ui::fixed(secs, 1)});
    md << "| " << cell.attack << " | " << cell.split << " | " << ui::fixed(r.mean_psnr(), 2) << " ("
       << ui::fixed(cell.psnr, 2) << ") | " << ui::fixed(r.mean_ssim(), 3) << " (" << ui::fixed(cell.ssim, 2) << ") | "
       << ui::percent(r.recovery_rate, 0) << " | " << ui::fixed(secs, 1) << " |\n";
    csv << cell.attack << ',' << cell.split << ',' << r.mean_psnr() << ',' << r.mean_ssim() << ',' << cell.psnr << ','
        << cell.ssim << ',' << r.recovery_rate << ',' << r.train_seconds << ',' << r.invert_seconds << '\n';
  }
  md << "\nPreset " << o.preset << ", " << s.victims.size() << " MNIST test images, " << s.device.str() << ", "
     << ui::now_iso8601() << ", commit " << build_commit() << ", total " << ui::fixed(total_s, 1) << " s. Command: `"
     << command_line() << "`\n";
  for (size_t i = 0; i < done.size(); ++i)
    write_results(out + "/" + kPaper[i].attack + "-" + kPaper[i].split, s, done[i].first, o.preset, done[i].second);
  write_text(out + "/table.md", md.str());
  write_text(out + "/table.csv", csv.str());
  data::GridOptions g;
  g.scale = 2;
  g.row_labels = grid_labels;
  data::write_grid(out + "/grid.png", grid_rows, g);
  std::cout << "\n" << o.preset << " preset, " << s.victims.size() << " images (PSNR/SSIM means)\n";
  t.print();
  std::cout << "\ntotal " << ui::duration(total_s) << "; written: " << out
            << "/table.md, table.csv, grid.png and one folder per cell\n";
}

}  // namespace sl::experiment
