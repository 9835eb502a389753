// The run behind `splitleak eval`: test accuracy of a model, whole, split at a layer (edge head -> cloud tail,
// which must predict exactly as the whole model), and with defenses on the edge (a fresh draw per test image).
#pragma once
#include <cstdint>
#include <string>

namespace sl::experiment {

struct EvalOptions {
  std::string model, split, dataset, data, device = "cpu";
  int64_t batch = 500, limit = -1;
  int threads = 0;
  bool json = false, allow_nonfinite = false;
  std::string defense;  // split/defense.h spec; empty: none
  uint64_t defense_seed = 1;
};

void run_eval(const EvalOptions& o);

}  // namespace sl::experiment
