// The edge's side of a run: for each request, the head (and the defense) on a slice of images, the frame to
// the cloud, the answer back; requests pipelined up to a window, optionally paced at a rate and through an
// emulated link; per-request timings split into edge compute, wire and cloud time.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "runtime/client.h"
#include "runtime/link.h"
#include "tensor/tensor.h"

namespace sl::runtime {

// What the edge computes for a batch of images whose first is query number `first_query` (the seam for the
// defense: a per-query seeded draw depends only on (seed, query)). Returns what is sent.
using EdgeCompute = std::function<Tensor(const Tensor& images, int64_t first_query)>;

struct EdgeRunOptions {
  uint16_t split_id = 0;  // as in the WELCOME
  int64_t batch = 1;      // images per request
  int window = 1;         // requests in flight
  double rate = 0;        // requests per second, open loop (0: as fast as the window allows)
  int64_t warmup = 0;     // requests run first and left out of the timings and the accuracy
  LinkOptions link;
};

struct RequestTiming {
  int64_t first = 0, rows = 0;  // images [first, first + rows) of the run
  double e2e_s = 0;             // from the start of the head (or the scheduled time, with --rate) to the answer
  double edge_s = 0;            // head + defense
  double wire_s = 0;            // e2e - edge - cloud: serialisation, link (emulated), network, server I/O
  double queue_s = 0;           // waiting in the cloud for a batch
  double cloud_s = 0;           // the cloud's tail computation (of the batch it ran in)
  uint32_t batch_rows = 0;
  size_t up_bytes = 0, down_bytes = 0;
  int64_t index = 0;      // the request's number in the run (warm-up excluded), as the link schedule counts it
  uint16_t split_id = 0;  // the split it was sent at
};

struct EdgeRunResult {
  std::vector<RequestTiming> timings;  // in order of completion; warm-up requests excluded
  std::vector<int32_t> predictions;    // per image (-1 where the request failed)
  int64_t images = 0, correct = 0;     // counted images (warm-up excluded)
  double wall_s = 0;                   // from the first counted request to the last answer
  uint64_t bytes_sent = 0, bytes_received = 0;
  int64_t failed_requests = 0;
  std::map<std::string, int64_t> errors;  // by code name
  std::string first_error;
};

// A split the edge can send at: its id in the WELCOME and its head.
struct EdgeSplit {
  uint16_t split_id = 0;
  EdgeCompute compute;
};
// The split of each request (CIS's adaptive partition): `choose` names the next request's split (an index into
// `splits`) just before its head runs; `observe` sees each counted request's timing when its answer arrives.
struct SplitPolicy {
  std::vector<EdgeSplit> splits;
  std::function<size_t()> choose;  // empty: always splits[0]
  std::function<void(const RequestTiming&)> observe;
};

// Progress: images answered so far and how many of them were right.
using EdgeProgress = std::function<void(int64_t done, int64_t correct)>;

// Runs images [0, N) through `client` (after hello()). `labels` may be empty (no accuracy). RemoteError for a
// fatal error from the cloud, IoError/TimeoutError for the connection; per-request errors are counted.
EdgeRunResult run_edge(CloudClient& client, const EdgeCompute& compute, const Tensor& images,
                       const std::vector<int32_t>& labels, const EdgeRunOptions& opt,
                       const EdgeProgress& progress = {});
// The same with the split chosen per request (opt.split_id is then unused).
EdgeRunResult run_edge(CloudClient& client, const SplitPolicy& policy, const Tensor& images,
                       const std::vector<int32_t>& labels, const EdgeRunOptions& opt,
                       const EdgeProgress& progress = {});

}  // namespace sl::runtime
