// splitleak attack: the flags of the three model-inversion attacks of He, Zhang & Lee (white-box rMLE, black-box
// inverse network, query-free shadow model) and of `attack table`; the runs are experiment/attack_run.h.
#include "cli/commands.h"
#include "cli/validate.h"
#include "experiment/attack_run.h"

namespace sl::cli {

namespace {

using experiment::AttackOptions;

void add_common_options(CLI::App* c, AttackOptions& o) {
  c->add_option("--model", o.model, "Checkpoint written by `splitleak train`, or an ONNX model (FILE.onnx)")
      ->required()
      ->check(valid::path());
  c->add_option("--images", o.images, "Attack the first N test images (default: the first of each class)")
      ->check(valid::integer(1, valid::kMaxImages));
  c->add_flag("--all", o.all, "Attack the whole test set");
  c->add_option("--preset", o.preset,
                "Settings to start from: reference (the authors' code) or tuned (better on MNIST)")
      ->check(CLI::IsMember({"reference", "tuned"}));
  c->add_option("--iters", o.iters, "rMLE iterations (default 5000; CIFAR query-free 500)")
      ->check(valid::integer(1, 10000000));
  c->add_option("--lr", o.lr, "rMLE learning rate (reference 1e-2, tuned 0.05; CIFAR query-free 0.1)")
      ->check(valid::positive());
  c->add_option("--tv", o.tv, "λ, weight of total variation (default per preset and split: docs/attacks.md)")
      ->check(valid::non_negative());
  c->add_option("--tv-beta", o.tv_beta,
                "β of TV: 2 = the reference's squared TV (reference), else Σ(dh²+dw²)^(β/2) (tuned: 1)")
      ->check(valid::real(0, 2));
  c->add_option("--l2", o.l2, "λ2, weight of mean(x²) (default 0)")->check(valid::non_negative());
  c->add_option("--optimizer", o.optimizer, "rMLE optimiser: adam (AMSGrad, eps 1e-3; default) or sgd")
      ->check(CLI::IsMember({"adam", "sgd"}));
  c->add_option("--schedule", o.schedule, "rMLE learning rate: constant (reference) or cosine (tuned)")
      ->check(CLI::IsMember({"constant", "cosine"}));
  c->add_flag("--project", o.project, "Clamp the image into the valid pixel range after every rMLE step (tuned: on)");
  c->add_flag("--no-project", o.no_project, "Clamp only the final result (reference)")->excludes("--project");
  c->add_option("--epochs", o.epochs, "Training epochs of the decoder / shadow (default 2)")
      ->check(valid::integer(1, 100000));
  c->add_option("--fit-lr", o.fit_lr, "Learning rate of the decoder / shadow (default 2e-2 / 1e-3, cosine decay)")
      ->check(valid::positive());
  c->add_option("--fit-batch", o.fit_batch, "Batch size of the decoder / shadow training")
      ->check(valid::integer(1, valid::kMaxBatch));
  c->add_option("--attacker-data", o.attacker_data,
                "The attacker's own images: train (default) or test (minus the victims)")
      ->check(CLI::IsMember({"train", "test"}));
  c->add_option("--attacker-limit", o.attacker_limit, "Use only the first N attacker images")
      ->check(valid::integer(1, valid::kMaxImages));
  c->add_option("--batch", o.batch, "Victims reconstructed at once")->check(valid::integer(1, valid::kMaxBatch));
  c->add_option("--dataset", o.dataset,
                "mnist, cifar10, or folder:DIR (PNG images, one sub-folder per class) (default: the checkpoint's)")
      ->check(valid::dataset());
  c->add_option("--data", o.data, "Data directory (default: $SPLITLEAK_DATA or data/)")->check(valid::path());
  c->add_option("--device", o.device, "cpu or cuda[:N]");
  c->add_option("--seed", o.seed, "Seed of the decoder / shadow initialisation and shuffling")->check(valid::seed());
  c->add_option("--threads", o.threads, "CPU threads (default 0: all cores)")->check(valid::threads());
  c->add_flag("--json", o.json, "Print one JSON object with the results");
  c->add_flag("--allow-nonfinite", o.allow_nonfinite, "Load a checkpoint holding NaN or inf weights (with a warning)");
  c->add_option("--defense", o.defense,
                "Defenses on the edge, e.g. dropout:0.6 or gaussian:0.5@input,dropout:0.3 (docs/defenses.md)")
      ->check(valid::defense());
  c->add_option("--defense-seed", o.defense_seed, "Seed of the defense's draws")->check(valid::seed());
  c->add_option("--observed", o.observed,
                "Attack what a cloud recorded (`splitleak serve --record FILE`) instead of recomputing the "
                "victims' observations; --defense then names the edge's defense for --adaptive")
      ->check(valid::path());
  c->add_flag("--adaptive", o.adaptive, "The attacker knows the defense (kind, place, level) and models it");
  c->add_option("--eot", o.eot, "Draws of an input defense the adaptive attacker averages over (default 4)")
      ->check(valid::integer(1, 64));
}

}  // namespace

void add_attack(CLI::App& app) {
  auto* attack = app.add_subcommand("attack", "Model-inversion attacks on a split model (He, Zhang & Lee)");
  attack->require_subcommand(1);
  const std::pair<const char*, const char*> kinds[] = {
      {"whitebox", "White-box rMLE: optimise an image until the edge model maps it onto the observed features"},
      {"blackbox", "Black-box inverse network: query the edge with own images, train a decoder features -> image"},
      {"queryfree", "Query-free: train a shadow edge model through the cloud part, then rMLE through the shadow"}};
  for (auto [name, help] : kinds) {
    auto o = std::make_shared<AttackOptions>();
    auto* c = attack->add_subcommand(name, help);
    add_common_options(c, *o);
    c->add_option("--split", o->split, "Split layer (e.g. conv1, ReLU2), or prob / label (white-box)")->required();
    c->add_option("--out", o->out, "Folder for grid.png, results.csv, results.json (created if missing)")
        ->required()
        ->check(valid::path());
    inv::AttackKind kind = inv::attack_kind(name);
    c->callback([o, kind] { experiment::run_attack_command(*o, kind); });
  }
  auto o = std::make_shared<AttackOptions>();
  o->preset = "tuned";  // the table shows what the attacks reach; --preset reference for the authors' settings
  auto* t = attack->add_subcommand("table", "Reproduce the MNIST table of He, Zhang & Lee: 3 attacks x {conv1, ReLU2}");
  add_common_options(t, *o);
  t->add_option("--out", o->out, "Folder for table.md, table.csv and one result folder per cell (default runs/table)")
      ->check(valid::path());
  t->callback([o] { experiment::run_table(*o); });
}

}  // namespace sl::cli
