#include "split/partition.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "autograd/node.h"
#include "nn/profile.h"
#include "tensor/rng.h"

namespace sl {

std::vector<SplitCost> split_costs(const Model& model) {
  SL_CHECK(model.net, ValueError, "split costs: the model has no network");
  const auto shapes = model.net->output_shapes(model.batch_shape(1));
  std::vector<SplitCost> out;
  double flops = 0;
  int64_t params = 0, peak = 0;
  Shape in = model.batch_shape(1);
  for (auto& [name, shape] : shapes) {
    auto layer = model.net->layer(name);
    const LayerKind kind = layer_kind_of(*layer);
    int64_t weight = 0;
    for (auto& [pname, p] : layer->named_parameters())
      if (pname == "weight") weight = p.numel();
    if (kind == LayerKind::conv || kind == LayerKind::conv_transpose)
      flops += 2.0 * double(weight) * double(shape.numel() / std::max<int64_t>(shape[1], 1));  // per output position
    else if (kind == LayerKind::linear)
      flops += 2.0 * double(weight);
    else if (kind != LayerKind::flatten)
      flops += double(shape.numel());
    params += layer->num_parameters() * 4;
    peak = std::max(peak, (in.numel() + shape.numel()) * 4);
    SplitCost c;
    c.split = name;
    c.bytes_sent = shape.numel() * 4;
    c.edge_flops = flops;
    c.edge_param_bytes = params;
    c.edge_peak_act_bytes = peak;
    out.push_back(c);
    in = shape;
  }
  return out;
}

void measure_split_times(const Model& model, std::vector<SplitCost>& costs, int64_t batch, int repeats) {
  SL_CHECK(batch >= 1 && repeats >= 1, ValueError, "measure split times: batch and repeats must be >= 1");
  const auto names = model.net->layer_names();
  SL_CHECK(costs.size() == names.size(), ValueError, "measure split times: ", costs.size(), " costs for ", names.size(),
           " layers");
  NoGradGuard no_grad;
  Generator g(1);
  const Device dev = model.net->parameters().empty() ? Device::cpu() : model.net->parameters()[0].device();
  Tensor x0 = Tensor::empty(model.batch_shape(batch));
  {
    std::vector<float> v(size_t(x0.numel()));
    for (auto& e : v) e = float(g.uniform() * 2 - 1);
    x0 = Tensor::from_vector(v, x0.shape()).to(dev);
  }
  std::vector<double> best(names.size(), std::numeric_limits<double>::infinity());
  for (int r = 0; r < repeats; ++r) {
    Tensor x = x0;
    for (size_t i = 0; i < names.size(); ++i) {
      auto t0 = std::chrono::steady_clock::now();
      Tensor y = model.net->layer(names[i])->forward(x);
      if (dev.is_cuda()) y.to(Device::cpu());  // waits for the device
      best[i] = std::min(best[i], std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      x = y;
    }
  }
  double total = 0;
  for (double b : best) total += b / double(batch);
  double edge = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    edge += best[i] / double(batch);
    costs[i].edge_seconds = edge;
    costs[i].cloud_seconds = std::max(0.0, total - edge);
  }
}

double split_latency(const SplitCost& c, const Link& link) {
  SL_CHECK(link.bandwidth_bps > 0 && std::isfinite(link.bandwidth_bps), ValueError,
           "latency model: the bandwidth must be > 0 bit/s, got ", link.bandwidth_bps);
  SL_CHECK(link.rtt_s >= 0 && std::isfinite(link.rtt_s), ValueError, "latency model: the round trip must be >= 0 s");
  return c.edge_seconds + double(c.bytes_sent) * 8.0 / link.bandwidth_bps + link.rtt_s + c.cloud_seconds;
}

namespace {
std::string num(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}
std::string kib(double bytes) {
  if (bytes < 1024) return num(bytes, 0) + " B";
  if (bytes < 1024.0 * 1024) return num(bytes / 1024.0, 1) + " KiB";
  return num(bytes / 1024.0 / 1024.0, 2) + " MiB";
}
}  // namespace

SplitChoice choose_split(const std::vector<SplitCandidate>& cands, const Link& link, const SplitConstraints& k) {
  SL_CHECK(!cands.empty(), ValueError, "choose split: no candidate splits");
  SplitChoice out;
  for (auto& c : cands) {
    out.latency_s.push_back(split_latency(c.cost, link));
    std::string why;
    if (k.max_ssim && c.ssim > *k.max_ssim)
      why = "SSIM " + num(c.ssim, 3) + " > " + num(*k.max_ssim, 3);
    else if (k.max_leakage_bits && c.leakage_bits > *k.max_leakage_bits)
      why = "leakage " + num(c.leakage_bits, 2) + " > " + num(*k.max_leakage_bits, 2) + " bit/px";
    else if (k.edge_memory_bytes && c.cost.edge_memory() > *k.edge_memory_bytes)
      why = "edge memory " + kib(double(c.cost.edge_memory())) + " > " + kib(double(*k.edge_memory_bytes));
    out.why_not.push_back(why);
  }
  for (size_t i = 0; i < cands.size(); ++i)
    if (out.why_not[i].empty() && (!out.index || out.latency_s[i] < out.latency_s[*out.index])) out.index = i;
  if (!out.index) {
    out.reason = "no split meets the constraints (each breaks one: see the table)";
    return out;
  }
  const size_t c = *out.index;
  out.reason = cands[c].cost.split + ": the fastest allowed split, " + num(out.latency_s[c] * 1e3, 2) + " ms at " +
               num(link.bandwidth_bps / 1e6, 3) + " Mbit/s (" + kib(double(cands[c].cost.bytes_sent)) + " sent, SSIM " +
               num(cands[c].ssim, 3) + ", leakage " + num(cands[c].leakage_bits, 2) + " bit/px, edge memory " +
               kib(double(cands[c].cost.edge_memory())) + ")";
  std::string faster;
  for (size_t i = 0; i < cands.size(); ++i)
    if (i != c && out.latency_s[i] < out.latency_s[c])
      faster += (faster.empty() ? "" : "; ") + cands[i].cost.split + " " + num(out.latency_s[i] * 1e3, 2) +
                " ms: " + out.why_not[i];
  out.reason += faster.empty() ? "; no split is faster" : "; faster splits excluded — " + faster;
  return out;
}

AdaptiveSplitChooser::AdaptiveSplitChooser(std::vector<SplitCost> allowed, Link initial, double alpha,
                                           double hysteresis, int confirm)
    : allowed_(std::move(allowed)), link_(initial), alpha_(alpha), hysteresis_(hysteresis), confirm_(confirm) {
  SL_CHECK(confirm >= 1 && confirm <= 100, ValueError, "adaptive split: confirm must be in [1, 100], got ", confirm);
  SL_CHECK(!allowed_.empty(), ValueError, "adaptive split: no allowed split");
  SL_CHECK(alpha > 0 && alpha <= 1, ValueError, "adaptive split: the averaging weight must be in (0, 1], got ", alpha);
  SL_CHECK(hysteresis >= 0 && hysteresis < 1, ValueError, "adaptive split: hysteresis must be in [0, 1), got ",
           hysteresis);
  split_latency(allowed_[0], link_);  // ValueError for a bad initial link
  current_ = fastest();
}

size_t AdaptiveSplitChooser::fastest() const {
  size_t best = 0;
  for (size_t i = 1; i < allowed_.size(); ++i)
    if (split_latency(allowed_[i], link_) < split_latency(allowed_[best], link_)) best = i;
  return best;
}

void AdaptiveSplitChooser::observe_transfer(int64_t bytes, double seconds) {
  if (bytes <= 0 || !(seconds > 0) || !std::isfinite(seconds)) return;
  // The average is over seconds per bit (latency is linear in it); a sample more than 2× off the estimate either
  // way is a change of link and replaces it outright.
  const double rate = double(bytes) * 8.0 / seconds;
  const double ratio = rate / link_.bandwidth_bps;
  if (ratio > 2 || ratio < 0.5) {
    const int dir = ratio > 2 ? 1 : -1;
    off_ = off_ * dir > 0 ? off_ + dir : dir;
    if (off_ * dir < confirm_) return;  // not (yet) a change of link
    link_.bandwidth_bps = rate;
  } else {
    link_.bandwidth_bps = 1.0 / (alpha_ / rate + (1 - alpha_) / link_.bandwidth_bps);
  }
  off_ = 0;
  rechoose();
}

void AdaptiveSplitChooser::observe_lower_bound(double bps) {
  if (!(bps > link_.bandwidth_bps) || !std::isfinite(bps)) return;
  link_.bandwidth_bps = bps;
  rechoose();
}

void AdaptiveSplitChooser::rechoose() {
  const size_t f = fastest();
  if (f != current_ &&
      split_latency(allowed_[f], link_) < (1 - hysteresis_) * split_latency(allowed_[current_], link_)) {
    current_ = f;
    ++switches_;
  }
}

}  // namespace sl
