// Counter-based random numbers (Philox4x32-10). Element i of a draw depends only on (seed, offset + i),
// so results are the same whatever the thread count, and the CUDA kernels draw the very same numbers.
//
//   philox(key=(seed lo, seed hi), counter=(ctr lo, ctr hi, 0, 0)) -> 4 x uint32
//   uniform(i)  = (philox(..., offset+i)[0] >> 8) * 2^-24            in [0, 1)
//   normal(i)   = sqrt(-2 ln u1) * cos(2 pi u2), u1 = 1 - uniform-of-word0 in (0,1], u2 from word1
//   laplace(i)  = -b sign(u) ln(1 - 2|u|), u = uniform - 0.5        (scale b)
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SL_HD __host__ __device__ __forceinline__
#else
#define SL_HD inline
#endif

namespace sl {

struct Philox4 {
  uint32_t x[4];
};

SL_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

// Philox4x32 with 10 rounds on counter (c0, c1, 0, 0) and key (k0, k1).
SL_HD Philox4 philox4x32(uint64_t seed, uint64_t counter) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

SL_HD double rng_u01(uint32_t w) { return double(w >> 8) * (1.0 / 16777216.0); }  // [0,1), 24 bits

SL_HD double rng_uniform(uint64_t seed, uint64_t ctr) { return rng_u01(philox4x32(seed, ctr).x[0]); }

SL_HD double rng_normal(uint64_t seed, uint64_t ctr) {
  Philox4 r = philox4x32(seed, ctr);
  double u1 = 1.0 - rng_u01(r.x[0]);  // (0, 1]
  double u2 = rng_u01(r.x[1]);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

SL_HD double rng_laplace(uint64_t seed, uint64_t ctr) {
  double u = rng_uniform(seed, ctr) - 0.5;  // [-0.5, 0.5)
  double a = fabs(u);
  double m = 1.0 - 2.0 * a;
  if (m <= 0) m = 1.0 / 16777216.0;
  return (u < 0 ? 1.0 : -1.0) * log(m);
}

// A stream of counters under one seed. Each draw of n numbers takes counters [offset, offset+n) and
// moves offset on by n, so consecutive draws never overlap.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void manual_seed(uint64_t s) {
    seed_ = s;
    offset_ = 0;
  }
  // Reserve n counters; returns the first.
  uint64_t take(uint64_t n) {
    uint64_t o = offset_;
    offset_ += n;
    return o;
  }
  // Single draws, for host-side decisions (shuffling, augmentation parameters).
  double uniform() { return rng_uniform(seed_, take(1)); }
  double normal() { return rng_normal(seed_, take(1)); }
  uint64_t next_u64() {
    auto r = philox4x32(seed_, take(1));
    return (uint64_t(r.x[0]) << 32) | r.x[1];
  }
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return n ? next_u64() % n : 0; }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The process-wide default generator (seeded by --seed in the CLI).
Generator& default_generator();

}  // namespace sl
