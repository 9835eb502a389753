#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "kernels/cpu/threads.h"

int main(int argc, char** argv) {
  // Tests that compare thread counts need the counts they set: the load-adaptive count stays off here (the
  // tests of the policy itself turn it on).
  sl::cpu::set_adaptive_threads(false);
  return Catch::Session().run(argc, argv);
}
