// The training loop (experiment/trainer.h): trains LeNet or the CIFAR CNN with the reference recipe (Adam, lr 1e-3,
// eps 1e-3, AMSGrad, lr halved every 20 epochs, cross-entropy), evaluates on the test set after every epoch and
// writes a checkpoint atomically.
//
// The step loop never waits for the GPU: batches are uploaded through pinned staging buffers, loss and hit
// counts are summed on the device (kern::accumulate_metrics) and read every --sync-every steps, and on CUDA the
// whole step (zero_grad, forward, loss, backward, fused Adam, metrics) is captured once into a CUDA graph and
// replayed for every full batch (autograd/graph_step.h); the last, partial batch of an epoch runs eagerly.
#include "experiment/trainer.h"

#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "autograd/graph_step.h"
#include "autograd/ops.h"
#include "datasets/fetch.h"
#include "datasets/loader.h"
#include "experiment/results.h"
#include "experiment/ui.h"
#include "nn/optim.h"
#include "tensor/io.h"

namespace sl::experiment {

TrainResult train_model(const TrainOptions& o) {
  set_threads(o.threads);
  Device device = parse_device(o.device);
  kern::set_cuda_matmul_precision(
      MatmulPrecisions{parse_matmul_precision(o.precision), parse_matmul_precision(o.matmul_precision)});
  // Where the checkpoint goes is checked before hours of training, not after: a regular file or nothing at the
  // path, in a folder that exists and is writable or can be created (created only when the checkpoint is saved).
  const std::string out = o.out.empty() ? "runs/" + o.model + "-" + o.dataset + ".ckpt" : o.out;
  io::check_output_file(out, "--out");
  std::string dir = data::find_data_dir(o.data);
  Generator gen(o.seed);
  default_generator().manual_seed(o.seed);
  Model model = make_model(o.model, gen);

  data::Dataset train = data::load_dataset(o.dataset, dir, true, o.limit);
  data::Dataset test = data::load_dataset(o.dataset, dir, false, o.test_limit);
  check_not_empty(train, "training set", "nothing to train on");
  check_not_empty(test, "test set", "nothing to measure the model on");
  check_fits(model, train);
  std::cerr << "train: " << o.model << " on " << train.name << " (" << train.size() << " train / " << test.size()
            << " test images, " << train.source << ") on " << device.str() << "\n";

  model.net->to(device);
  std::unique_ptr<Optimizer> opt;
  if (o.optimizer == "adam") {
    AdamArgs a;
    a.lr = o.lr;
    a.eps = o.eps;
    a.amsgrad = o.amsgrad;
    opt = std::make_unique<Adam>(model.net->parameters(), a);
  } else {
    SgdArgs a;
    a.lr = o.lr;
    a.momentum = o.momentum;
    opt = std::make_unique<SGD>(model.net->parameters(), a);
  }
  StepLR sched(*opt, o.lr_step, 0.5);

  data::LoaderOptions lo;
  lo.batch_size = o.batch;
  lo.seed = o.seed;
  if (o.dataset == "cifar10" && !o.no_augment) lo.augment = data::Augment::cifar10();
  data::Loader loader(train, lo);

  // One training step on device tensors {images, labels}; only device work, so it can be captured in a graph.
  // Loss * N, hits and N are summed into `totals` on the device, and each step's loss goes to a ring of
  // sync_every slots behind them (kern::accumulate_metrics), read at every synchronisation.
  // The ring holds the steps between two synchronisations: sized by the work, not by the flag.
  const int64_t ring = std::max<int64_t>(1, std::min<int64_t>(o.sync_every, loader.batches_per_epoch()));
  Tensor totals = Tensor::zeros(Shape{4 + ring}, DType::f64, device);
  ShapedStep stepper(
      [&](const std::vector<Tensor>& in) {
        opt->zero_grad();
        Tensor logits = model.net->forward(in[0]);
        Tensor loss = cross_entropy(logits, in[1]);
        loss.backward();
        opt->step();
        kern::accumulate_metrics(loss.detach(), logits.detach(), in[1], totals);
      },
      device);

  std::vector<EpochRow> rows;
  std::vector<double> step_losses;  // every step's loss, for the first-vs-last comparison
  int64_t steps = 0;
  bool stop = false;
  bool told_graph = false;
  EvalResult final_eval;
  double lr_now = opt->lr();
  for (int e = 0; e < o.epochs && !stop; ++e) {
    sched.set_epoch(e);
    if (opt->lr() != lr_now && !opt->lr_in_graph()) stepper.invalidate();  // the graph baked the old rate in
    lr_now = opt->lr();
    loader.set_epoch(e);
    model.net->train();
    int64_t nb = loader.batches_per_epoch();
    if (o.max_steps >= 0) nb = std::min(nb, o.max_steps - steps);
    ui::Progress prog("epoch " + std::to_string(e + 1) + "/" + std::to_string(o.epochs), nb, "batch");
    totals.zero_();
    double loss_sum = 0;
    int64_t seen = 0, correct = 0, synced_at = 0, logged = 0;
    data::Batch b;
    for (int64_t i = 0; i < nb; ++i) {
      b = loader.batch(i);
      stepper.run({b.images, b.labels});
      ++steps;
      if ((i + 1) % o.sync_every != 0 && i + 1 != nb) continue;
      // Read the device-side sums (the only synchronisation of the loop).
      Tensor t = totals.to(Device::cpu());
      const double* tv = t.data<double>();
      SL_CHECK(std::isfinite(tv[0]), ValueError, "training diverged: the loss became ",
               std::isnan(tv[0]) ? "NaN" : "inf", " in batches ", synced_at + 1, "..", i + 1, " of epoch ", e + 1,
               " (learning rate ", opt->lr(), " too large? try a smaller --lr); no checkpoint was written");
      loss_sum = tv[0];
      correct = int64_t(tv[1]);
      seen = int64_t(tv[2]);
      for (int64_t c = logged; c < int64_t(tv[3]); ++c) step_losses.push_back(tv[4 + c % ring]);
      logged = int64_t(tv[3]);
      synced_at = i + 1;
      prog.update(i + 1, "loss " + ui::fixed(loss_sum / double(std::max<int64_t>(seen, 1)), 4) + "  acc " +
                             ui::percent(double(correct) / double(std::max<int64_t>(seen, 1))) + "  " +
                             ui::fixed(double(seen) / std::max(prog.elapsed_s(), 1e-9), 0) + " img/s");
      if (!told_graph && stepper.captured() && stepper.captured()->replaying()) {
        told_graph = true;
        std::cerr << "train: step captured into a CUDA graph (" << stepper.captured()->graph_nodes()
                  << " nodes), replayed for every full batch\n";
      }
    }
    double secs = prog.elapsed_s();
    prog.finish("loss " + ui::fixed(seen ? loss_sum / double(seen) : 0, 4));
    model.net->eval();
    final_eval = evaluate(*model.net, test, device, 500);
    rows.push_back({e + 1, seen ? loss_sum / double(seen) : 0, seen ? double(correct) / double(seen) : 0,
                    final_eval.accuracy, secs, double(seen) / std::max(secs, 1e-9), opt->lr()});
    std::cerr << "epoch " << e + 1 << ": test accuracy " << ui::percent(final_eval.accuracy) << " ("
              << ui::fixed(secs, 1) << " s training)\n";
    if (o.max_steps >= 0 && steps >= o.max_steps) stop = true;
  }

  Checkpoint ckpt = make_checkpoint(*model.net, model.arch,
                                    {{"dataset", o.dataset},
                                     {"epochs", std::to_string(rows.size())},
                                     {"steps", std::to_string(steps)},
                                     {"batch", std::to_string(o.batch)},
                                     {"seed", std::to_string(o.seed)},
                                     {"test_accuracy", ui::fixed(final_eval.accuracy, 6)},
                                     {"device", device.str()},
                                     {"date", ui::now_iso8601()},
                                     {"commit", build_commit()},
                                     {"command", command_line()}});
  std::vector<std::string> bad = nonfinite_tensors(ckpt);
  SL_CHECK(bad.empty(), ValueError, "training diverged: weight ", bad.empty() ? "" : bad[0], " holds NaN or inf after ",
           steps, " steps (learning rate ", opt->lr(), " too large? try a smaller --lr); no checkpoint was written");
  save_checkpoint(out, ckpt);

  // Mean loss of the first and the last few steps: a quick read on whether training is learning.
  size_t k = std::max<size_t>(1, std::min<size_t>(20, step_losses.size() / 4));
  auto mean_of = [&](size_t b, size_t e) {
    double s = 0;
    for (size_t i = b; i < e; ++i) s += step_losses[i];
    return e > b ? s / double(e - b) : 0.0;
  };
  TrainResult result;
  result.rows = rows;
  result.steps = steps;
  result.final_eval = final_eval;
  result.checkpoint = out;
  result.device = device;
  result.k = k;
  result.loss_first = mean_of(0, std::min(k, step_losses.size()));
  result.loss_last = mean_of(step_losses.size() - std::min(k, step_losses.size()), step_losses.size());
  if (const CapturedStep* cs = stepper.captured()) {
    result.cuda_graph = {{"enabled", cs->graph_enabled()},
                         {"replays", cs->replays()},
                         {"captures", cs->captures()},
                         {"nodes", cs->graph_nodes()},
                         {"eager_steps", stepper.eager_calls() + cs->calls() - cs->replays()},
                         {"fallback_reason", cs->fallback_reason()}};
  }
  return result;
}

void run_train(const TrainOptions& o) {
  TrainResult result = train_model(o);
  const auto& rows = result.rows;
  const double first = result.loss_first, last = result.loss_last;
  const size_t k = result.k;
  const int64_t steps = result.steps;
  const EvalResult& final_eval = result.final_eval;
  const Device device = result.device;
  const std::string& out = result.checkpoint;
  if (o.json) {
    nlohmann::json j;
    j["loss_first_steps"] = first;
    j["loss_last_steps"] = last;
    j["model"] = o.model;
    j["dataset"] = o.dataset;
    j["device"] = device.str();
    if (device.is_cuda()) j["precision"] = {{"conv", o.precision}, {"linear", o.matmul_precision}};
    j["checkpoint"] = out;
    j["steps"] = steps;
    j["test_accuracy"] = final_eval.accuracy;
    j["test_loss"] = final_eval.loss;
    if (!result.cuda_graph.is_null()) j["cuda_graph"] = result.cuda_graph;
    for (auto& r : rows)
      j["epochs"].push_back({{"epoch", r.epoch},
                             {"train_loss", r.train_loss},
                             {"train_accuracy", r.train_acc},
                             {"test_accuracy", r.test_acc},
                             {"seconds", r.seconds},
                             {"images_per_s", r.images_per_s},
                             {"lr", r.lr}});
    std::cout << json_text(j) << std::endl;
    return;
  }
  ui::Table t({"epoch", "lr", "train loss", "train acc", "test acc", "seconds", "img/s"});
  for (auto& r : rows)
    t.add({std::to_string(r.epoch), ui::fixed(r.lr, 6), ui::fixed(r.train_loss, 4), ui::percent(r.train_acc),
           ui::percent(r.test_acc), ui::fixed(r.seconds, 2), ui::fixed(r.images_per_s, 0)});
  std::cout << "\n";
  t.print();
  std::cout << "\nloss: mean of the first " << k << " steps " << ui::fixed(first, 4) << ", of the last " << k
            << " steps " << ui::fixed(last, 4) << " (" << steps << " steps)\n";
  std::cout << "test accuracy " << ui::percent(final_eval.accuracy) << " on " << final_eval.count
            << " images; checkpoint written to " << out << "\n";
}

}  // namespace sl::experiment
