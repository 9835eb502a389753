// Link emulation on the edge: frames are paced as a link of a given speed and round-trip time would carry them,
// one frame after the other in each direction. The speed may follow a schedule (by time or by request count),
// so that an adaptive edge can be tested against a link that changes.
//
//   a frame of B bytes handed to the link at time t by request r:
//     start = max(t, when the link is free in that direction);   busy until start + 8·B / speed(start, r)
//     arrives at start + 8·B / speed + rtt / 2
#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace sl::runtime {

struct LinkStep {
  double at = 0;  // seconds since the start, or a request index (LinkOptions::by_request)
  double mbps = 0;
};

struct LinkOptions {
  double mbps = 0;                 // Mbit/s (10^6 bit/s); 0: unlimited
  double rtt_ms = 0;               // round-trip time
  std::vector<LinkStep> schedule;  // from each step's `at` on, its speed replaces `mbps`
  bool by_request = false;
  bool enabled() const { return mbps > 0 || rtt_ms > 0 || !schedule.empty(); }
  std::string str() const;  // "1 Mbit/s, 20 ms RTT" / "unlimited"
};

// "0:100,5:1,10:100" (seconds : Mbit/s) or "0r:100,200r:1" (request index : Mbit/s); steps in increasing order.
// ValueError naming the bad step.
void parse_link_schedule(const std::string& spec, LinkOptions& link);

class LinkEmulator {
 public:
  using Clock = std::chrono::steady_clock;
  LinkEmulator(LinkOptions opt, Clock::time_point start);
  const LinkOptions& options() const { return opt_; }
  double mbps_at(Clock::time_point t, int64_t request) const;  // 0: unlimited
  // When a frame of `bytes` handed over at `t` by `request` reaches the other side; reserves the link.
  Clock::time_point uplink(size_t bytes, Clock::time_point t, int64_t request);
  Clock::time_point downlink(size_t bytes, Clock::time_point t, int64_t request);

 private:
  Clock::time_point carry(Clock::time_point& free, size_t bytes, Clock::time_point t, int64_t request);
  LinkOptions opt_;
  Clock::time_point start_, up_free_, down_free_;
};

}  // namespace sl::runtime
