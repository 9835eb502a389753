// The query-free attack (shadow model, query_free.h) behind the attack interface: the cloud trains a shadow head
// through its own frozen tail on its own data, then runs rMLE through the shadow against what it observes.
// Adaptive: the defense sits on the edge, between f1 and the tail, so the cloud's shadow training (its data, its
// tail) never meets it and stays as it is; the inversion through the shadow models the defense exactly as the
// adaptive white-box attacker does (adaptive.h).
#include "autograd/node.h"
#include "inversion/attacks.h"
#include "inversion/query_free.h"

namespace sl::inv {

namespace {

class QueryFree : public Attack {
 public:
  using Attack::Attack;

  void prepare(const AttackTarget& t, const PhaseProgress& progress) override {
    SL_CHECK(t.kind == TargetKind::feature, ValueError,
             "the query-free attack needs a split layer with a cloud part; '", cfg_.split, "' is not one");
    detail::check_attacker_data(t);
    const data::Dataset& a = *t.attacker_data;
    Tensor sample_v;
    {
      NoGradGuard no_grad;
      sample_v = t.pipeline.edge(a.images.slice(0, std::min<int64_t>(64, a.size())).to(cfg_.device), 0);
    }
    Shape feature(std::vector<int64_t>(sample_v.shape().dims().begin() + 1, sample_v.shape().dims().end()));
    Generator gen(cfg_.seed);
    shadow_ =
        make_shadow(profile_of(t.pipeline.model()), cfg_.split, t.image, feature, guess_activation(sample_v), gen);
    shadow_->to(cfg_.device);
    auto t0 = detail::Clock::now();
    train_shadow(*shadow_, t.pipeline.cloud_tail(), a, cfg_.device, cfg_.fit,
                 detail::fit_progress(progress, "train shadow"));
    train_seconds_ += detail::since(t0);
    double acc =
        shadow_accuracy(*shadow_, t.pipeline.cloud_tail(), a.slice(0, std::min<int64_t>(2000, a.size())), cfg_.device);
    detail_ = "shadow " + shadow_->describe() + ", accuracy through the cloud tail on the attacker's images " +
              std::to_string(acc);
  }

  Tensor invert(const AttackTarget& t, const Observation& obs, const PhaseProgress& progress) override {
    auto t0 = detail::Clock::now();
    Tensor recon = detail::rmle_rows(*shadow_, t, obs, cfg_, progress, "rMLE via shadow");
    invert_seconds_ += detail::since(t0);
    return recon;
  }

 private:
  std::shared_ptr<Sequential> shadow_;
};

}  // namespace

std::unique_ptr<Attack> make_queryfree(const AttackConfig& cfg) { return std::make_unique<QueryFree>(cfg); }

}  // namespace sl::inv
