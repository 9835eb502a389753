// splitleak eval: test accuracy of a trained model, whole or split at a named layer (edge head, then
// cloud tail); the split must give the very same predictions as the whole model.
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/ui.h"
#include "cli/validate.h"
#include "datasets/fetch.h"

namespace sl::cli {

namespace {

struct EvalOptions {
  std::string model, split, dataset, data, device = "cpu";
  int64_t batch = 500, limit = -1;
  int threads = 0;
  bool json = false, allow_nonfinite = false;
};

void run_eval(const EvalOptions& o) {
  set_threads(o.threads);
  Device device = parse_device(o.device);
  LoadedModel lm = load_model(o.model, device, o.allow_nonfinite);
  std::string ds = o.dataset.empty() ? lm.dataset : o.dataset;
  SL_CHECK(!ds.empty(), ValueError, o.model, ": the checkpoint does not say its data set; pass --dataset");
  data::Dataset test = data::load_dataset(ds, data::find_data_dir(o.data), false, o.limit);
  check_not_empty(test, "test set", "no accuracy to measure");
  check_fits(lm.model, test);
  auto& net = *lm.model.net;
  SplitModel sm;
  if (!o.split.empty()) sm = net.split(o.split);  // ValueError listing the names for an unknown layer

  EvalResult whole = evaluate(net, test, device, o.batch, "eval whole");
  nlohmann::json j{{"model", o.model},      {"arch", lm.model.arch},      {"dataset", ds},     {"device", device.str()},
                   {"images", whole.count}, {"accuracy", whole.accuracy}, {"loss", whole.loss}};
  ui::Table t({"model", "split", "accuracy", "loss", "intermediate/img", "seconds"});
  t.add({lm.model.arch, "(whole)", ui::percent(whole.accuracy), ui::fixed(whole.loss, 4), "-",
         ui::fixed(whole.seconds, 2)});

  if (!o.split.empty()) {
    int64_t inter = 0;
    EvalResult split = evaluate_with(
        [&](const Tensor& x) {
          Tensor v = sm.head->forward(x);  // what the edge sends
          inter = v.numel() / v.size(0);
          return sm.tail->forward(v);
        },
        test, device, o.batch, "eval split");
    int64_t differ = 0;
    for (size_t i = 0; i < split.predictions.size(); ++i) differ += split.predictions[i] != whole.predictions[i];
    t.add({lm.model.arch, o.split, ui::percent(split.accuracy), ui::fixed(split.loss, 4), ui::bytes(double(inter) * 4),
           ui::fixed(split.seconds, 2)});
    j["split"] = {{"layer", o.split},
                  {"accuracy", split.accuracy},
                  {"loss", split.loss},
                  {"intermediate_floats", inter},
                  {"predictions_differing", differ}};
    if (!o.json) {
      t.print();
      std::cout << "\nsplit at " << o.split << ": " << differ << " of " << whole.count
                << " predictions differ from the whole model" << (differ == 0 ? " (identical)" : "") << "\n";
    } else {
      std::cout << json_text(j) << std::endl;
    }
    SL_CHECK(differ == 0, Error, "split at ", o.split, " changed ", differ, " predictions");
    return;
  }
  if (o.json)
    std::cout << json_text(j) << std::endl;
  else
    t.print();
}

}  // namespace

void add_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  auto* c = app.add_subcommand("eval", "Test accuracy of a trained model, whole or split at a layer");
  c->add_option("--model", o->model, "Checkpoint written by `splitleak train`")->required()->check(valid::path());
  c->add_option("--split", o->split, "Split at this layer: edge head, then cloud tail");
  c->add_option("--dataset", o->dataset, "mnist or cifar10 (default: the checkpoint's)")
      ->check(CLI::IsMember({"mnist", "cifar10"}));
  c->add_option("--data", o->data, "Data directory (default: $SPLITLEAK_DATA or data/)")->check(valid::path());
  c->add_option("--device", o->device, "cpu or cuda[:N]");
  c->add_option("--batch", o->batch, "Batch size")->check(valid::integer(1, valid::kMaxBatch));
  c->add_option("--limit", o->limit, "Use only the first N test images")->check(valid::integer(1, valid::kMaxImages));
  c->add_option("--threads", o->threads, "CPU threads (default 0: all cores)")->check(valid::threads());
  c->add_flag("--allow-nonfinite", o->allow_nonfinite, "Load a checkpoint holding NaN or inf weights (with a warning)");
  c->add_flag("--json", o->json, "Print one JSON object with the results");
  c->callback([o] { run_eval(*o); });
}

}  // namespace sl::cli
