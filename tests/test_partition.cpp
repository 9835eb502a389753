// split/partition.h: the per-split costs of LeNet against hand-counted numbers, the latency model, the choice under
// privacy and memory constraints (and its reason), and the adaptive chooser over a simulated link schedule
// (fast -> slow -> fast): it switches within a few transfers of each change and then serves the fastest split.
#include <catch2/catch.hpp>
#include <cmath>

#include "experiment/partition.h"
#include "split/partition.h"
#include "tensor/rng.h"

using namespace sl;

TEST_CASE("partition: LeNet's per-split costs are the hand-counted ones", "[partition]") {
  Generator g(1);
  Model m = make_model("lenet", g);
  auto costs = split_costs(m);
  REQUIRE(costs.size() == 12);
  CHECK(costs[0].split == "conv1");
  CHECK(costs[0].bytes_sent == 8 * 24 * 24 * 4);
  CHECK(costs[0].edge_flops == 2.0 * 8 * 25 * 24 * 24);
  CHECK(costs[0].edge_param_bytes == (8 * 25 + 8) * 4);
  CHECK(costs[0].edge_peak_act_bytes == (28 * 28 + 8 * 24 * 24) * 4);
  CHECK(costs[4].split == "ReLU2");
  CHECK(costs[4].bytes_sent == 16 * 8 * 8 * 4);
  CHECK(costs[7].split == "fc1");
  CHECK(costs[7].bytes_sent == 120 * 4);
  CHECK(costs[7].edge_param_bytes == (208 + 16 * 8 * 25 + 16 + 256 * 120 + 120) * 4);
  CHECK(costs[11].bytes_sent == 10 * 4);
  for (size_t i = 1; i < costs.size(); ++i) CHECK(costs[i].edge_flops >= costs[i - 1].edge_flops);
  measure_split_times(m, costs, 8, 1);
  for (size_t i = 0; i < costs.size(); ++i) {
    CHECK(costs[i].edge_seconds > 0);
    CHECK(costs[i].cloud_seconds >= 0);
    if (i) CHECK(costs[i].edge_seconds >= costs[i - 1].edge_seconds);
  }
  CHECK(costs.back().cloud_seconds == Approx(0).margin(1e-12));
}

namespace {

SplitCost cost(const std::string& name, int64_t bytes, double edge_s, double cloud_s, int64_t memory = 0) {
  SplitCost c;
  c.split = name;
  c.bytes_sent = bytes;
  c.edge_seconds = edge_s;
  c.cloud_seconds = cloud_s;
  c.edge_param_bytes = memory;
  return c;
}

}  // namespace

TEST_CASE("partition: latency model and the choice under privacy and memory constraints", "[partition]") {
  Link link{1e6, 0.01};  // 1 Mbit/s, 10 ms
  CHECK(split_latency(cost("a", 1000, 0.001, 0.002), link) == Approx(0.001 + 0.008 + 0.01 + 0.002));
  CHECK_THROWS_AS(split_latency(cost("a", 1, 0, 0), Link{0, 0}), ValueError);
  CHECK_THROWS_AS(split_latency(cost("a", 1, 0, 0), Link{1e6, -1}), ValueError);
  // early: big and leaky; mid: smaller, still leaky; late: tiny, private but heavy on memory; last: private, heavy.
  std::vector<SplitCandidate> c{{cost("early", 20000, 0.0001, 0.0005, 1000), 0.9, 3},
                                {cost("mid", 4000, 0.001, 0.002, 10000), 0.5, 1.5},
                                {cost("late", 480, 0.002, 0.0005, 3000000), 0.1, 0.2},
                                {cost("last", 40, 0.008, 0, 3100000), 0.05, 0.1}};
  SplitConstraints k;
  // No constraint: at 1 Mbit/s the bytes dominate: late (0.002 + 0.00384 + 0.01 + 0.0005) beats last.
  auto ch = choose_split(c, link, k);
  REQUIRE(ch.index);
  CHECK(c[*ch.index].cost.split == "late");
  // At 1 Gbit/s the edge's compute dominates: early.
  ch = choose_split(c, Link{1e9, 0.01}, k);
  CHECK(c[*ch.index].cost.split == "early");
  // Privacy: SSIM <= 0.3 rules out early and mid.
  k.max_ssim = 0.3;
  ch = choose_split(c, Link{1e9, 0.01}, k);
  CHECK(c[*ch.index].cost.split == "late");
  CHECK_THAT(ch.reason, Catch::Contains("early") && Catch::Contains("SSIM 0.900 > 0.300"));
  // Memory 2 MB: late and last do not fit; with the privacy bound nothing is left.
  k.edge_memory_bytes = 2000000;
  ch = choose_split(c, Link{1e9, 0.01}, k);
  CHECK(!ch.index);
  CHECK(ch.why_not[2].find("edge memory") != std::string::npos);
  k.max_ssim.reset();
  k.max_leakage_bits = 2;
  ch = choose_split(c, link, k);
  CHECK(c[*ch.index].cost.split == "mid");
  CHECK(ch.why_not[0].find("leakage") != std::string::npos);
}

