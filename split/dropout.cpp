// The dropout defense (He et al. §IV-B, eq. 6): v = f1(x) ⊗ M, each element of the mask M zero with probability r
// and one otherwise, a fresh mask per query, at inference, on the intermediate tensor or on the input. No
// 1/(1 - r) rescaling by default (the reference's); "dropout:r,rescale" scales the kept elements by 1/(1 - r).
#include "autograd/ops.h"
#include "kernels/dispatch.h"
#include "split/kinds.h"

namespace sl::kinds {

namespace {

class DropoutDefense : public Defense {
 public:
  DropoutDefense(const DefenseSpec& s, uint64_t key) : Defense(s, key), rescale_(s.flag("rescale")) {}

 protected:
  Tensor apply_block(const Tensor& x, uint64_t first_query) const override {
    if (level() == 0) return x;
    Tensor mask = Tensor::empty(x.shape(), x.dtype(), x.device());
    kern::dropout_mask(mask, key(), counter(first_query, x.numel() / x.size(0)), level(), rescale_);
    return mul(x, mask);  // the mask is a constant: the gradient to x is masked the same way
  }

 private:
  bool rescale_;
};

}  // namespace

DefenseKind dropout() {
  DefenseKind k;
  k.name = "dropout";
  k.level_name = "r";
  k.level_help = "the dropout rate r in [0, 1] (below 1 with rescale)";
  k.options = {"rescale"};
  k.validate = [](const DefenseSpec& s) {
    bool rescale = s.flag("rescale");
    check_level(s, "the dropout rate r", 0, 1, rescale);
  };
  k.make = [](const DefenseSpec& s, const DefenseSetup& setup) -> std::unique_ptr<Defense> {
    return std::make_unique<DropoutDefense>(s, setup.key);
  };
  return k;
}

}  // namespace sl::kinds
