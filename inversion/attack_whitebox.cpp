// The white-box attack (rMLE, rmle.h) behind the attack interface: the attacker knows the edge head f1 and
// optimises an image until f1 maps it onto the observation. Adaptive: the objective models the defense of each
// row (adaptive.h). For prob / label targets f1 is the whole model.
#include "inversion/adaptive.h"
#include "inversion/attacks.h"

namespace sl::inv {

namespace {

class WhiteBox : public Attack {
 public:
  using Attack::Attack;

  void prepare(const AttackTarget&, const PhaseProgress&) override {}

  Tensor invert(const AttackTarget& t, const Observation& obs, const PhaseProgress& progress) override {
    auto t0 = detail::Clock::now();
    Tensor recon = detail::rmle_rows(t.pipeline.edge_head(), t, obs, cfg_, progress, "rMLE");
    invert_seconds_ += detail::since(t0);
    detail_ = "rMLE on the true edge model";
    if (cfg_.adaptive && obs.kind == TargetKind::feature) detail_ += ", modelling the defense";
    return recon;
  }
};

}  // namespace

std::unique_ptr<Attack> make_whitebox(const AttackConfig& cfg) { return std::make_unique<WhiteBox>(cfg); }

}  // namespace sl::inv