TEST_CASE("partition: the adaptive chooser follows a fast -> slow -> fast link schedule", "[partition]") {
  // Two allowed splits: a late one that sends little but computes long on the edge, an early one that sends much.
  std::vector<SplitCost> allowed{cost("early", 100000, 0.001, 0.001), cost("late", 1000, 0.02, 0.0001)};
  const double fast = 1e9, slow = 2e6;  // at 1 Gbit/s early wins (2.8 ms vs 20.1 ms); at 2 Mbit/s late wins
  CHECK(split_latency(allowed[0], Link{fast, 0}) < split_latency(allowed[1], Link{fast, 0}));
  CHECK(split_latency(allowed[1], Link{slow, 0}) < split_latency(allowed[0], Link{slow, 0}));
  AdaptiveSplitChooser chooser(allowed, Link{fast, 0.001});
  CHECK(chooser.current().split == "early");
  // The schedule: 200 requests fast, 200 slow, 200 fast; each request's transfer takes bytes / rate (± 5 % jitter).
  // Per phase, the latency each request achieved (the model at the true rate) against the best fixed split's.
  Generator g(4);
  std::vector<std::string> served;
  for (int phase = 0; phase < 3; ++phase) {
    const double rate = phase == 1 ? slow : fast;
    const Link truth{rate, 0.001};
    double achieved = 0;
    for (int r = 0; r < 200; ++r) {
      const SplitCost& s = chooser.current();
      served.push_back(s.split);
      achieved += split_latency(s, truth) / 200;
      const double jitter = 1 + 0.1 * (g.uniform() - 0.5);
      chooser.observe_transfer(s.bytes_sent, double(s.bytes_sent) * 8 / rate * jitter);
    }
    const double best_fixed = std::min(split_latency(allowed[0], truth), split_latency(allowed[1], truth));
    INFO("phase " << phase << ": achieved " << achieved * 1e3 << " ms, best fixed " << best_fixed * 1e3 << " ms");
    // The request served on the old split after each change costs its phase (at 2 Mbit/s the early split takes 16×
    // as long): over 200 requests the phase stays within 10 % of the best fixed split.
    CHECK(achieved <= 1.10 * best_fixed);
  }
  for (int i = 0; i < 200; ++i) CHECK(served[size_t(i)] == "early");
  auto first_late = std::find(served.begin() + 200, served.end(), "late") - served.begin();
  CHECK(first_late >= 200);
  CHECK(first_late <= 202);  // within a few requests of the change to slow
  for (int i = int(first_late); i < 400; ++i) CHECK(served[size_t(i)] == "late");
  auto back = std::find(served.begin() + 400, served.end(), "early") - served.begin();
  CHECK(back <= 402);
  for (int i = int(back); i < 600; ++i) CHECK(served[size_t(i)] == "early");
  CHECK(chooser.switches() == 2);
  CHECK(chooser.bandwidth_bps() == Approx(fast).epsilon(0.1));
  // Bad settings and empty transfers.
  CHECK_THROWS_AS(AdaptiveSplitChooser({}, Link{fast, 0}), ValueError);
  CHECK_THROWS_AS(AdaptiveSplitChooser(allowed, Link{fast, 0}, 0), ValueError);
  CHECK_THROWS_AS(AdaptiveSplitChooser(allowed, Link{-1, 0}), ValueError);
  chooser.observe_transfer(0, 1);
  chooser.observe_transfer(100, 0);
  chooser.observe_transfer(100, std::nan(""));
  CHECK(chooser.bandwidth_bps() == Approx(fast).epsilon(0.1));

  // confirm = 2: a lone slow transfer (a timing spike) changes nothing; two in a row are a slower link.
  AdaptiveSplitChooser steady(allowed, Link{fast, 0}, 0.5, 0.05, 2);
  CHECK(steady.current().split == "early");
  const int64_t b = allowed[0].bytes_sent;
  steady.observe_transfer(b, double(b) * 8 / slow);
  CHECK(steady.current().split == "early");
  CHECK(steady.bandwidth_bps() == fast);
  steady.observe_transfer(b, double(b) * 8 / fast);  // back in line: the count starts again
  steady.observe_transfer(b, double(b) * 8 / slow);
  CHECK(steady.current().split == "early");
  steady.observe_transfer(b, double(b) * 8 / slow);
  CHECK(steady.current().split == "late");
  CHECK(steady.bandwidth_bps() == Approx(slow));
  CHECK(steady.switches() == 1);
  // A lower bound raises the estimate at once (back to the early split), never lowers it.
  steady.observe_lower_bound(slow / 2);
  CHECK(steady.bandwidth_bps() == Approx(slow));
  steady.observe_lower_bound(fast);
  CHECK(steady.bandwidth_bps() == fast);
  CHECK(steady.current().split == "early");
  CHECK(steady.switches() == 2);
  CHECK_THROWS_AS(AdaptiveSplitChooser(allowed, Link{fast, 0}, 0.5, 0.05, 0), ValueError);
}

