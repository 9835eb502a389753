// What the built-in attacks share: the attacker-data check, progress adapters, rMLE over the rows of an
// observation (the paper's objective, or the adaptive defense model of each row).
#include <cstring>

#include "inversion/adaptive.h"
#include "inversion/attacks.h"

namespace sl::inv::detail {

void check_attacker_data(const AttackTarget& t) {
  SL_CHECK(t.attacker_data && t.attacker_data->size() > 0, ValueError,
           "the attacker's data set is empty: the black-box and query-free attacks learn from the attacker's own ",
           "images (check --attacker-data / --attacker-limit)");
  check_model_fits_data(t.pipeline.model(), *t.attacker_data);
}

RmleProgress rmle_progress(const PhaseProgress& progress, const std::string& phase, int64_t done_before,
                           int64_t total) {
  RmleProgress p;
  if (!progress) return p;
  p.every = 50;
  p.fn = [=](int it, double obj) { progress(phase, done_before + it, total, "objective " + std::to_string(obj)); };
  return p;
}

FitProgress fit_progress(const PhaseProgress& progress, const std::string& phase) {
  FitProgress p;
  if (!progress) return p;
  p.fn = [=](int64_t step, int64_t total, double loss) {
    progress(phase, step, total, "loss " + std::to_string(loss));
  };
  return p;
}

namespace {

int64_t chunks(int64_t n, int64_t batch) { return (n + batch - 1) / batch; }

}  // namespace

Tensor rmle_rows(Module& f1, const AttackTarget& t, const Observation& obs, const AttackConfig& cfg,
                 const PhaseProgress& progress, const std::string& phase) {
  const int64_t N = obs.rows();
  std::vector<ModelledRows> parts;
  if (cfg.adaptive && obs.kind == TargetKind::feature) {
    // CIS: the attacker measures f1's channel norms on its own images (the scale the clip shrinks).
    std::vector<double> l1;
    if (observes_cis(obs) && t.attacker_data && t.attacker_data->size() > 0) {
      const int64_t n = std::min<int64_t>(t.attacker_data->size(), 256);
      l1 = channel_l1_means(f1, t.attacker_data->images.slice(0, n).to(obs.v.device()));
    }
    parts = model_defenses(obs, t.image, cfg.adaptive_options, cfg.seed, &l1);
  } else {
    ModelledRows all;
    for (int64_t r = 0; r < N; ++r) all.rows.push_back(r);
    all.observed.kind = obs.kind;
    all.observed.v = obs.v;
    parts.push_back(std::move(all));
  }
  int64_t total = 0;
  for (auto& p : parts) total += chunks(int64_t(p.rows.size()), cfg.batch) * cfg.rmle.iters;
  const Shape image = t.image;
  const int64_t per = image.numel();
  Tensor out = Tensor::empty(Shape{N, image[0], image[1], image[2]}, DType::f32);
  int64_t done = 0;
  for (auto& p : parts) {
    const int64_t n = int64_t(p.rows.size());
    for (int64_t b = 0; b < n; b += cfg.batch) {
      const int64_t e = std::min(n, b + cfg.batch);
      Observed ob = p.observed.rows(b, e);
      Tensor rec = rmle(f1, ob, Shape{e - b, image[0], image[1], image[2]}, t.range, cfg.rmle,
                        rmle_progress(progress, phase, done, total));
      done += cfg.rmle.iters;
      rec = rec.to(Device::cpu()).to(DType::f32).contiguous();
      for (int64_t i = b; i < e; ++i)
        std::memcpy(out.data<float>() + p.rows[size_t(i)] * per, rec.data<float>() + (i - b) * per,
                    size_t(per) * sizeof(float));
    }
  }
  return out;
}

}  // namespace sl::inv::detail
