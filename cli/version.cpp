// The version line of --version, with the commit this binary was built from (experiment/results.h).
#include "cli/commands.h"
#include "experiment/results.h"

namespace sl::cli {

std::string version_line() {
  return std::string("splitleak ") + SPLITLEAK_VERSION + " (commit " + experiment::build_commit() + ")";
}

}  // namespace sl::cli
