// splitleak split: cuts a trained model into the edge's checkpoint (the head) and the cloud's (the tail), each
// carrying the fingerprint of every split it serves; the cloud's file holds none of the edge's weights.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/validate.h"
#include "datasets/fetch.h"
#include "experiment/common.h"
#include "experiment/ui.h"
#include "runtime/deploy.h"
#include "split/defense.h"
#include "tensor/io.h"

namespace sl::cli {

using namespace sl::experiment;  // load_model, parse_device, json_text, command_line, ...

namespace {

struct SplitOptions {
  std::string model, at, out, dataset, data;
  int64_t calibrate = 0;  // CIS: channel ranks of each split on this many of the edge's training images
  bool json = false;
};

void run_split(const SplitOptions& o) {
  namespace fs = std::filesystem;
  // Where the two files go: a folder (created if missing) whose edge.ckpt and cloud.ckpt may only be regular files.
  io::check_output_dir(o.out, "--out");
  for (auto* f : {"edge.ckpt", "cloud.ckpt"}) io::check_output_file((fs::path(o.out) / f).string(), "--out");
  LoadedModel lm = load_model(o.model, Device::cpu());
  SL_CHECK(lm.ckpt.get("role").empty(), ValueError, o.model, " is already one side of a split; give the whole model");
  std::vector<std::string> names = runtime::parse_split_list(*lm.model.net, o.at);

  // CIS's rank allocation: each split's channel ranks, measured once on the edge's own training images and stored
  // in edge.ckpt (the cloud's file never holds them).
  std::map<std::string, DefenseCalibration> cal;
  if (o.calibrate > 0) {
    const std::string ds = o.dataset.empty() ? lm.dataset : o.dataset;
    SL_CHECK(!ds.empty(), ValueError, o.model, ": the checkpoint does not say its data set; pass --dataset");
    for (auto& name : names)
      if (name != "input")
        cal[name] = calibrate_on_training_data(SplitPipeline(lm.model, name), ds, data::find_data_dir(o.data),
                                               Device::cpu(), o.calibrate);
  }

  auto meta = lm.ckpt.meta;
  meta["source_model"] = o.model;
  meta["split_date"] = ui::now_iso8601();
  meta["split_command"] = command_line();
  runtime::SplitFiles f = runtime::write_split(lm.model, names, o.out, meta, cal);

  Shape in = lm.model.batch_shape(1);
  nlohmann::json j{{"model", o.model},
                   {"arch", lm.model.arch},
                   {"edge", f.edge_path},
                   {"cloud", f.cloud_path},
                   {"edge_parameters", f.edge_params},
                   {"cloud_parameters", f.cloud_params}};
  ui::Table t({"split", "edge layers", "sent per image", "fingerprint"});
  for (auto& s : f.splits) {
    int64_t bytes = s.sample_shape.numel() * 4;
    t.add(
        {s.name, std::to_string(s.edge_layers), ui::bytes(double(bytes)) + " " + s.sample_shape.str(), s.fingerprint});
    j["splits"].push_back({{"name", s.name},
                           {"edge_layers", s.edge_layers},
                           {"sample_shape", s.sample_shape.dims()},
                           {"bytes_per_image", bytes},
                           {"fingerprint", s.fingerprint}});
    if (cal.count(s.name))
      j["splits"].back()["cis_calibration"] = {{"images", cal[s.name].images},
                                               {"channel_rank", cal[s.name].channel_rank}};
  }
  if (o.json) {
    std::cout << json_text(j) << std::endl;
    return;
  }
  std::cout << lm.model.arch << " (input " << in.str() << ") split for deployment:\n"
            << "  " << f.edge_path << ": the edge's head, " << f.edge_params << " parameters ("
            << ui::bytes(double(f.edge_params) * 4) << ")\n"
            << "  " << f.cloud_path << ": the cloud's tail, " << f.cloud_params << " parameters ("
            << ui::bytes(double(f.cloud_params) * 4) << ")\n";
  if (!cal.empty())
    std::cout << "  CIS channel calibration of every split (" << o.calibrate << " training images) stored in "
              << f.edge_path << "\n";
  std::cout << "\n";
  t.print();
}

}  // namespace

void add_split(CLI::App& app) {
  auto o = std::make_shared<SplitOptions>();
  auto* c = app.add_subcommand("split", "Cut a trained model into edge.ckpt (head) and cloud.ckpt (tail) for serving");
  c->add_option("--model", o->model, "Checkpoint written by `splitleak train`")->required()->check(valid::path());
  c->add_option("--at", o->at, "Split after this layer; a comma-separated list, or 'all' (with 'input': cloud-only)")
      ->required();
  c->add_option("--out", o->out, "Folder for edge.ckpt and cloud.ckpt")->required()->check(valid::path());
  c->add_option("--calibrate", o->calibrate,
                "Measure each split's channel ranks on N of the edge's training images and store them in edge.ckpt "
                "(for --defense cis with alloc=rank; 256 is what eval and defend use)")
      ->check(valid::integer(1, valid::kMaxImages));
  c->add_option("--dataset", o->dataset, "--calibrate: mnist, cifar10 or folder:DIR (default: the checkpoint's)")
      ->check(valid::dataset());
  c->add_option("--data", o->data, "--calibrate: data directory (default: $SPLITLEAK_DATA or data/)")
      ->check(valid::path());
  c->add_flag("--json", o->json, "Print one JSON object");
  c->callback([o] { run_split(*o); });
}

}  // namespace sl::cli
