// The version and the commit this binary was built from (cmake/build_info.cmake writes the commit at build time).
#include "build_info.h"
#include "cli/common.h"

namespace sl::cli {

std::string build_commit() { return SPLITLEAK_BUILD_COMMIT; }

std::string version_line() {
  return std::string("splitleak ") + SPLITLEAK_VERSION + " (commit " + build_commit() + ")";
}

}  // namespace sl::cli
