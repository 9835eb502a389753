// Noise obfuscation (He et al. §IV-A): v = f1(x + ε) on the input, or v = f1(x) + ε on the intermediate tensor,
// ε elementwise Gaussian N(0, σ²) ("gaussian:σ") or Laplace with scale b, density exp(-|ε|/b) / 2b ("laplace:b").
// The noise lives in the space the defense sits in: the normalised image (x ∈ [-1, 1] for MNIST), or the
// features. Nothing is clamped afterwards (as in the reference).
#include "autograd/ops.h"
#include "kernels/dispatch.h"
#include "split/kinds.h"

namespace sl::kinds {

namespace {

enum class Noise { gaussian, laplace };

class NoiseDefense : public Defense {
 public:
  NoiseDefense(const DefenseSpec& s, uint64_t key, Noise n) : Defense(s, key), noise_(n) {}

 protected:
  Tensor apply_block(const Tensor& x, uint64_t first_query) const override {
    if (level() == 0) return x;
    Tensor eps = Tensor::empty(x.shape(), x.dtype(), x.device());
    const uint64_t offset = counter(first_query, x.numel() / x.size(0));
    if (noise_ == Noise::gaussian)
      kern::fill_normal(eps, key(), offset, 0.0, level());
    else
      kern::fill_laplace(eps, key(), offset, 0.0, level());
    return add(x, eps);  // the draw is a constant: gradients pass straight through to x
  }

 private:
  Noise noise_;
};

}  // namespace

DefenseKind gaussian() {
  DefenseKind k;
  k.name = "gaussian";
  k.level_name = "sigma";
  k.level_help = "the standard deviation σ >= 0 of the Gaussian noise";
  k.validate = [](const DefenseSpec& s) { check_level(s, "sigma", 0, INFINITY); };
  k.make = [](const DefenseSpec& s, const DefenseSetup& setup) -> std::unique_ptr<Defense> {
    return std::make_unique<NoiseDefense>(s, setup.key, Noise::gaussian);
  };
  return k;
}

DefenseKind laplace() {
  DefenseKind k;
  k.name = "laplace";
  k.level_name = "b";
  k.level_help = "the scale b >= 0 of the Laplace noise";
  k.validate = [](const DefenseSpec& s) { check_level(s, "b", 0, INFINITY); };
  k.make = [](const DefenseSpec& s, const DefenseSetup& setup) -> std::unique_ptr<Defense> {
    return std::make_unique<NoiseDefense>(s, setup.key, Noise::laplace);
  };
  return k;
}

}  // namespace sl::kinds
