// splitleak_onnx_conformance [DATA_DIR] [--filter REGEX]: runs the ONNX backend tests of the supported operators
// (onnx/conformance.h) on the CPU and prints the Markdown table of docs/onnx.md. Exit status 1 when a test failed.
#include <cstdio>
#include <regex>
#include <string>

#include "onnx/conformance.h"

int main(int argc, char** argv) {
  std::string dir = sl::onnxio::default_testdata_dir(), filter = ".*";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--filter" && i + 1 < argc) {
      filter = argv[++i];
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: %s [DATA_DIR] [--filter REGEX]   (DATA_DIR default: %s)\n", argv[0], dir.c_str());
      return 0;
    } else {
      dir = a;
    }
  }
  std::regex re;
  try {
    re = std::regex(filter);
  } catch (const std::regex_error& e) {
    std::fprintf(stderr, "error: --filter '%s' is not a regular expression (%s)\n", filter.c_str(), e.what());
    return 2;
  }
  const auto tests = sl::onnxio::conformance_tests(dir);
  if (tests.empty()) {
    std::fprintf(stderr, "error: no ONNX backend tests under '%s' (install libonnx-testdata)\n", dir.c_str());
    return 2;
  }
  std::vector<sl::onnxio::ConformanceResult> results;
  bool failed = false;
  for (const auto& t : tests) {
    if (!std::regex_search(t, re)) continue;
    results.push_back(sl::onnxio::run_conformance_test(dir, t));
    failed = failed || results.back().outcome == sl::onnxio::Outcome::failed;
  }
  std::fputs(sl::onnxio::conformance_table(results).c_str(), stdout);
  return failed ? 1 : 0;
}
