// The attack runs behind `splitleak attack`: one attack against a model split at a layer (optionally defended), and
// the paper's MNIST table. Each loads the model, the victims and the attacker's data (the scene), runs,
// writes grid.png, results.csv and results.json (device, date, command, settings) and prints a table.
#pragma once
#include <cstdint>
#include <limits>
#include <string>

#include "inversion/attack.h"

namespace sl::experiment {

constexpr double kUnset = std::numeric_limits<double>::quiet_NaN();

struct AttackOptions {
  std::string model, split, dataset, data, out, device = "cpu", attacker_data = "train", preset = "reference";
  int64_t images = -1, attacker_limit = -1, batch = 100, fit_batch = 32;
  bool all = false, json = false, project = false, no_project = false, allow_nonfinite = false;
  // Overrides of the per-split defaults (inv::default_config); unset = keep the default.
  int iters = -1, epochs = -1;
  double lr = kUnset, tv = kUnset, tv_beta = kUnset, l2 = kUnset, fit_lr = kUnset;
  std::string optimizer, schedule;
  uint64_t seed = 1;
  int threads = 0;
  // The defenses on the edge (split/defense.h spec; empty: none), their seed, and whether the attacker models them.
  std::string defense;
  uint64_t defense_seed = 1;
  bool adaptive = false;
  int eot = 4;
  // A recording of `splitleak serve --record` (runtime/observations.h): attack what the cloud received instead of
  // recomputing the victims' observations; the victims are the chosen test images that the recording holds.
  std::string observed;
};

// `splitleak attack whitebox|blackbox|queryfree`.
void run_attack_command(const AttackOptions& o, const inv::AttackKind& kind);
// `splitleak attack table`: 3 attacks x {conv1, ReLU2} on MNIST LeNet, beside the paper's numbers.
void run_table(const AttackOptions& o);

}  // namespace sl::experiment
