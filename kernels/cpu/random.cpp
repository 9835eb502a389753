// Random fills from Philox counters (tensor/rng.h): element i takes counter offset + i, so the values do
// not depend on the thread count and equal the CUDA backend's.
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"
#include "tensor/rng.h"

namespace sl::cpu {

namespace {
template <class F>
void fill(Tensor& t, const char* op, F draw) {
  dispatch_float(t, op, [&](auto z) {
    using T = decltype(z);
    T* p = t.data<T>();
    int64_t n = t.numel();
#pragma omp parallel for num_threads(region_threads()) if (n > kParallelGrain / 8) schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = T(draw(uint64_t(i)));
  });
}
}  // namespace

void fill_uniform(Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi) {
  fill(t, "fill_uniform", [=](uint64_t i) { return lo + (hi - lo) * rng_uniform(seed, offset + i); });
}
void fill_normal(Tensor& t, uint64_t seed, uint64_t offset, double mean, double std) {
  fill(t, "fill_normal", [=](uint64_t i) { return mean + std * rng_normal(seed, offset + i); });
}
void fill_laplace(Tensor& t, uint64_t seed, uint64_t offset, double loc, double scale) {
  fill(t, "fill_laplace", [=](uint64_t i) { return loc + scale * rng_laplace(seed, offset + i); });
}
void dropout_mask(Tensor& mask, uint64_t seed, uint64_t offset, double rate, bool rescale) {
  double keep = rescale && rate < 1.0 ? 1.0 / (1.0 - rate) : 1.0;
  fill(mask, "dropout_mask", [=](uint64_t i) { return rng_uniform(seed, offset + i) < rate ? 0.0 : keep; });
}

}  // namespace sl::cpu
