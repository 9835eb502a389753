#include "nn/init.h"

#include <cmath>

#include "kernels/dispatch.h"

namespace sl::init {

std::pair<int64_t, int64_t> fans(const Tensor& w) {
  SL_CHECK(w.dim() >= 2, ShapeError, "fan_in/fan_out need a weight of rank >= 2, got ", w.str());
  int64_t receptive = 1;
  for (size_t i = 2; i < w.dim(); ++i) receptive *= w.shape()[i];
  return {w.shape()[1] * receptive, w.shape()[0] * receptive};
}

// Each draw takes fresh counters from the generator, so consecutive draws never repeat numbers.
void uniform_(Tensor& t, double lo, double hi, Generator& gen) {
  kern::fill_uniform(t, gen.seed(), gen.take(uint64_t(t.numel())), lo, hi);
}

void normal_(Tensor& t, double mean, double std, Generator& gen) {
  kern::fill_normal(t, gen.seed(), gen.take(uint64_t(t.numel())), mean, std);
}

void xavier_uniform_(Tensor& w, Generator& gen, double gain) {
  auto [fan_in, fan_out] = fans(w);
  double a = gain * std::sqrt(6.0 / double(fan_in + fan_out));
  uniform_(w, -a, a, gen);
}

void xavier_normal_(Tensor& w, Generator& gen, double gain) {
  auto [fan_in, fan_out] = fans(w);
  normal_(w, 0.0, gain * std::sqrt(2.0 / double(fan_in + fan_out)), gen);
}

void kaiming_uniform_(Tensor& w, Generator& gen, double a) {
  double bound = std::sqrt(6.0 / ((1.0 + a * a) * double(fans(w).first)));
  uniform_(w, -bound, bound, gen);
}

void pytorch_default_(Tensor& weight, Tensor& bias, Generator& gen) {
  kaiming_uniform_(weight, gen, std::sqrt(5.0));
  if (bias.defined()) {
    double bound = 1.0 / std::sqrt(double(fans(weight).first));
    uniform_(bias, -bound, bound, gen);
  }
}

void xavier_module_(Module& m, Generator& gen, bool normal, double gain) {
  for (auto& [name, p] : m.named_parameters()) {
    if (p.dim() >= 2)
      normal ? xavier_normal_(p, gen, gain) : xavier_uniform_(p, gen, gain);
    else
      p.zero_();
  }
}

}  // namespace sl::init
