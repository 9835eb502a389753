// splitleak defend: the flags; the sweep is experiment/defend_run.h (and defend.h).
#include "cli/commands.h"
#include "cli/validate.h"
#include "experiment/defend_run.h"

namespace sl::cli {

void add_defend(CLI::App& app) {
  auto o = std::make_shared<experiment::DefendOptions>();
  auto* c = app.add_subcommand("defend", "Defenses against the attacks: accuracy vs PSNR/SSIM per level (paper §IV)");
  c->add_option("--model", o->model, "Checkpoint written by `splitleak train`, or an ONNX model (FILE.onnx)")
      ->required()
      ->check(valid::path());
  c->add_option("--out", o->out, "Folder for results.json/csv, the grids and the plots (created if missing)")
      ->required()
      ->check(valid::path());
  c->add_option("--figure", o->figure, "Run a figure of the paper: 9, 11, 13 (MNIST LeNet), 10, 12 (CIFAR10CNN)")
      ->check(CLI::IsMember({9, 10, 11, 12, 13}));
  c->add_flag("--quick", o->quick, "8 levels per line and 1000 rMLE iterations (stated in the output)");
  c->add_option("--split", o->split, "Split layer (e.g. ReLU2)");
  c->add_option("--defense", o->defense,
                "Defense kind(s) without level: gaussian, laplace, dropout[,rescale][@input]; comma-separated")
      ->check(valid::defense(false));
  c->add_option("--where", o->where,
                "input, intermediate, or both comma-separated (default: the spec's, else "
                "intermediate)");
  c->add_option("--levels", o->levels, "Levels, comma-separated: σ, b or r (default: the paper's sweep)")
      ->check(valid::number_list());
  c->add_option("--attack", o->attack, "whitebox (default), blackbox or queryfree")
      ->check(CLI::IsMember({"whitebox", "blackbox", "queryfree"}));
  c->add_flag("--adaptive", o->adaptive, "An attacker who knows the defense (kind, place, level) and models it")
      ->excludes(c->add_flag("--compare", o->compare, "Run the paper's attacker and the adaptive one side by side"));
  c->add_option("--images", o->images, "Attack the first N test images (default: the first of each class)")
      ->check(valid::integer(1, valid::kMaxImages));
  c->add_option("--preset", o->preset, "Attack settings: reference (the authors' code, default) or tuned")
      ->check(CLI::IsMember({"reference", "tuned"}));
  c->add_option("--iters", o->iters, "rMLE iterations (default 5000; 1000 with --quick)")
      ->check(valid::integer(0, 10000000));
  c->add_option("--lr", o->lr, "rMLE learning rate")->check(valid::positive());
  c->add_option("--tv", o->tv, "λ, weight of total variation (default per preset and split)")
      ->check(valid::non_negative());
  c->add_option("--eot", o->eot, "Draws of an input defense the adaptive white-box attacker averages over")
      ->check(valid::integer(1, 64));
  c->add_option("--epochs", o->epochs, "Training epochs of the decoder / shadow")->check(valid::integer(1, 100000));
  c->add_option("--attacker-data", o->attacker_data, "The attacker's own images: train (default) or test")
      ->check(CLI::IsMember({"train", "test"}));
  c->add_option("--attacker-limit", o->attacker_limit, "Use only the first N attacker images")
      ->check(valid::integer(1, valid::kMaxImages));
  c->add_option("--limit", o->limit, "Accuracy on the first N test images only (default: all)")
      ->check(valid::integer(1, valid::kMaxImages));
  c->add_option("--batch", o->batch, "Accuracy batch size")->check(valid::integer(1, valid::kMaxBatch));
  c->add_option("--seed", o->seed, "Seed of the attacker (decoder / shadow, its own draws)")->check(valid::seed());
  c->add_option("--defense-seed", o->defense_seed, "Seed of the defense's draws")->check(valid::seed());
  c->add_option("--dataset", o->dataset,
                "mnist, cifar10, or folder:DIR (PNG images, one sub-folder per class) (default: the checkpoint's)")
      ->check(valid::dataset());
  c->add_option("--data", o->data, "Data directory (default: $SPLITLEAK_DATA or data/)")->check(valid::path());
  c->add_option("--device", o->device, "cpu or cuda[:N]");
  c->add_option("--threads", o->threads, "CPU threads (default 0: all cores)")->check(valid::threads());
  c->add_flag("--json", o->json, "Print one JSON object with the results");
  c->add_flag("--allow-nonfinite", o->allow_nonfinite, "Load a checkpoint holding NaN or inf weights (with a warning)");
  c->callback([o] { experiment::run_defend_command(*o); });
}

}  // namespace sl::cli
