// The run behind `splitleak defend`: the defense sweep of experiment/defend.h for a custom set of defenses, places
// and levels or a whole figure of the paper, its results files (experiment/defend_report.h) and its tables.
#pragma once
#include <cstdint>
#include <limits>
#include <string>

namespace sl::experiment {

struct DefendOptions {
  std::string model, split, defense, where, levels, attack = "whitebox", preset = "reference", out, data, dataset;
  std::string device = "cpu", attacker_data = "train";
  int figure = 0, iters = -1, epochs = -1, eot = 4, threads = 0;
  int64_t images = -1, limit = -1, batch = 1000, attacker_limit = -1;
  double lr = std::numeric_limits<double>::quiet_NaN(), tv = std::numeric_limits<double>::quiet_NaN();
  bool adaptive = false, compare = false, quick = false, json = false, allow_nonfinite = false;
  uint64_t seed = 1, defense_seed = 1;
};

void run_defend_command(const DefendOptions& o);

}  // namespace sl::experiment
