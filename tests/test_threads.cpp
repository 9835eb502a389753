// The load-adaptive thread count of the CPU kernels (kernels/cpu/threads.h): its /proc/stat parsing, its
// rounding with hysteresis, its bounds; and results that stay bit-identical whatever the count.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "kernels/cpu/threads.h"
#include "kernels/dispatch.h"
#include "tests/op_harness.h"

using namespace sl;

namespace {

// Turns the adaptation on for one test and restores OpenMP's count afterwards.
struct AdaptiveOn {
  int saved = omp_get_max_threads();
  AdaptiveOn() { cpu::set_adaptive_threads(true); }
  ~AdaptiveOn() {
    cpu::set_adaptive_threads(false);
    omp_set_num_threads(saved);
  }
};

}  // namespace

TEST_CASE("/proc/stat: busy and total ticks of the process's CPUs, nice time counted on request", "[threads]") {
  const std::string text =
      "cpu  1000 200 300 4000 50 6 7 8 0 0\n"
      "cpu0 100 20 30 400 5 1 2 3 0 0\n"
      "cpu1 900 180 270 3600 45 5 5 5 0 0\n"
      "cpu12 1 1 1 1 1 1 1 1 0 0\n"
      "intr 12345 0 0\n"
      "ctxt 999\n";
  const cpu::CpuTicks both = cpu::parse_proc_stat(text, {0, 1}, false);
  CHECK(both.busy == (100 + 30 + 1 + 2 + 3) + (900 + 270 + 5 + 5 + 5));
  CHECK(both.total == (100 + 20 + 30 + 400 + 5 + 1 + 2 + 3) + (900 + 180 + 270 + 3600 + 45 + 5 + 5 + 5));
  CHECK(cpu::parse_proc_stat(text, {0, 1}, true).busy == both.busy + 20 + 180);
  const cpu::CpuTicks one = cpu::parse_proc_stat(text, {1}, false);
  CHECK(one.busy == 900 + 270 + 5 + 5 + 5);
  CHECK(cpu::parse_proc_stat(text, {12}, false).total == 8);  // "cpu12" is not "cpu1"
  CHECK(cpu::parse_proc_stat(text, {3}, false).total == 0);
  // Old kernels give only four columns.
  CHECK(cpu::parse_proc_stat("cpu0 10 20 30 40\n", {0}, true).busy == 60);
}

TEST_CASE("free cores -> threads: a core counts when 0.75 of it is free, 0.9 to come back; bounds", "[threads]") {
  // From 2 threads: a competitor holding a whole core, or a quarter of one, drops a thread ...
  CHECK(cpu::threads_for_free_cores(1.0, 2, 2) == 1);
  CHECK(cpu::threads_for_free_cores(1.7, 2, 2) == 1);
  // ... a little noise does not.
  CHECK(cpu::threads_for_free_cores(1.8, 2, 2) == 2);
  CHECK(cpu::threads_for_free_cores(1.95, 2, 2) == 2);
  // From 1 thread, back to 2 only when the core is clearly free again.
  CHECK(cpu::threads_for_free_cores(1.8, 1, 2) == 1);
  CHECK(cpu::threads_for_free_cores(1.95, 1, 2) == 2);
  CHECK(cpu::threads_for_free_cores(2.0, 1, 2) == 2);
  // More cores: each one counts on its own.
  CHECK(cpu::threads_for_free_cores(5.2, 8, 8) == 5);
  CHECK(cpu::threads_for_free_cores(5.8, 5, 8) == 5);
  CHECK(cpu::threads_for_free_cores(6.0, 2, 8) == 6);
  // Bounds.
  CHECK(cpu::threads_for_free_cores(0.0, 2, 2) == 1);
  CHECK(cpu::threads_for_free_cores(-3.0, 4, 8) == 1);
  CHECK(cpu::threads_for_free_cores(64.0, 1, 8) == 8);
  CHECK(cpu::threads_for_free_cores(5.0, 9, 4) == 4);  // a current count above the ceiling is clamped first
}

TEST_CASE("region_threads: OpenMP's count when off, within [1, that count] when on, 1 inside a region", "[threads]") {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  CHECK_FALSE(cpu::adaptive_threads());  // tests/main.cpp turns it off
  CHECK(cpu::region_threads() == 3);
  {
    AdaptiveOn on;
    omp_set_num_threads(3);
    for (int i = 0; i < 50; ++i) {
      const int t = cpu::region_threads();
      CHECK(t >= 1);
      CHECK(t <= 3);
    }
    omp_set_num_threads(1);
    CHECK(cpu::region_threads() == 1);
    int inside = -1;
    omp_set_num_threads(2);
#pragma omp parallel num_threads(2)
    {
#pragma omp master
      inside = cpu::region_threads();
    }
    CHECK(inside == 1);
  }
  omp_set_num_threads(saved);
}

TEST_CASE("mse and sum give the same bits for 1, 2 and 3 threads (float64)", "[threads]") {
  Generator g(77);
  const int64_t n = 300001;  // several 4096-element chunks, above the parallel threshold
  Tensor a = test::randn(Shape{n}, g), b = test::randn(Shape{n}, g);
  const int saved = omp_get_max_threads();
  std::vector<double> mse, sum;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    Tensor out = Tensor::empty(Shape{}, DType::f64), s = Tensor::empty(Shape{}, DType::f64);
    kern::mse_forward(a, b, out);
    kern::sum(a, s);
    mse.push_back(out.data<double>()[0]);
    sum.push_back(s.data<double>()[0]);
  }
  omp_set_num_threads(saved);
  CHECK(mse[0] == mse[1]);
  CHECK(mse[0] == mse[2]);
  CHECK(sum[0] == sum[1]);
  CHECK(sum[0] == sum[2]);
  CHECK(std::fabs(mse[0] - 2.0) < 0.05);  // E (a - b)^2 = 2 for independent standard normals
}