TEST_CASE("partition: bandwidth and memory flags with units; bad ones are clear errors", "[partition]") {
  using experiment::parse_bandwidth;
  using experiment::parse_bytes;
  CHECK(parse_bandwidth("1Mbit") == 1e6);
  CHECK(parse_bandwidth("100 Mbit/s") == 1e8);
  CHECK(parse_bandwidth("500kbit") == 5e5);
  CHECK(parse_bandwidth("1.5Gbps") == 1.5e9);
  CHECK(parse_bandwidth("2e6") == 2e6);
  CHECK(parse_bytes("2MB") == 2000000);
  CHECK(parse_bytes("64KiB") == 65536);
  CHECK(parse_bytes("1.5MiB") == 1572864);
  CHECK(parse_bytes("4096") == 4096);
  CHECK_THROWS_WITH(parse_bandwidth("fast"), Catch::Contains("--bandwidth") && Catch::Contains("'fast'"));
  CHECK_THROWS_WITH(parse_bandwidth("1Mbyte"), Catch::Contains("unknown unit 'mbyte'"));
  CHECK_THROWS_AS(parse_bandwidth("0Mbit"), ValueError);
  CHECK_THROWS_AS(parse_bandwidth("-1Mbit"), ValueError);
  CHECK_THROWS_AS(parse_bandwidth("nanMbit"), ValueError);
  CHECK_THROWS_AS(parse_bandwidth("infMbit"), ValueError);
  CHECK_THROWS_WITH(parse_bytes("2 furlongs"), Catch::Contains("--edge-memory"));
  CHECK_THROWS_AS(parse_bytes("1e300GB"), ValueError);
  CHECK_THROWS_AS(parse_bytes(""), ValueError);
}
