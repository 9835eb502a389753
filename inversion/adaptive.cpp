#include "inversion/adaptive.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "autograd/node.h"
#include "split/cis.h"
#include "tensor/rng.h"

namespace sl::inv {

namespace {

// The (at most one) defense at each place of a deployment.
struct PlacedDefenses {
  const Defense* input = nullptr;
  const Defense* intermediate = nullptr;
};

PlacedDefenses placed(const DefenseChain& chain) {
  PlacedDefenses p;
  for (auto& d : chain) {
    const Defense*& slot = d->place() == Place::input ? p.input : p.intermediate;
    SL_CHECK(!slot, ValueError, "the adaptive attacker models one defense per place; the deployment ", chain_str(chain),
             " has two at the ", place_name(d->place()));
    slot = d.get();
  }
  return p;
}

bool active(const Defense* d) { return d && d->level() > 0; }

std::vector<ObservedGroup> groups_of(const Observation& obs) {
  if (!obs.groups.empty()) return obs.groups;
  return {ObservedGroup{0, obs.rows(), {}}};
}

}  // namespace

std::vector<double> channel_l1_means(Module& f1, const Tensor& images) {
  SL_CHECK(images.defined() && images.dim() >= 1 && images.size(0) >= 1, ValueError,
           "channel_l1_means: needs at least one image");
  NoGradGuard no_grad;
  Tensor y = f1(images).to(Device::cpu()).contiguous();
  SL_CHECK(y.dim() >= 2, ShapeError, "channel_l1_means: f1's output ", y.str(), " has no channel dim");
  const int64_t n = y.size(0), C = y.size(1), Q = y.numel() / (n * C);
  const std::vector<double> a = y.to_vector();
  std::vector<double> l1(size_t(C), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t q = 0; q < Q; ++q) l1[size_t(c)] += std::abs(a[size_t((i * C + c) * Q + q)]);
  for (double& e : l1) e /= double(n);
  return l1;
}

bool observes_cis(const Observation& obs) {
  for (const ObservedGroup& g : groups_of(obs))
    for (auto& d : g.deployed)
      if (d->kind() == "cis") return true;
  return false;
}

std::vector<ModelledRows> model_defenses(const Observation& obs, const Shape& image, const AdaptiveOptions& o,
                                         uint64_t seed, const std::vector<double>* channel_l1) {
  SL_CHECK(obs.kind == TargetKind::feature, ValueError, "the adaptive attacker models defenses of feature targets");
  SL_CHECK(o.eot_draws >= 1, ValueError, "adaptive attack: needs at least one input draw, got ", o.eot_draws);
  const int64_t N = obs.rows();
  const Device device = obs.v.device();
  const DType dtype = obs.v.dtype();
  Tensor vcpu = obs.v.to(Device::cpu()).contiguous();
  const std::vector<double> v = vcpu.to_vector();
  const int64_t P = N ? int64_t(v.size()) / N : 0;
  const int64_t Pin = image.numel();

  // Per row: its deployment's defenses.
  std::vector<PlacedDefenses> row_def(static_cast<size_t>(N));
  for (const ObservedGroup& g : groups_of(obs)) {
    SL_CHECK(g.begin >= 0 && g.begin <= g.end && g.end <= N, ValueError, "observation group [", g.begin, ", ", g.end,
             ") outside ", N, " rows");
    PlacedDefenses p = placed(g.deployed);
    for (int64_t r = g.begin; r < g.end; ++r) row_def[size_t(r)] = p;
  }

  // Intermediate models, per element of v: target, squared-error weight, absolute-error weight.
  std::vector<double> target = v, w2(v.size(), 1.0), w1(v.size(), 0.0);
  std::vector<double> row_clip(size_t(N), 0.0);  // CIS's clip bound per row (0: none)
  bool any_w2 = false, any_w1 = false, target_changed = false;
  for (const ObservedGroup& g : groups_of(obs)) {
    const Defense* d = placed(g.deployed).intermediate;
    if (!active(d) || g.end == g.begin) continue;
    const size_t b = size_t(g.begin * P), e = size_t(g.end * P);
    if (d->kind() == "dropout") {
      const bool rescale = d->spec().flag("rescale");
      for (int64_t r = g.begin; r < g.end; ++r) {
        const size_t rb = size_t(r * P), re = size_t((r + 1) * P);
        int64_t nnz = 0;
        for (size_t k = rb; k < re; ++k) nnz += v[k] != 0;
        const double w = nnz ? double(P) / double(nnz) : 0.0;
        for (size_t k = rb; k < re; ++k) {
          w2[k] = v[k] != 0 ? w : 0.0;
          if (rescale) target[k] = v[k] * (1.0 - d->level());
        }
      }
      any_w2 = true;
      target_changed = target_changed || rescale;
    } else if (d->kind() == "gaussian" || d->kind() == "laplace") {
      double power = 0;
      for (size_t k = b; k < e; ++k) power += v[k] * v[k];
      power /= double(e - b);
      const double var = d->kind() == "gaussian" ? d->level() * d->level() : 2 * d->level() * d->level();
      const double m2 = std::max({power - var, 0.01 * power, 1e-12});
      const double trust = 1.0 / (1.0 + var / m2);
      for (size_t k = b; k < e; ++k) {
        if (d->kind() == "gaussian") {
          w2[k] = trust;
        } else {
          w2[k] = 0.0;
          w1[k] = 2.0 * std::sqrt(m2) * trust;
        }
      }
      any_w2 = true;
      any_w1 = any_w1 || d->kind() == "laplace";
    } else if (d->kind() == "cis") {
      // v = clip(f1(x)) + Laplace(b_c) per channel: the forward model clips as the edge does, and each channel
      // gets the squared error weighed by its own SNR (variance 2 b_c², b_c = 2C/ε_c) in f1's natural scale.
      SL_CHECK(obs.v.dim() >= 2, ValueError, "the adaptive attacker models CIS on [N, C, ...] features, got ",
               obs.v.str());
      const int64_t C = obs.v.size(1), Q = P / C;
      const CisModel m = cis_model(*d, C);
      const bool natural = channel_l1 && !channel_l1->empty();
      SL_CHECK(!natural || int64_t(channel_l1->size()) == C, ShapeError, "adaptive CIS model: ", channel_l1->size(),
               " channel norms for ", C, " channels");
      for (int64_t c = 0; c < C; ++c) {
        const double f = natural && (*channel_l1)[size_t(c)] > m.clip ? m.clip / (*channel_l1)[size_t(c)] : 1.0;
        double power = 0;
        for (int64_t r = g.begin; r < g.end; ++r)
          for (int64_t q = 0; q < Q; ++q) power += v[size_t(r * P + c * Q + q)] * v[size_t(r * P + c * Q + q)];
        power /= double((g.end - g.begin) * Q);
        const double var = 2 * m.noise_scale[size_t(c)] * m.noise_scale[size_t(c)];
        const double m2 = std::max({power - var, 0.01 * power, 1e-12});
        const double trust = 1.0 / (1.0 + var / m2);
        for (int64_t r = g.begin; r < g.end; ++r)
          for (int64_t q = 0; q < Q; ++q) {
            w2[size_t(r * P + c * Q + q)] = trust / (f * f);
          }
      }
      for (int64_t r = g.begin; r < g.end; ++r) row_clip[size_t(r)] = m.clip;
      any_w2 = true;
    } else {
      throw ValueError("the adaptive attacker has no model of the defense '" + d->kind() + "'");
    }
  }

  // Rows with and without input draws, and by clip bound (one rMLE each).
  std::map<std::pair<bool, double>, std::vector<int64_t>> by_model;
  for (int64_t r = 0; r < N; ++r) by_model[{active(row_def[size_t(r)].input), row_clip[size_t(r)]}].push_back(r);

  auto make_part = [&](const std::vector<int64_t>& rows, bool draws, double clip) {
    ModelledRows part;
    part.rows = rows;
    part.input_draws = draws;
    part.observed.clip_l1 = clip;
    const int64_t n = int64_t(rows.size());
    auto rows_of = [&](const std::vector<double>& all) {
      std::vector<double> out;
      out.reserve(size_t(n * P));
      for (int64_t r : rows) out.insert(out.end(), all.begin() + r * P, all.begin() + (r + 1) * P);
      return out;
    };
    std::vector<int64_t> vdims{n};
    for (size_t i = 1; i < obs.v.dim(); ++i) vdims.push_back(obs.v.size(int(i)));
    const Shape vshape(vdims);
    part.observed.kind = TargetKind::feature;
    part.observed.v = Tensor::from_vector(rows_of(target), vshape, dtype).to(device);
    if (any_w2) part.observed.weight = Tensor::from_vector(rows_of(w2), vshape, dtype).to(device);
    if (any_w1) part.observed.l1_weight = Tensor::from_vector(rows_of(w1), vshape, dtype).to(device);
    if (!target_changed && !any_w2 && !any_w1) part.observed.v = gather_rows(obs.v, rows);
    if (!draws) return part;
    // K input draws per row, from the attacker's own stream: key per draw, counters by row of the observation.
    bool any_mul = false, any_add = false;
    for (int64_t r : rows) {
      const Defense* d = row_def[size_t(r)].input;
      (d->kind() == "dropout" ? any_mul : any_add) = true;
      SL_CHECK(d->kind() == "dropout" || d->kind() == "gaussian" || d->kind() == "laplace", ValueError,
               "the adaptive attacker has no model of the input defense '", d->kind(), "'");
    }
    const Shape xshape{n, image[0], image[1], image[2]};
    for (int k = 0; k < o.eot_draws; ++k) {
      const uint64_t key = defense_key(seed ^ 0xE07E07E07ull, size_t(k));
      std::vector<double> m(size_t(n * Pin), 1.0), a(size_t(n * Pin), 0.0);
      for (int64_t i = 0; i < n; ++i) {
        const Defense* d = row_def[size_t(rows[size_t(i)])].input;
        const uint64_t first = Defense::counter(uint64_t(rows[size_t(i)]), Pin);
        const double level = d->level();
        const bool rescale = d->kind() == "dropout" && d->spec().flag("rescale");
        const double keep = rescale && level < 1 ? 1.0 / (1.0 - level) : 1.0;
        for (int64_t j = 0; j < Pin; ++j) {
          const size_t at = size_t(i * Pin + j);
          const uint64_t ctr = first + uint64_t(j);
          if (d->kind() == "dropout")
            m[at] = rng_uniform(key, ctr) < level ? 0.0 : keep;
          else if (d->kind() == "gaussian")
            a[at] = level * rng_normal(key, ctr);
          else
            a[at] = level * rng_laplace(key, ctr);
        }
      }
      if (any_mul) part.observed.input_mul.push_back(Tensor::from_vector(m, xshape, dtype).to(device));
      if (any_add) part.observed.input_add.push_back(Tensor::from_vector(a, xshape, dtype).to(device));
    }
    return part;
  };
  std::vector<ModelledRows> parts;
  for (const auto& [key, rows] : by_model) parts.push_back(make_part(rows, key.first, key.second));
  return parts;
}

std::string describe_defense_model(const DefenseChain& deployed, const AdaptiveOptions& o) {
  PlacedDefenses p = placed(deployed);
  std::string s;
  auto add = [&](const std::string& t) { s += (s.empty() ? "" : "; ") + t; };
  if (active(p.input))
    add(p.input->spec().str() + ": mean over " + std::to_string(o.eot_draws) + " draws of the defense (EOT)");
  if (active(p.intermediate)) {
    const std::string& k = p.intermediate->kind();
    add(p.intermediate->spec().str() +
        (k == "dropout"    ? ": squared error over the non-zero entries of v"
         : k == "gaussian" ? ": squared error, weighed against the prior by the SNR"
         : k == "cis"      ? ": f1's output clipped as the edge clips it, squared error weighed per channel by the SNR"
                           : ": absolute error (Laplace MAP)"));
  }
  return s.empty() ? "no defense modelled" : s;
}

}  // namespace sl::inv
