#include "runtime/link.h"

#include <cmath>
#include <sstream>

#include "tensor/error.h"

namespace sl::runtime {

std::string LinkOptions::str() const {
  if (!enabled()) return "unlimited";
  std::ostringstream os;
  if (!schedule.empty()) {
    os << "schedule";
    for (auto& s : schedule) os << " " << s.at << (by_request ? "r" : "s") << ":" << s.mbps;
    os << " Mbit/s";
  } else if (mbps > 0) {
    os << mbps << " Mbit/s";
  } else {
    os << "unlimited bandwidth";
  }
  os << ", " << rtt_ms << " ms RTT";
  return os.str();
}

void parse_link_schedule(const std::string& spec, LinkOptions& link) {
  link.schedule.clear();
  std::stringstream ss(spec);
  std::string step;
  int unit = -1;  // 0 seconds, 1 requests
  while (std::getline(ss, step, ',')) {
    size_t colon = step.find(':');
    SL_CHECK(colon != std::string::npos, ValueError, "--link-schedule step '", step, "' is not AT:MBPS");
    std::string at = step.substr(0, colon), rate = step.substr(colon + 1);
    int u = !at.empty() && at.back() == 'r' ? 1 : 0;
    if (u == 1) at.pop_back();
    if (!at.empty() && at.back() == 's') at.pop_back();
    SL_CHECK(unit < 0 || unit == u, ValueError, "--link-schedule mixes seconds and request counts ('", step, "')");
    unit = u;
    LinkStep s;
    size_t a = 0, b = 0;
    try {
      s.at = std::stod(at, &a);
      s.mbps = std::stod(rate, &b);
    } catch (const std::exception&) {
      a = b = 0;
    }
    SL_CHECK(a == at.size() && b == rate.size() && a > 0 && b > 0 && std::isfinite(s.at) && s.at >= 0 &&
                 std::isfinite(s.mbps) && s.mbps > 0 && s.mbps <= 1e6,
             ValueError, "--link-schedule step '", step, "': AT must be >= 0 and MBPS in (0, 1e6]");
    SL_CHECK(link.schedule.empty() || s.at > link.schedule.back().at, ValueError,
             "--link-schedule steps must be in increasing order ('", step, "')");
    link.schedule.push_back(s);
  }
  SL_CHECK(!link.schedule.empty(), ValueError, "--link-schedule is empty");
  link.by_request = unit == 1;
}

LinkEmulator::LinkEmulator(LinkOptions opt, Clock::time_point start)
    : opt_(std::move(opt)), start_(start), up_free_(start), down_free_(start) {}

double LinkEmulator::mbps_at(Clock::time_point t, int64_t request) const {
  double v = opt_.mbps;
  double x = opt_.by_request ? double(request) : std::chrono::duration<double>(t - start_).count();
  for (auto& s : opt_.schedule)
    if (x >= s.at) v = s.mbps;
  return v;
}

LinkEmulator::Clock::time_point LinkEmulator::carry(Clock::time_point& free, size_t bytes, Clock::time_point t,
                                                    int64_t request) {
  Clock::time_point begin = std::max(t, free);
  double mbps = mbps_at(begin, request);
  double tx = mbps > 0 ? double(bytes) * 8.0 / (mbps * 1e6) : 0.0;
  free = begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(tx));
  return free + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt_.rtt_ms * 0.5e-3));
}

LinkEmulator::Clock::time_point LinkEmulator::uplink(size_t bytes, Clock::time_point t, int64_t request) {
  return carry(up_free_, bytes, t, request);
}

LinkEmulator::Clock::time_point LinkEmulator::downlink(size_t bytes, Clock::time_point t, int64_t request) {
  return carry(down_free_, bytes, t, request);
}

}  // namespace sl::runtime
