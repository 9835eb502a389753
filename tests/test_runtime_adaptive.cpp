// CIS's adaptive partition live over loopback: one cloud serving every split of LeNet, an edge holding the heads,
// a fast -> slow -> fast link schedule. Checks the split choices (a switch within a few requests of each change of
// link, the deep split while the link is slow, a shallow one while it is fast) and that every request is answered
// with its own prediction. Latency against the best fixed split is measured in bench/adaptive_split.sh, not here
// (timing on a shared machine is too noisy for a unit test's bound).
#include <algorithm>
#include <catch2/catch.hpp>

#include "autograd/node.h"
#include "runtime/adaptive.h"
#include "runtime/client.h"
#include "runtime/server.h"
#include "tests/runtime_helpers.h"

using namespace sl;
using namespace rt_test;

TEST_CASE("adaptive split: fast -> slow -> fast link, the split follows within a few requests, nothing lost",
          "[runtime][adaptive]") {
  fs::path dir = temp_dir("adaptive");
  auto files = lenet_split(dir, "all");
  runtime::ServerOptions so;
  so.log = false;
  so.io_timeout_s = 5;
  runtime::CloudServer server(runtime::load_deployment(files.cloud_path, "cloud", Device::cpu()), so);
  server.start();
  auto edge = runtime::load_deployment(files.edge_path, "edge", Device::cpu());
  runtime::ClientOptions co;
  co.port = server.port();
  co.io_timeout_s = 10;
  runtime::CloudClient c(co);
  wire::Welcome w = c.hello("adaptive", edge.fingerprints());

  std::vector<runtime::AdaptiveSplit> splits;
  for (auto& sp : edge.splits) {
    auto head = edge.part(sp);
    runtime::EdgeCompute here = [head](const Tensor& x, int64_t) {
      NoGradGuard ng;
      return head->forward(x);
    };
    // A slow device: every head but the empty one takes 4 ms per image, whatever this build's speed (a multiple of
    // the measured time would make an optimised and a sanitizer build see different devices). At 100 Mbit/s sending
    // the image (3 KiB, 0.25 ms) beats running any head; at 1 Mbit/s (25 ms for the image) the split sending the
    // fewest bytes wins.
    double per_image = sp.name == "input" ? 0.0 : 0.004;
    splits.push_back({sp.name, w.find(sp.fingerprint)->split_id, runtime::emulated_device(here, per_image)});
  }
  REQUIRE(splits.size() >= 5);
  constexpr int64_t kPhase = 16, kSettle = 8;
  runtime::EdgeRunOptions o;
  int64_t n = runtime::parse_link_phases("100:16,1:16,100:16", o.link);
  REQUIRE(n == 3 * kPhase);
  Tensor images = random_input(Shape{n, 1, 28, 28}, 7);
  auto r = runtime::run_edge_adaptive(c, splits, images, {}, o, {});
  server.stop();
  server.wait();

  // Every request answered once, with the prediction of the whole model on its own image.
  REQUIRE(r.run.failed_requests == 0);
  REQUIRE(r.run.images == n);
  CHECK_THROWS_AS(runtime::emulated_device(splits[0].compute, -1), ValueError);
  Generator g(11);
  Model whole = make_model("lenet", g);
  Tensor logits;
  {
    NoGradGuard ng;
    logits = whole.net->forward(images);
  }
  for (int64_t i = 0; i < n; ++i) {
    int32_t best = 0;
    for (int32_t k = 1; k < 10; ++k)
      if (logits.data<float>()[i * 10 + k] > logits.data<float>()[i * 10 + best]) best = k;
    CHECK(r.run.predictions[size_t(i)] == best);
  }

  // The splits: the calibration's bytes per request; a slow phase settles on a split sending fewer bytes than any
  // split a fast phase settles on, within kSettle requests of each change. Leaving a deep split for a shallow one
  // waits for a probe (a deep split's few bytes cannot time a fast link), and probes back off while the link is
  // slow, so the return to a fast link can take several requests.
  auto bytes_of = [&](int64_t req) { return r.costs[r.split_of[size_t(req)]].bytes_sent; };
  std::string trace;
  for (int64_t i = 0; i < n; ++i) trace += str(splits[r.split_of[size_t(i)]].name, " ");
  INFO("splits per request: " << trace << "; overhead " << r.overhead_s * 1e3 << " ms, calibrated "
                              << r.calibration_mbps << " Mbit/s, noise " << r.noise_s * 1e3 << " ms, " << r.probes
                              << " probes");
  int64_t max_fast = 0, min_slow = INT64_MAX;
  for (int64_t i = kSettle; i < kPhase; ++i) {
    max_fast = std::max({max_fast, bytes_of(i), bytes_of(2 * kPhase + i)});
    min_slow = std::min(min_slow, bytes_of(kPhase + i));
  }
  CHECK(r.costs[r.split_of[0]].bytes_sent > min_slow);
  CHECK(max_fast > min_slow);
  // Settled slow-phase requests send fewer bytes than the settled fast phases' typical (median) request, but for a
  // few: while the link is slow the edge still probes it now and then (after 4, 8, 16, ... requests) at the fast
  // link's split, and a burst of timing noise on a busy machine can move a request or two.
  std::vector<int64_t> fast;
  for (int64_t i = kSettle; i < kPhase; ++i) fast.insert(fast.end(), {bytes_of(i), bytes_of(2 * kPhase + i)});
  std::nth_element(fast.begin(), fast.begin() + int64_t(fast.size() / 2), fast.end());
  const int64_t fast_typical = fast[fast.size() / 2];
  int64_t slow_below = 0;
  for (int64_t i = kSettle; i < kPhase; ++i) slow_below += bytes_of(kPhase + i) < fast_typical;
  CHECK(slow_below >= kPhase - kSettle - 2);
  int64_t changes = 0;
  for (int64_t i = 1; i < n; ++i) changes += r.split_of[size_t(i)] != r.split_of[size_t(i - 1)];
  CHECK(changes >= 2);
  fs::remove_all(dir);
}
