#include "kernels/cpu/threads.h"

#include <omp.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

namespace sl::cpu {

namespace {

constexpr int64_t kPeriodNs = 200'000'000;  // how often the load is sampled
// A core counts as free when the other processes leave at least 0.75 of it; once a thread has been dropped,
// it comes back when they leave 0.9 (a little noise in the sampled load must not make the count flap). A
// thread sharing its core with another process costs far more than a free core gains, hence the margins.
constexpr double kDropBelow = 0.75, kAddAbove = 0.9;

int64_t now_ns(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

bool enabled_by_env() {
  const char* e = std::getenv("SPLITLEAK_ADAPTIVE_THREADS");
  return !(e && std::strcmp(e, "0") == 0);
}

std::atomic<bool> g_enabled{enabled_by_env()};
const bool g_log = [] {
  const char* e = std::getenv("SPLITLEAK_THREADS_LOG");
  return e && std::strcmp(e, "1") == 0;
}();
std::atomic<int> g_free_threads{0};  // the current estimate; 0: none (OpenMP's count)
std::atomic<int64_t> g_next_sample_ns{0};

// The previous sample: ticks of this process's CPUs and its own CPU time. Guarded by mu.
struct Sampler {
  std::mutex mu;
  bool started = false, usable = true, count_nice = false, logged = false;
  std::vector<int> cpus;
  long hz = 0;
  CpuTicks last;
  int64_t last_self_ns = 0;
  int current = 0;
};

Sampler& sampler() {
  static Sampler s;
  return s;
}

bool read_proc_stat(std::string& out) {
  std::FILE* f = std::fopen("/proc/stat", "re");
  if (!f) return false;
  char buf[8192];
  size_t n;
  out.clear();
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return !out.empty();
}

void sample() {
  Sampler& s = sampler();
  std::unique_lock<std::mutex> lock(s.mu, std::try_to_lock);
  if (!lock.owns_lock() || !s.usable) return;
  if (!s.started) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0)
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) s.cpus.push_back(c);
    s.hz = ::sysconf(_SC_CLK_TCK);
    errno = 0;
    const int nice = ::getpriority(PRIO_PROCESS, 0);
    // At nice 0 or below, processes in the "nice" column run at a lower priority and yield to ours.
    s.count_nice = errno == 0 && nice > 0;
  }
  std::string text;
  if (s.cpus.empty() || s.hz <= 0 || !read_proc_stat(text)) {
    s.usable = false;  // no /proc: OpenMP's count from now on
    g_free_threads.store(0, std::memory_order_relaxed);
    return;
  }
  const CpuTicks t = parse_proc_stat(text, s.cpus, s.count_nice);
  const int64_t self = now_ns(CLOCK_PROCESS_CPUTIME_ID);
  if (s.started && t.total > s.last.total && t.busy >= s.last.busy) {
    const double ncpu = double(s.cpus.size());
    const double window_s = double(t.total - s.last.total) / double(s.hz) / ncpu;
    const double busy_s = double(t.busy - s.last.busy) / double(s.hz);
    const double self_s = double(self - s.last_self_ns) * 1e-9;
    const double others = std::max(0.0, busy_s - self_s) / window_s;  // cores held by other processes
    const int before = s.current ? s.current : int(ncpu);
    s.current = threads_for_free_cores(ncpu - others, before, int(ncpu));
    g_free_threads.store(s.current, std::memory_order_relaxed);
    if (g_log && (s.current != before || !s.logged))
      std::fprintf(stderr, "threads: other processes held %.2f of %d cores; parallel regions use %d thread%s\n", others,
                   int(ncpu), s.current, s.current == 1 ? "" : "s");
    s.logged = true;
  }
  s.started = true;
  s.last = t;
  s.last_self_ns = self;
}

}  // namespace

CpuTicks parse_proc_stat(const std::string& text, const std::vector<int>& cpus, bool count_nice) {
  CpuTicks t;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const char* line = text.c_str() + pos;
    int id = -1, used = 0;
    // "cpuN user nice system idle iowait irq softirq steal ..." (the aggregate "cpu " line has no N)
    if (std::sscanf(line, "cpu%d%n", &id, &used) == 1 && std::find(cpus.begin(), cpus.end(), id) != cpus.end()) {
      unsigned long long v[8] = {};
      const int got = std::sscanf(line + used, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                                  &v[4], &v[5], &v[6], &v[7]);
      if (got >= 4) {
        const uint64_t user = v[0], nice = v[1], system = v[2], idle = v[3], iowait = v[4], irq = v[5], softirq = v[6],
                       steal = v[7];
        t.busy += user + system + irq + softirq + steal + (count_nice ? nice : 0);
        t.total += user + nice + system + idle + iowait + irq + softirq + steal;
      }
    }
    pos = end + 1;
  }
  return t;
}

int threads_for_free_cores(double free_cores, int current, int ceiling) {
  ceiling = std::max(ceiling, 1);
  current = std::clamp(current, 1, ceiling);
  const int fewer = std::clamp(int(std::floor(free_cores + (1.0 - kDropBelow))), 1, ceiling);
  const int more = std::clamp(int(std::floor(free_cores + (1.0 - kAddAbove))), 1, ceiling);
  return fewer < current ? fewer : more > current ? more : current;
}

void set_adaptive_threads(bool on) { g_enabled.store(on, std::memory_order_relaxed); }
bool adaptive_threads() { return g_enabled.load(std::memory_order_relaxed); }

int region_threads() {
  if (omp_in_parallel()) return 1;
  const int ceiling = omp_get_max_threads();
  if (ceiling <= 1 || !g_enabled.load(std::memory_order_relaxed)) return ceiling;
  const int64_t now = now_ns(CLOCK_MONOTONIC_COARSE);
  int64_t next = g_next_sample_ns.load(std::memory_order_relaxed);
  if (now >= next && g_next_sample_ns.compare_exchange_strong(next, now + kPeriodNs)) sample();
  const int free = g_free_threads.load(std::memory_order_relaxed);
  return free > 0 ? std::min(ceiling, free) : ceiling;
}

}  // namespace sl::cpu
