// What `splitleak defend` writes: results.json and results.csv (device, date, command and settings in each), one
// grid per line and attacker (rows = levels, like the paper's Figs 6-8), and the usability-privacy curves (accuracy
// against SSIM and against PSNR, one line per defense x place or per split, like Figs 9, 10 and 13) drawn with
// gnuplot; with both attackers, a second figure puts the paper's attacker and the adaptive one side by side.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiment/defend.h"
#include "experiment/results.h"

namespace sl::experiment {

// The label of a line in tables and legends: "gaussian@input" when all lines share a split, the split when all
// share a defense, both otherwise.
std::string line_label(const std::vector<DefenseLine>& lines, size_t i);
// "σ=0.5", "b=0.25", "r=0.3"
std::string level_label(const std::string& kind, double level);

// Writes the files into `dir` (created) and returns the JSON that went into results.json. `settings` describes
// the run (attack, preset, iterations, seeds, ...). The names of the files written go to `written`.
nlohmann::json write_defend_results(const std::string& dir, const DefendOutcome& o,
                                    const std::vector<DefenseLine>& lines, const nlohmann::json& settings,
                                    const RunInfo& info, std::vector<std::string>* written = nullptr);

}  // namespace sl::experiment
