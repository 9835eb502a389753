// Random fills from Philox counters (tensor/rng.h, whose functions are __host__ __device__): element i takes
// counter offset + i and is computed in double exactly as on the CPU, so both backends draw the same numbers
// (uniform and dropout bit for bit; normal/laplace up to the last bit of the device's log/cos/sqrt).
#include "kernels/cuda/common.cuh"
#include "tensor/rng.h"

namespace sl::cuda {

namespace {
enum class Dist { uniform, normal, laplace, dropout };

template <class T>
void fill_t(Tensor& t, const char* op, Dist dist, uint64_t seed, uint64_t offset, double a, double b) {
  T* p = t.data<T>();
  for_each(t, t.numel(), op, [=] __device__(int64_t i) {
    const uint64_t ctr = offset + uint64_t(i);
    double v;
    switch (dist) {
      case Dist::uniform:
        v = a + (b - a) * rng_uniform(seed, ctr);
        break;  // a = lo, b = hi
      case Dist::normal:
        v = a + b * rng_normal(seed, ctr);
        break;  // a = mean, b = std
      case Dist::laplace:
        v = a + b * rng_laplace(seed, ctr);
        break;  // a = loc, b = scale
      default:
        v = rng_uniform(seed, ctr) < a ? 0.0 : b;
        break;  // a = rate, b = kept value
    }
    p[i] = T(v);
  });
}
}  // namespace

void fill_uniform(Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi) {
  SL_CUDA_DISPATCH(t, "fill_uniform", fill_t, t, "fill_uniform", Dist::uniform, seed, offset, lo, hi);
}
void fill_normal(Tensor& t, uint64_t seed, uint64_t offset, double mean, double std) {
  SL_CUDA_DISPATCH(t, "fill_normal", fill_t, t, "fill_normal", Dist::normal, seed, offset, mean, std);
}
void fill_laplace(Tensor& t, uint64_t seed, uint64_t offset, double loc, double scale) {
  SL_CUDA_DISPATCH(t, "fill_laplace", fill_t, t, "fill_laplace", Dist::laplace, seed, offset, loc, scale);
}
void dropout_mask(Tensor& mask, uint64_t seed, uint64_t offset, double rate, bool rescale) {
  double keep = rescale && rate < 1.0 ? 1.0 / (1.0 - rate) : 1.0;
  SL_CUDA_DISPATCH(mask, "dropout_mask", fill_t, mask, "dropout_mask", Dist::dropout, seed, offset, rate, keep);
}

}  // namespace sl::cuda
