#include "runtime/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace sl::runtime {

namespace {
constexpr double kMin = 1e-6;
const double kLogStep = std::log(1.02);
}  // namespace

int LatencyHistogram::bucket(double s) {
  if (!(s > kMin)) return 0;
  int b = int(std::log(s / kMin) / kLogStep);
  return std::min(b, kBuckets - 1);
}

double LatencyHistogram::bucket_value(int b) { return kMin * std::exp((b + 0.5) * kLogStep); }

void LatencyHistogram::add(double seconds) {
  counts_[size_t(bucket(seconds))].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  uint64_t ns = uint64_t(std::max(0.0, seconds) * 1e9);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  uint64_t m = max_ns_.load(std::memory_order_relaxed);
  while (ns > m && !max_ns_.compare_exchange_weak(m, ns, std::memory_order_relaxed)) {
  }
}

double LatencyHistogram::percentile(double p) const {
  uint64_t n = 0;
  std::array<uint64_t, kBuckets> c;
  for (int i = 0; i < kBuckets; ++i) n += c[size_t(i)] = counts_[size_t(i)].load(std::memory_order_relaxed);
  if (n == 0) return 0;
  uint64_t rank = std::max<uint64_t>(1, uint64_t(std::ceil(p / 100.0 * double(n))));
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += c[size_t(i)];
    if (seen >= rank) return std::min(bucket_value(i), max());
  }
  return max();
}

double LatencyHistogram::max() const { return double(max_ns_.load(std::memory_order_relaxed)) * 1e-9; }

double LatencyHistogram::mean() const {
  uint64_t n = count();
  return n ? double(sum_ns_.load(std::memory_order_relaxed)) * 1e-9 / double(n) : 0;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  size_t rank = size_t(std::ceil(p / 100.0 * double(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  std::nth_element(v.begin(), v.begin() + long(rank - 1), v.end());
  return v[rank - 1];
}

MemoryUse memory_use() {
  MemoryUse m;
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return m;
  char line[256];
  while (std::fgets(line, sizeof line, f)) {
    long long kb = 0;
    if (std::sscanf(line, "VmRSS: %lld kB", &kb) == 1) m.rss = kb * 1024;
    if (std::sscanf(line, "VmHWM: %lld kB", &kb) == 1) m.peak = kb * 1024;
  }
  std::fclose(f);
  return m;
}

}  // namespace sl::runtime
