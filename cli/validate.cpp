#include "cli/validate.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <thread>

#include "split/defense.h"
#include "tensor/error.h"

namespace sl::cli::valid {

namespace {

// Shortest text of a double that reads back the same ("0.001", "1e+30").
std::string num(double v) {
  char b[32];
  auto r = std::to_chars(b, b + sizeof b, v);
  return std::string(b, r.ptr);
}

// Parses the whole string as a finite number; false for anything else (text, "nan", "inf", "1e999", "").
bool parse_finite(const std::string& s, double& v) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  char* end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(v);
}

CLI::Validator real_check(double lo, bool lo_open, double hi, const std::string& desc) {
  return CLI::Validator(
      [=](std::string& in) -> std::string {
        double v;
        if (!parse_finite(in, v) || (lo_open ? v <= lo : v < lo) || v > hi)
          return str("got ", in, ", expected a finite number ", desc);
        return "";
      },
      desc);
}

}  // namespace

CLI::Validator integer(int64_t lo, int64_t hi) {
  const std::string range = str("[", lo, ", ", hi, "]");
  return CLI::Validator(
      [=](std::string& in) -> std::string {
        int64_t v = 0;
        auto r = std::from_chars(in.data(), in.data() + in.size(), v);
        if (in.empty() || r.ec != std::errc() || r.ptr != in.data() + in.size() || v < lo || v > hi)
          return str("got ", in, ", expected an integer in ", range);
        return "";
      },
      range);
}

CLI::Validator positive() { return real_check(0, true, std::numeric_limits<double>::max(), "> 0"); }

CLI::Validator non_negative() { return real_check(0, false, std::numeric_limits<double>::max(), ">= 0"); }

CLI::Validator real(double lo_open, double hi) {
  return real_check(lo_open, true, hi, str("in (", num(lo_open), ", ", num(hi), "]"));
}

CLI::Validator seed() {
  const std::string range = str("[0, ", std::numeric_limits<uint64_t>::max(), "]");
  return CLI::Validator(
      [=](std::string& in) -> std::string {
        uint64_t v = 0;
        auto r = std::from_chars(in.data(), in.data() + in.size(), v);  // no sign accepted: -1 cannot wrap
        if (in.empty() || r.ec != std::errc() || r.ptr != in.data() + in.size())
          return str("got ", in, ", expected an integer in ", range);
        return "";
      },
      range);
}

CLI::Validator path() {
  return CLI::Validator([](std::string& in) { return in.empty() ? std::string("expected a path, got ''") : ""; }, "");
}

CLI::Validator dataset() {
  return CLI::Validator(
      [](std::string& in) {
        if (in == "mnist" || in == "cifar10" || (in.rfind("folder:", 0) == 0 && in.size() > 7)) return std::string();
        return "expected mnist, cifar10 or folder:DIR, got '" + in + "'";
      },
      "");
}

int max_threads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return 4 * int(hw == 0 ? 1 : hw);
}

CLI::Validator threads() {
  const int hi = max_threads();
  const std::string range = str("[0, ", hi, "]");
  return CLI::Validator(
      [=](std::string& in) -> std::string {
        int64_t v = 0;
        auto r = std::from_chars(in.data(), in.data() + in.size(), v);
        if (in.empty() || r.ec != std::errc() || r.ptr != in.data() + in.size() || v < 0 || v > hi)
          return str("got ", in, ", expected an integer in ", range, ": 0 = all cores, at most 4 x the ", hi / 4,
                     " hardware threads of this machine");
        return "";
      },
      range);
}

CLI::Validator defense(bool level_required) {
  return CLI::Validator(
      [level_required](std::string& in) {
        try {
          parse_defenses(in, level_required);
        } catch (const Error& e) {
          return std::string(e.what());
        }
        return std::string();
      },
      "SPEC");
}

CLI::Validator number_list() {
  return CLI::Validator(
      [](std::string& in) {
        if (in.empty()) return std::string("expected comma-separated numbers, got ''");
        size_t start = 0;
        while (start <= in.size()) {
          size_t comma = in.find(',', start);
          std::string piece = in.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
          double v = 0;
          if (!parse_finite(piece, v)) return str("'", piece, "' in ", in, " is not a finite number");
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
        return std::string();
      },
      "LIST");
}

}  // namespace sl::cli::valid
