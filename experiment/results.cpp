#include "experiment/results.h"

#include "build_info.h"
#include "experiment/common.h"
#include "experiment/ui.h"

namespace sl::experiment {

std::string build_commit() { return SPLITLEAK_BUILD_COMMIT; }

RunInfo this_run(const std::string& device, const std::string& model, const std::string& dataset) {
  return RunInfo{command_line(), ui::now_iso8601(), device, model, dataset};
}

nlohmann::json run_json(const RunInfo& info) {
  return {{"model", info.model}, {"dataset", info.dataset},  {"device", info.device},
          {"date", info.date},   {"commit", build_commit()}, {"command", info.command}};
}

std::string csv_preamble(const std::string& what, const RunInfo& info, const nlohmann::json& settings) {
  return "# " + what + ": " + info.model + " (" + info.dataset + "), " + info.device + ", " + info.date + ", commit " +
         build_commit() + "\n# command: " + info.command +
         "\n# settings: " + settings.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace sl::experiment
