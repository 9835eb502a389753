// The partition cost model (SPEC §5): what each split point costs the edge and the link, the latency model
// t(l) = t_edge(l) + bytes(l)/bandwidth + rtt + t_cloud(l), the choice of a split under a privacy threshold and an
// edge memory budget, and CIS's bandwidth-adaptive chooser — a link estimate from the edge's own transfers (moving
// average) that picks the fastest allowed split as the link changes. The chooser is a plain object: the network
// runtime feeds it the transfers it measures and names the split it returns in each request.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nn/models.h"

namespace sl {

// What one split point costs, per image (float32 on the wire).
struct SplitCost {
  std::string split;
  int64_t bytes_sent = 0;           // the intermediate tensor of one image
  double edge_flops = 0;            // multiply-adds × 2 of the head (conv, linear); one per element elsewhere
  int64_t edge_param_bytes = 0;     // the head's parameters
  int64_t edge_peak_act_bytes = 0;  // the largest input + output of one head layer, one image
  double edge_seconds = 0;          // measured per image, this machine
  double cloud_seconds = 0;
  int64_t edge_memory() const { return edge_param_bytes + edge_peak_act_bytes; }
};

// Analytic costs of every layer of the model as a split point (times left 0: measure_split_times fills them).
std::vector<SplitCost> split_costs(const Model& model);
// Measures each layer's forward time per image on the model's device (batch `batch`, best of `repeats`) and fills
// edge_seconds (layers up to the split) and cloud_seconds (the rest) of `costs` (from split_costs of this model).
void measure_split_times(const Model& model, std::vector<SplitCost>& costs, int64_t batch = 64, int repeats = 3);

struct Link {
  double bandwidth_bps = 0;  // bits per second, > 0
  double rtt_s = 0;
};
// t_edge + bytes·8/bandwidth + rtt + t_cloud, in seconds. ValueError for a bandwidth <= 0.
double split_latency(const SplitCost& cost, const Link& link);

// One split the advisor weighs: its cost and how much it leaks (the worst attack's SSIM and leakage index).
struct SplitCandidate {
  SplitCost cost;
  double ssim = 0, leakage_bits = 0;
};
struct SplitConstraints {
  std::optional<double> max_ssim, max_leakage_bits;
  std::optional<int64_t> edge_memory_bytes;
};
struct SplitChoice {
  std::optional<size_t> index;       // into the candidates; none when nothing satisfies the constraints
  std::string reason;                // which constraint bound, with the numbers
  std::vector<std::string> why_not;  // per candidate: "" when allowed, else the constraint it breaks
  std::vector<double> latency_s;     // per candidate, at the link
};
// The fastest candidate that meets every constraint; the reason names the faster splits each constraint excluded.
SplitChoice choose_split(const std::vector<SplitCandidate>& candidates, const Link& link,
                         const SplitConstraints& constraints);

// CIS's adaptive partition: the link estimated from the transfers the edge makes (bytes and seconds of each: an
// exponential moving average of the seconds per bit with weight `alpha` for the newest; a transfer more than 2× off
// the estimate either way is taken as a change of link and replaces it), the split re-chosen after every
// transfer among `allowed` (the splits the privacy threshold and the memory budget allow), switching only when the
// new split is faster by more than `hysteresis` (a fraction) at the estimate, so noise in the measurement does not
// flap it. With `confirm` > 1, a change of link is taken only after that many consecutive transfers off the same
// way (the last one replaces the estimate); a lone outlier before that is left out of the average (a timing spike on
// a loaded machine is not a slower link).
class AdaptiveSplitChooser {
 public:
  AdaptiveSplitChooser(std::vector<SplitCost> allowed, Link initial, double alpha = 0.5, double hysteresis = 0.05,
                       int confirm = 1);
  // One transfer of `bytes` that took `seconds` on the wire (excluding the round trip); updates the estimate and
  // the split. Transfers of 0 bytes or non-positive time are ignored.
  void observe_transfer(int64_t bytes, double seconds);
  // A transfer too short to time says only that the link is at least `bps` fast: the estimate is raised to it (never
  // lowered) and the split re-chosen. Timing noise only adds time, so such a bound is taken at once; it does not
  // interrupt a run of transfers off the estimate that `confirm` counts.
  void observe_lower_bound(double bps);
  double bandwidth_bps() const { return link_.bandwidth_bps; }
  const Link& link() const { return link_; }
  const SplitCost& current() const { return allowed_[current_]; }
  size_t current_index() const { return current_; }
  int64_t switches() const { return switches_; }

 private:
  size_t fastest() const;
  void rechoose();
  std::vector<SplitCost> allowed_;
  Link link_;
  double alpha_, hysteresis_;
  int confirm_ = 1, off_ = 0;  // consecutive transfers off the estimate: > 0 faster, < 0 slower
  size_t current_ = 0;
  int64_t switches_ = 0;
};

}  // namespace sl
