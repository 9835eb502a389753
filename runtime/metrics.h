// Latency figures: a lock-free log-bucket histogram for a long-running server (bounded memory, ~2 % resolution)
// and exact percentiles of a recorded sample.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace sl::runtime {

class LatencyHistogram {
 public:
  // Buckets of 2 % width from 1 us to ~1000 s; below and above land in the first and last bucket.
  void add(double seconds);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double percentile(double p) const;  // p in [0, 100]; seconds (bucket middle), 0 when empty
  double max() const;
  double mean() const;

 private:
  static constexpr int kBuckets = 1100;
  static int bucket(double seconds);
  static double bucket_value(int b);
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> max_ns_{0};
};

// The p-th percentile (nearest rank) of the values; 0 when empty. Sorts a copy.
double percentile(std::vector<double> values, double p);

// Resident memory of this process: current and peak (VmRSS, VmHWM from /proc/self/status), bytes.
struct MemoryUse {
  int64_t rss = 0, peak = 0;
};
MemoryUse memory_use();

}  // namespace sl::runtime
