// How many threads the CPU kernels' parallel regions use: OpenMP's count (OMP_NUM_THREADS, --threads) is the
// ceiling, and below it the count follows the load on this process's cores. A region ends when its slowest
// thread does, so when other processes hold some of the cores, every region waits for a thread that shares a
// core with them (a scheduler slice, milliseconds, at every barrier); running on the cores that are left is
// then 3-10x faster. So about every 200 ms the calling thread reads how busy its cores were (/proc/stat) minus
// its own CPU time, and regions use the cores the other processes left free (at least one). Processes with
// a higher nice value than ours do not count: they yield to us. Results never depend on the count (every
// kernel sums in a fixed order). SPLITLEAK_ADAPTIVE_THREADS=0 turns the adaptation off (regions then use
// OpenMP's count, as before); SPLITLEAK_THREADS_LOG=1 prints each change of the count to stderr.
// Measured: bench/threads_under_load.sh, README "Measured".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sl::cpu {

// Threads for the next parallel region started by the calling thread: 1 inside a parallel region, else
// min(omp_get_max_threads(), the cores the other processes leave free).
int region_threads();

// Turns the adaptation on or off for the whole process (on by default unless SPLITLEAK_ADAPTIVE_THREADS=0);
// off, region_threads() is omp_get_max_threads(). Tests that compare thread counts turn it off.
void set_adaptive_threads(bool on);
bool adaptive_threads();

// --- the pieces, exposed for tests ---------------------------------------------------------------------------
// Busy and total clock ticks summed over the "cpuN" lines of a /proc/stat text whose N is in `cpus`; `busy`
// counts user, system, irq, softirq and steal time, and nice time when `count_nice`.
struct CpuTicks {
  uint64_t busy = 0, total = 0;
};
CpuTicks parse_proc_stat(const std::string& text, const std::vector<int>& cpus, bool count_nice);

// Threads for `free_cores` cores left free by the other processes (a fraction), given the current count and
// the ceiling: a core counts when at least 0.75 of it is free, or 0.9 to add a thread back (no flapping).
int threads_for_free_cores(double free_cores, int current, int ceiling);

}  // namespace sl::cpu
