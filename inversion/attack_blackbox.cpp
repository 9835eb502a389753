// The black-box attack (inverse network, inverse_net.h) behind the attack interface: the attacker queries the edge
// with its own images and trains a decoder from what comes back.
//   paper's attacker: the decoder is trained on the edge's undefended answers (the attacker of the undefended
//                     table, unchanged) and applied to whatever the cloud observes;
//   adaptive:         one decoder per deployment, trained on that deployment's answers — its defense at its level,
//                     a fresh draw per query — so the decoder learns to undo the defense as well.
#include <cstring>
#include <map>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "inversion/attacks.h"
#include "inversion/inverse_net.h"

namespace sl::inv {

namespace {

// Query numbers of the attacker's own queries: far from those of the victims (the test-set indices).
constexpr uint64_t kAttackerQueries = uint64_t(1) << 40;

class BlackBox : public Attack {
 public:
  using Attack::Attack;

  void prepare(const AttackTarget& t, const PhaseProgress& progress) override {
    SL_CHECK(t.kind != TargetKind::label, ValueError,
             "the black-box attack needs a feature or probability vector to decode; 'label' is white-box only");
    detail::check_attacker_data(t);
    const data::Dataset& a = *t.attacker_data;
    Tensor probe = answer(t, {}, a.images.slice(0, 1).to(cfg_.device), 0);
    feature_ = Shape(std::vector<int64_t>(probe.shape().dims().begin() + 1, probe.shape().dims().end()));
    clean_ = train(t, {}, progress);
  }

  Tensor invert(const AttackTarget& t, const Observation& obs, const PhaseProgress& progress) override {
    const Shape image = t.image;
    const int64_t per = image.numel(), N = obs.rows();
    Tensor out = Tensor::empty(Shape{N, image[0], image[1], image[2]}, DType::f32);
    std::vector<ObservedGroup> groups = obs.groups;
    if (groups.empty()) groups.push_back(ObservedGroup{0, N, {}});
    for (const ObservedGroup& g : groups) {
      std::shared_ptr<Sequential> decoder = clean_;
      if (cfg_.adaptive && !g.deployed.empty()) {
        std::string key = chain_str(g.deployed);
        auto it = adapted_.find(key);
        if (it == adapted_.end()) it = adapted_.emplace(key, train(t, g.deployed, progress)).first;
        decoder = it->second;
      }
      auto t0 = detail::Clock::now();
      for (int64_t b = g.begin; b < g.end; b += cfg_.batch) {
        const int64_t e = std::min(g.end, b + cfg_.batch);
        Tensor rec = invert_with_decoder(*decoder, obs.v.slice(b, e), t.range);
        rec = rec.to(Device::cpu()).to(DType::f32).contiguous();
        std::memcpy(out.data<float>() + b * per, rec.data<float>(), size_t((e - b) * per) * sizeof(float));
      }
      invert_seconds_ += detail::since(t0);
    }
    if (adapted_.empty())
      detail_ = "decoder " + clean_->describe() + ", final training MSE " + std::to_string(mse_);
    else
      detail_ = std::to_string(adapted_.size()) + " decoder(s) " + clean_->describe() +
                " trained on the defended edge's answers";
    return out;
  }

 private:
  // The edge's answer to the attacker's query (feature, or the softmax output for prob).
  Tensor answer(const AttackTarget& t, const DefenseChain& deployed, const Tensor& x, uint64_t first_query) const {
    NoGradGuard no_grad;
    SplitPipeline p = t.pipeline.with_defenses(deployed);
    Tensor v = p.edge(x, first_query);
    return t.kind == TargetKind::prob ? softmax(p.cloud(v)) : v;
  }

  std::shared_ptr<Sequential> train(const AttackTarget& t, const DefenseChain& deployed,
                                    const PhaseProgress& progress) {
    Generator gen(cfg_.seed);
    auto decoder = make_decoder(profile_of(t.pipeline.model()), cfg_.split, feature_, t.image, gen);
    decoder->to(cfg_.device);
    uint64_t next = kAttackerQueries;
    auto t0 = detail::Clock::now();
    const std::string phase = deployed.empty() ? "train decoder" : "train decoder (" + chain_str(deployed) + ")";
    mse_ = train_inverse_net(
        *decoder,
        [&](const Tensor& x) {
          Tensor v = answer(t, deployed, x, next);
          next += uint64_t(x.size(0));
          return v;
        },
        *t.attacker_data, cfg_.device, cfg_.fit, detail::fit_progress(progress, phase));
    train_seconds_ += detail::since(t0);
    return decoder;
  }

  Shape feature_;
  double mse_ = 0;
  std::shared_ptr<Sequential> clean_;
  std::map<std::string, std::shared_ptr<Sequential>> adapted_;
};

}  // namespace

std::unique_ptr<Attack> make_blackbox(const AttackConfig& cfg) { return std::make_unique<BlackBox>(cfg); }

}  // namespace sl::inv
