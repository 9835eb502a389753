// The results schema every experiment writes: each results file says where and how it was made — device, date, the
// commit the binary was built from, the command line — beside the settings of the run.
//   JSON: the fields of run_json() at the top level of the object;
//   CSV:  '#' comment lines first (csv_preamble()), then a header row and one row per result.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace sl::experiment {

struct RunInfo {
  std::string command, date, device, model, dataset;
};

// `git describe --always --dirty` of the source tree the binary was built from ("unknown" outside a git checkout).
std::string build_commit();
// This run: the command line (experiment/common.h), the date now, `device`, `model` and `dataset`.
RunInfo this_run(const std::string& device, const std::string& model, const std::string& dataset);
// {"model", "dataset", "device", "date", "commit", "command"}
nlohmann::json run_json(const RunInfo& info);
// "# <what>: model (dataset), device, date, commit X\n# command: ...\n# settings: {...}\n"
std::string csv_preamble(const std::string& what, const RunInfo& info, const nlohmann::json& settings);

}  // namespace sl::experiment
