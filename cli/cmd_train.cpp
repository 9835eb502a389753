// splitleak train: the flags; the training loop is experiment/trainer.h.
#include "cli/commands.h"
#include "cli/validate.h"
#include "experiment/trainer.h"

namespace sl::cli {

void add_train(CLI::App& app) {
  auto o = std::make_shared<experiment::TrainOptions>();
  auto* c = app.add_subcommand("train", "Train a model (LeNet on MNIST, CIFAR10CNN on CIFAR-10)");
  c->add_option("--dataset", o->dataset, "mnist or cifar10")->check(CLI::IsMember({"mnist", "cifar10"}));
  c->add_option("--model", o->model, "lenet or cifar10cnn")->check(CLI::IsMember({"lenet", "cifar10cnn"}));
  c->add_option("--epochs", o->epochs, "Training epochs")->check(valid::integer(1, 100000));
  c->add_option("--batch", o->batch, "Batch size")->check(valid::integer(1, valid::kMaxBatch));
  c->add_option("--lr", o->lr, "Learning rate (halved every --lr-step epochs)")->check(valid::positive());
  c->add_option("--lr-step", o->lr_step, "Epochs between halvings of the learning rate")
      ->check(valid::integer(1, 100000));
  c->add_option("--eps", o->eps, "Adam epsilon")->check(valid::positive());
  c->add_option("--optimizer", o->optimizer, "adam (AMSGrad) or sgd")->check(CLI::IsMember({"adam", "sgd"}));
  c->add_option("--seed", o->seed, "Seed for initialisation, shuffling and augmentation")->check(valid::seed());
  c->add_option("--device", o->device, "cpu or cuda[:N]");
  c->add_option(
       "--precision", o->precision,
       "CUDA convolutions: fp32 (FFMA, default), tf32 (tensor cores) or 3xtf32 (tensor cores, float32-level error)")
      ->check(CLI::IsMember({"fp32", "tf32", "3xtf32"}));
  c->add_option("--matmul-precision", o->matmul_precision, "CUDA linear layers: fp32, tf32 or 3xtf32")
      ->check(CLI::IsMember({"fp32", "tf32", "3xtf32"}));
  c->add_option("--data", o->data, "Data directory (default: $SPLITLEAK_DATA or data/)")->check(valid::path());
  c->add_option("--out", o->out, "Checkpoint to write (default runs/MODEL-DATASET.ckpt); replaces only a regular file")
      ->check(valid::path());
  c->add_option("--limit", o->limit, "Use only the first N training images")
      ->check(valid::integer(1, valid::kMaxImages));
  c->add_option("--test-limit", o->test_limit, "Use only the first N test images")
      ->check(valid::integer(1, valid::kMaxImages));
  c->add_option("--max-steps", o->max_steps, "Stop after N optimisation steps in all")
      ->check(valid::integer(1, int64_t(1) << 40));
  c->add_option("--threads", o->threads, "CPU threads (default 0: all cores)")->check(valid::threads());
  c->add_option("--sync-every", o->sync_every, "Read the running loss/accuracy from the device every N steps")
      ->check(valid::integer(1, 1000000));
  c->add_flag("--no-augment", o->no_augment, "No CIFAR-10 augmentation");
  c->add_flag("--json", o->json, "Print one JSON object with the results at the end");
  c->callback([o] { experiment::run_train(*o); });
}

}  // namespace sl::cli
