#include "runtime/adaptive.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>
#include <thread>

#include "autograd/node.h"
#include "runtime/metrics.h"

namespace sl::runtime {

namespace {

double median(std::vector<double> v) { return v.empty() ? 0.0 : percentile(std::move(v), 50); }

}  // namespace

AdaptiveRunResult run_edge_adaptive(CloudClient& client, const std::vector<AdaptiveSplit>& splits, const Tensor& images,
                                    const std::vector<int32_t>& labels, const EdgeRunOptions& opt,
                                    const AdaptiveOptions& aopt, const EdgeProgress& progress) {
  SL_CHECK(!splits.empty(), ValueError, "adaptive split: no split to choose from");
  SL_CHECK(aopt.calibration >= 1 && aopt.calibration <= 1000, ValueError,
           "adaptive split: calibration requests per split must be in [1, 1000], got ", aopt.calibration);
  AdaptiveRunResult out;

  // Calibration: every split on the first images, at the link the run starts with.
  EdgeRunOptions co = opt;
  co.warmup = 1;
  co.rate = 0;
  co.window = 1;
  int64_t cal_images = std::min(images.size(0), aopt.calibration * opt.batch);
  std::vector<double> xs, ys;  // bits, wire seconds
  for (auto& s : splits) {
    co.split_id = s.split_id;
    EdgeRunResult r = run_edge(client, s.compute, images.slice(0, cal_images), {}, co);
    SL_CHECK(r.failed_requests == 0, Error, "adaptive split: calibration at ", s.name, " failed: ", r.first_error);
    std::vector<double> bytes, edge, cloud;
    for (auto& t : r.timings) {
      bytes.push_back(double(t.up_bytes + t.down_bytes));
      edge.push_back(t.edge_s);
      cloud.push_back(t.cloud_s);
      xs.push_back(double(t.up_bytes + t.down_bytes) * 8);
      ys.push_back(t.wire_s);
    }
    SplitCost c;
    c.split = s.name;
    c.bytes_sent = int64_t(median(bytes));
    c.edge_seconds = median(edge);
    c.cloud_seconds = median(cloud);
    out.costs.push_back(c);
  }
  // wire = overhead + bits / bandwidth, least squares; a fit without spread in the sizes (one split) or with a
  // non-positive slope keeps the whole wire time as transfer (overhead 0).
  double n = double(xs.size()), mx = 0, my = 0;
  for (size_t i = 0; i < xs.size(); ++i) mx += xs[i] / n, my += ys[i] / n;
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < xs.size(); ++i) sxx += (xs[i] - mx) * (xs[i] - mx), sxy += (xs[i] - mx) * (ys[i] - my);
  double slope = sxx > 0 ? sxy / sxx : 0;
  if (slope > 0) {
    double min_y = *std::min_element(ys.begin(), ys.end());
    out.overhead_s = std::clamp(my - slope * mx, 0.0, std::max(0.0, min_y));
    out.calibration_mbps = 1e-6 / slope;
  } else {
    out.overhead_s = 0;
    out.calibration_mbps = my > 0 ? mx / my * 1e-6 : 1e3;
  }
  // The timing noise: 2 x the 90th percentile of the fit's absolute residuals (at least 20 us). A transfer whose
  // time is within it cannot tell the link's speed, only that the link is at least bits / noise fast.
  std::vector<double> resid;
  for (size_t i = 0; i < xs.size(); ++i)
    resid.push_back(std::abs(ys[i] - out.overhead_s - (slope > 0 ? slope * xs[i] : 0)));
  out.noise_s = std::max(20e-6, 2 * percentile(resid, 90));

