// splitleak eval: the flags; the run is experiment/eval_run.h.
#include "cli/commands.h"
#include "cli/validate.h"
#include "experiment/eval_run.h"

namespace sl::cli {

void add_eval(CLI::App& app) {
  auto o = std::make_shared<experiment::EvalOptions>();
  auto* c = app.add_subcommand("eval", "Test accuracy of a trained model, whole, split at a layer, or defended");
  c->add_option("--model", o->model, "Checkpoint written by `splitleak train`, or an ONNX model (FILE.onnx)")
      ->required()
      ->check(valid::path());
  c->add_option("--split", o->split, "Split at this layer: edge head, then cloud tail");
  c->add_option("--dataset", o->dataset,
                "mnist, cifar10, or folder:DIR (PNG images, one sub-folder per class) (default: the checkpoint's)")
      ->check(valid::dataset());
  c->add_option("--data", o->data, "Data directory (default: $SPLITLEAK_DATA or data/)")->check(valid::path());
  c->add_option("--device", o->device, "cpu or cuda[:N]");
  c->add_option("--batch", o->batch, "Batch size")->check(valid::integer(1, valid::kMaxBatch));
  c->add_option("--limit", o->limit, "Use only the first N test images")->check(valid::integer(1, valid::kMaxImages));
  c->add_option("--threads", o->threads, "CPU threads (default 0: all cores)")->check(valid::threads());
  c->add_flag("--allow-nonfinite", o->allow_nonfinite, "Load a checkpoint holding NaN or inf weights (with a warning)");
  c->add_flag("--json", o->json, "Print one JSON object with the results");
  c->add_option("--defense", o->defense,
                "Defenses on the edge, e.g. dropout:0.6 or gaussian:0.5@input (docs/defenses.md); needs --split")
      ->check(valid::defense());
  c->add_option("--defense-seed", o->defense_seed, "Seed of the defense's draws (query i = test image i)")
      ->check(valid::seed());
  c->callback([o] { experiment::run_eval(*o); });
}

}  // namespace sl::cli
