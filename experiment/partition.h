// `splitleak partition`: the privacy-aware partition advisor (SPEC §5, the paper's Figs 14–15). At every split layer
// of a model: each attack's PSNR / SSIM / recovery rate and leakage index (SPEC §6, from its held-out MSE), the bytes
// the edge sends, the edge's FLOPs, parameter and peak activation memory, the measured edge and cloud time, and the
// latency at the given link; then the fastest split whose leakage is under the threshold and whose edge part fits the
// memory budget, with the reason. Writes results.json / results.csv, the per-layer PSNR and SSIM plots, the
// latency–leakage plot with the chosen split marked, and the recovered images per layer.
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "split/partition.h"

namespace sl::experiment {

struct PartitionOptions {
  std::string model, out, attacks = "queryfree", splits, bandwidth = "100Mbit", edge_memory, data, dataset;
  std::string device = "cpu", preset = "reference";
  double rtt_ms = 10, max_ssim = std::numeric_limits<double>::quiet_NaN();
  double max_leakage = std::numeric_limits<double>::quiet_NaN();
  bool quick = false, json = false, allow_nonfinite = false;
  int threads = 0, iters = -1, epochs = -1;
  int64_t images = -1, attacker_limit = -1;
  uint64_t seed = 1;
  // More links and budgets to recommend for from the same measurements: "BANDWIDTH[,EDGE_MEMORY]" each, e.g.
  // "1Mbit,2MB" or "100Mbit" (the privacy thresholds and --rtt-ms are shared).
  std::vector<std::string> scenarios;
};

// One --scenario: its link and constraints (the privacy thresholds from `base`). ValueError naming the scenario.
struct Scenario {
  std::string text;
  double bandwidth_bps = 0;
  std::optional<int64_t> edge_memory_bytes;
};
Scenario parse_scenario(const std::string& text);

// "1Mbit", "100 Mbit/s", "500kbit", "1.5Gbit", "2e6" (bit/s) -> bit/s. ValueError naming the flag otherwise.
double parse_bandwidth(const std::string& text);
// "2MB", "512KiB", "1.5MiB", "4096" (bytes) -> bytes (kB/MB/GB decimal, KiB/MiB/GiB binary). ValueError otherwise.
int64_t parse_bytes(const std::string& text);

// The settings --quick uses and says it uses: rMLE iterations, decoder / shadow epochs, attacker images.
struct QuickSettings {
  int iters = 300, epochs = 1;
  int64_t attacker_limit = 10000;
};

void run_partition_command(const PartitionOptions& o);

}  // namespace sl::experiment
