// splitleak eval: test accuracy of a trained model, whole or split at a named layer (the split pipeline: edge
// head, then cloud tail), and with defenses on the edge; without a defense the split must give the very same
// predictions as the whole model.
#include "experiment/eval_run.h"

#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "datasets/fetch.h"
#include "experiment/common.h"
#include "experiment/ui.h"
#include "split/pipeline.h"

namespace sl::experiment {

void run_eval(const EvalOptions& o) {
  set_threads(o.threads);
  Device device = parse_device(o.device);
  // The defense and the split are checked before the model and the data are loaded.
  SL_CHECK(o.defense.empty() || !o.split.empty(), ValueError,
           "--defense needs --split LAYER (where the edge hands over to the cloud)");
  const std::vector<DefenseSpec> specs = o.defense.empty() ? std::vector<DefenseSpec>{} : parse_defenses(o.defense);
  LoadedModel lm = load_model(o.model, device, o.allow_nonfinite);
  SplitPipeline pipe;
  if (!o.split.empty()) pipe = SplitPipeline(lm.model, o.split);  // ValueError listing the names for an unknown layer
  std::string ds = o.dataset.empty() ? lm.dataset : o.dataset;
  SL_CHECK(!ds.empty(), ValueError, o.model, ": the checkpoint does not say its data set; pass --dataset");
  // CIS rank allocation: calibrated once on the edge's own (training) images.
  DefenseCalibration cal;
  if (needs_calibration(specs)) cal = calibrate_on_training_data(pipe, ds, data::find_data_dir(o.data), device);
  DefenseChain defenses = specs.empty() ? DefenseChain{} : make_defenses(specs, o.defense_seed, &cal);
  SplitPipeline defended;
  if (!defenses.empty()) defended = pipe.with_defenses(defenses);
  data::Dataset test = data::load_dataset(ds, data::find_data_dir(o.data), false, o.limit);
  check_not_empty(test, "test set", "no accuracy to measure");
  check_fits(lm.model, test);
  auto& net = *lm.model.net;

  EvalResult whole = evaluate(net, test, device, o.batch, "eval whole");
  nlohmann::json j{{"model", o.model},      {"arch", lm.model.arch},      {"dataset", ds},     {"device", device.str()},
                   {"images", whole.count}, {"accuracy", whole.accuracy}, {"loss", whole.loss}};
  ui::Table t({"model", "split", "accuracy", "loss", "intermediate/img", "seconds"});
  t.add({lm.model.arch, "(whole)", ui::percent(whole.accuracy), ui::fixed(whole.loss, 4), "-",
         ui::fixed(whole.seconds, 2)});

  if (!o.split.empty()) {
    const int64_t inter = pipe.feature_elements();  // what the edge sends per image
    EvalResult split = evaluate_with([&](const Tensor& x, int64_t first) { return pipe.run(x, uint64_t(first)); }, test,
                                     device, o.batch, "eval split");
    int64_t differ = 0;
    for (size_t i = 0; i < split.predictions.size(); ++i) differ += split.predictions[i] != whole.predictions[i];
    t.add({lm.model.arch, o.split, ui::percent(split.accuracy), ui::fixed(split.loss, 4), ui::bytes(double(inter) * 4),
           ui::fixed(split.seconds, 2)});
    j["split"] = {{"layer", o.split},
                  {"accuracy", split.accuracy},
                  {"loss", split.loss},
                  {"intermediate_floats", inter},
                  {"predictions_differing", differ}};
    int64_t changed = 0;
    if (defended.defended()) {
      // Query i is test image i: a fresh draw per image, the same draws in every run with this seed.
      EvalResult d = evaluate_with([&](const Tensor& x, int64_t first) { return defended.run(x, uint64_t(first)); },
                                   test, device, o.batch, "eval defended");
      for (size_t i = 0; i < d.predictions.size(); ++i) changed += d.predictions[i] != whole.predictions[i];
      t.add({lm.model.arch, o.split + " + " + chain_str(defended.defenses()), ui::percent(d.accuracy),
             ui::fixed(d.loss, 4), ui::bytes(double(inter) * 4), ui::fixed(d.seconds, 2)});
      j["defense"] = {{"spec", chain_str(defended.defenses())},
                      {"seed", o.defense_seed},
                      {"accuracy", d.accuracy},
                      {"loss", d.loss},
                      {"predictions_changed", changed}};
    }
    if (!o.json) {
      t.print();
      std::cout << "\nsplit at " << o.split << ": " << differ << " of " << whole.count
                << " predictions differ from the whole model" << (differ == 0 ? " (identical)" : "") << "\n";
      if (defended.defended())
        std::cout << "defense " << chain_str(defended.defenses()) << " (seed " << o.defense_seed << "): " << changed
                  << " of " << whole.count << " predictions changed\n";
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

}  // namespace sl::experiment
