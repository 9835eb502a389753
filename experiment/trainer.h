// The one training loop: a model of the paper trained with the reference recipe (Adam, lr 1e-3, eps 1e-3, AMSGrad,
// lr halved every 20 epochs, cross-entropy; CIFAR-10 augmentation), evaluated on the test set after every epoch,
// written as a checkpoint (with its data set, accuracy, seed, device, date and command). What `splitleak train`
// runs; the report and other experiments call train_model directly.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiment/common.h"

namespace sl::experiment {

struct TrainOptions {
  std::string dataset = "mnist", model = "lenet", data, out, device = "cpu", optimizer = "adam";
  std::string precision = "fp32", matmul_precision = "fp32";
  int epochs = 3, threads = 0, lr_step = 20, sync_every = 100;
  int64_t batch = 32, limit = -1, test_limit = -1, max_steps = -1;
  double lr = 1e-3, eps = 1e-3, momentum = 0.9;
  uint64_t seed = 1;
  bool json = false, no_augment = false, amsgrad = true;
};

struct EpochRow {
  int epoch;
  double train_loss, train_acc, test_acc, seconds, images_per_s, lr;
};

struct TrainResult {
  std::vector<EpochRow> rows;
  int64_t steps = 0;
  EvalResult final_eval;
  std::string checkpoint;  // where it was written
  Device device = Device::cpu();
  size_t k = 0;                          // steps averaged for the first / last loss
  double loss_first = 0, loss_last = 0;  // mean loss of the first and the last k steps
  nlohmann::json cuda_graph;             // capture statistics (null without a captured step)
};

// Trains and writes the checkpoint; progress lines on stderr. Errors (a diverging loss, NaN weights) say so and
// write no checkpoint.
TrainResult train_model(const TrainOptions& o);
// `splitleak train`: train_model, then the per-epoch table (or one JSON object).
void run_train(const TrainOptions& o);

}  // namespace sl::experiment
