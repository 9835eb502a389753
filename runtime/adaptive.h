// CIS's adaptive partition over the runtime: the edge holds the heads of several splits that the cloud serves,
// measures the link from its own transfers, and sends each request at the split AdaptiveSplitChooser
// (split/partition.h) picks; the link emulator's schedule changes the link during the run.
//
// Before the run, a calibration sends a few requests at every split (same link, batch and slowdown) and measures
// per request: the bytes on the wire (request + answer frames), the edge's head time and the cloud's tail time (the
// chooser's costs), and fits wire time = overhead + bytes·8 / bandwidth over all of them (least squares): the
// overhead (round trip, loopback, server I/O) is the same at every split, so each later transfer is fed to the
// chooser as (bytes, wire time − overhead). A transfer too small to time (wire time − overhead under twice the fit's
// 90th-percentile residual: a deep split's few bytes on a fast link) says only that the link is not slow: it is fed as
// a transfer at the fastest speed measured so far, so that a link that became fast again is noticed even at a split
// that sends little.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "runtime/edge.h"
#include "split/partition.h"

namespace sl::runtime {

struct AdaptiveSplit {
  std::string name;  // "ReLU2"
  uint16_t split_id = 0;
  EdgeCompute compute;
};

struct AdaptiveOptions {
  int64_t calibration = 4;  // counted requests per split (after one warm-up each)
  double alpha = 0.5;       // the chooser's moving-average weight of the newest transfer
  double hysteresis = 0.05;
  int confirm = 2;  // transfers off the estimate in a row before it is a change of link (split/partition.h)
};

struct AdaptiveRunResult {
  EdgeRunResult run;
  std::vector<SplitCost> costs;  // per split, per request: bytes on the wire, edge and cloud seconds (medians)
  double overhead_s = 0;         // the fitted per-request wire time that does not depend on the bytes
  double calibration_mbps = 0;   // the fitted link speed (the chooser's first estimate)
  double noise_s = 0;            // 2 x the fit's 90th-percentile absolute residual: a shorter transfer is not resolved
  std::vector<size_t> split_of;  // per request index: the split it was sent at (index into the splits)
  std::vector<double> estimate_mbps;  // per request index: the chooser's link estimate after its answer
  int64_t switches = 0;
  int64_t probes = 0;  // requests sent at the calibrated link's fastest split to measure the link
};

// Runs images [0, N) adaptively (opt.split_id and opt.warmup are unused; opt.window 1 measures cleanly).
AdaptiveRunResult run_edge_adaptive(CloudClient& client, const std::vector<AdaptiveSplit>& splits, const Tensor& images,
                                    const std::vector<int32_t>& labels, const EdgeRunOptions& opt,
                                    const AdaptiveOptions& aopt, const EdgeProgress& progress = {});

// The head on an emulated device slower than this CPU: each call takes at least `per_image_s` × its images (the
// rest is slept). A fixed time per image, not a multiple of each call's own time, so that a busy moment of this
// machine is not magnified into the device's timings.
EdgeCompute emulated_device(EdgeCompute compute, double per_image_s);
// The median seconds per image of `compute` on `sample` (one call per repeat).
double time_per_image(const EdgeCompute& compute, const Tensor& sample, int repeats = 15);

// The phases of a run of `requests` requests: one per step of a by-request link schedule (and the requests before
// its first step), or the whole run for any other link.
struct LinkPhase {
  int64_t first = 0, end = 0;  // request indices [first, end)
  double mbps = 0;             // 0: unlimited
};
std::vector<LinkPhase> link_phases(const LinkOptions& link, int64_t requests);

// "MBPS:N,MBPS:N,..." (N requests at each speed, in order) -> a by-request schedule; returns the total of N.
// ValueError naming the bad item.
int64_t parse_link_phases(const std::string& spec, LinkOptions& link);

// Per phase: requests answered, their mean end-to-end latency, and how many were sent at each split id.
struct PhaseStats {
  int64_t requests = 0;
  double mean_e2e_s = 0;
  std::map<uint16_t, int64_t> by_split;
};
PhaseStats phase_stats(const EdgeRunResult& r, const LinkPhase& phase);

}  // namespace sl::runtime