  AdaptiveSplitChooser chooser(out.costs, Link{out.calibration_mbps * 1e6, 0}, aopt.alpha, aopt.hysteresis,
                               aopt.confirm);
  SplitPolicy policy;
  for (auto& s : splits) policy.splits.push_back({s.split_id, s.compute});
  std::map<uint16_t, size_t> index_of;
  for (size_t i = 0; i < splits.size(); ++i) index_of[splits[i].split_id] = i;
  int64_t requests = (images.size(0) + opt.batch - 1) / opt.batch;
  out.split_of.assign(size_t(requests), 0);
  out.estimate_mbps.assign(size_t(requests), 0);
  // The split that is fastest at the calibrated link: after a transfer too short to time, the next request probes
  // the link at it (when it sends more), so that a link that became fast again is measured, not guessed.
  size_t optimistic = 0;
  for (size_t i = 1; i < out.costs.size(); ++i)
    if (split_latency(out.costs[i], chooser.link()) < split_latency(out.costs[optimistic], chooser.link()))
      optimistic = i;
  // A probe that finds the link slow doubles the wait before the next one (4, 8, 16, ... requests); a change of
  // split resets it.
  bool probe = false, probing = false;
  int64_t next = 0, wait = 0, backoff = 4;
  size_t last_split = chooser.current_index();
  policy.choose = [&] {
    size_t c = chooser.current_index();
    if (c != last_split) last_split = c, wait = 0, backoff = 4;
    probing = false;
    if (probe && wait <= 0 && out.costs[optimistic].bytes_sent > out.costs[c].bytes_sent) {
      c = optimistic;
      probing = true;
      ++out.probes;
    }
    probe = false;
    --wait;
    if (next < requests) out.split_of[size_t(next)] = c;
    ++next;
    return c;
  };
  policy.observe = [&](const RequestTiming& t) {
    const double bits = double(t.up_bytes + t.down_bytes) * 8;
    const double sec = t.wire_s - out.overhead_s;
    if (sec < out.noise_s) {
      chooser.observe_lower_bound(bits / out.noise_s);  // too short to time: the link is at least this fast
      probe = true;
    } else {
      chooser.observe_transfer(int64_t(t.up_bytes + t.down_bytes), sec);
      if (probing && chooser.current_index() == last_split) wait = backoff, backoff *= 2;  // the link is slow
    }
    if (t.index >= 0 && t.index < requests) out.estimate_mbps[size_t(t.index)] = chooser.bandwidth_bps() * 1e-6;
  };
  EdgeRunOptions ro = opt;
  ro.warmup = 0;
  out.run = run_edge(client, policy, images, labels, ro, progress);
  out.switches = chooser.switches();
  return out;
}

EdgeCompute emulated_device(EdgeCompute compute, double per_image_s) {
  SL_CHECK(std::isfinite(per_image_s) && per_image_s >= 0 && per_image_s <= 60, ValueError,
           "emulated edge device: seconds per image must be in [0, 60], got ", per_image_s);
  return [compute = std::move(compute), per_image_s](const Tensor& x, int64_t first_query) {
    using Clock = std::chrono::steady_clock;
    auto t0 = Clock::now();
    Tensor v = compute(x, first_query);
    std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(per_image_s * double(x.size(0)))));
    return v;
  };
}

double time_per_image(const EdgeCompute& compute, const Tensor& sample, int repeats) {
  SL_CHECK(sample.dim() >= 1 && sample.size(0) >= 1 && repeats >= 1, ValueError, "time_per_image: no sample");
  NoGradGuard ng;
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Tensor v = compute(sample, 0);
    if (v.device().is_cuda()) v = v.to(Device::cpu());
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(t) / double(sample.size(0));
}

std::vector<LinkPhase> link_phases(const LinkOptions& link, int64_t requests) {
  std::vector<LinkPhase> out;
  if (!link.by_request || link.schedule.empty()) return {{0, requests, link.mbps}};
  int64_t first = 0;
  double mbps = link.mbps;
  for (auto& s : link.schedule) {
    int64_t at = std::min<int64_t>(requests, int64_t(std::ceil(s.at)));
    if (at > first) out.push_back({first, at, mbps});
    first = std::max(first, at);
    mbps = s.mbps;
  }
  if (requests > first) out.push_back({first, requests, mbps});
  return out;
}

int64_t parse_link_phases(const std::string& spec, LinkOptions& link) {
  link.schedule.clear();
  std::stringstream ss(spec);
  std::string item;
  int64_t total = 0;
  while (std::getline(ss, item, ',')) {
    size_t colon = item.find(':');
    SL_CHECK(colon != std::string::npos, ValueError, "--link-phases item '", item, "' is not MBPS:REQUESTS");
    std::string a = item.substr(0, colon), b = item.substr(colon + 1);
    double mbps = 0;
    long long n = 0;
    size_t pa = 0, pb = 0;
    try {
      mbps = std::stod(a, &pa);
      n = std::stoll(b, &pb);
    } catch (const std::exception&) {
      pa = pb = 0;
    }
    SL_CHECK(pa > 0 && pa == a.size() && pb > 0 && pb == b.size() && std::isfinite(mbps) && mbps > 0 && mbps <= 1e6 &&
                 n >= 1 && n <= 10000000,
             ValueError, "--link-phases item '", item, "': MBPS must be in (0, 1e6] and REQUESTS in [1, 1e7]");
    link.schedule.push_back({double(total), mbps});
    total += n;
  }
  SL_CHECK(!link.schedule.empty(), ValueError, "--link-phases is empty");
  link.by_request = true;
  return total;
}

PhaseStats phase_stats(const EdgeRunResult& r, const LinkPhase& phase) {
  PhaseStats s;
  double sum = 0;
  for (auto& t : r.timings) {
    if (t.index < phase.first || t.index >= phase.end) continue;
    ++s.requests;
    sum += t.e2e_s;
    ++s.by_split[t.split_id];
  }
  s.mean_e2e_s = s.requests ? sum / double(s.requests) : 0;
  return s;
}

}  // namespace sl::runtime
