// CIS (seed 002): differential-privacy noise on the offloaded feature map, with the total budget ε split across
// channels by the numerical rank of each channel's map (SPEC §5; only the paper's abstract is public, so this is our
// concrete reading of it).
//
//   clip:   each channel map v_c (H×W, one sample) is scaled by min(1, C / ‖v_c‖₁), so ‖v_c‖₁ ≤ C; two inputs then
//           give maps at most Δ_c = 2C apart in L1 (replace-one-input adjacency). Values are not clamped: the L1
//           scaling alone bounds Δ_c.
//   noise:  v_c + Laplace(2C / ε_c) per element — the Laplace mechanism with ε_c for channel c.
//   budget: Σ_c ε_c = ε (sequential composition over the channels); uniform: ε_c = ε / channels; rank:
//           ε_c = ε · r_c / Σ r, r_c the mean numerical rank of channel c's map over a calibration set drawn from the
//           edge's own data (a channel whose mean rank is below 1 counts as rank 1, so no channel gets an empty
//           budget). Higher-rank maps carry more, get more budget and so less noise.
// A feature vector [N, F] (after a flatten or a linear layer) is F channels of 1×1 maps.
//
// Spec: `cis:eps=E[,alloc=rank|uniform][,clip=C]@intermediate` (defaults: alloc=rank, clip=1). ε > 0, C > 0. The
// draw follows split/defense.h (Philox, per query), so the same seed gives the same noise on CPU and CUDA.
#pragma once
#include <string>
#include <vector>

#include "split/defense.h"
#include "split/pipeline.h"

namespace sl {

// The mean numerical rank of each channel's map over a batch of features [N, C, H, W] (or [N, F]: 1×1 maps).
// Rank by Gaussian elimination with full pivoting in double; a pivot counts when it exceeds
// max(H, W) · 2^-23 · the largest magnitude of the map (float32 data).
std::vector<double> channel_ranks(const Tensor& features);
// The numerical rank of one rows×cols matrix (row-major), same tolerance rule.
int numerical_rank(std::vector<double> m, int64_t rows, int64_t cols);

// What a CIS deployment calibrates once on the edge's own data and stores with the deployment.
// `images` on the model's device.
DefenseCalibration calibrate_channels(const SplitPipeline& pipeline, const Tensor& images);

// The per-channel budgets ε_c (they sum to ε): uniform, or proportional to max(rank, 1).
std::vector<double> cis_budgets(double eps, const std::vector<double>& ranks, bool by_rank);

// What an attacker who knows a deployed CIS defense (its spec and the deployment's calibration; never its seed)
// knows of it: the clip bound C and the Laplace scale 2C/ε_c of each of `channels` channels. ValueError when `d` is
// not a CIS defense; ShapeError when its calibration has another channel count.
struct CisModel {
  double clip = 0;
  std::vector<double> noise_scale;
};
CisModel cis_model(const Defense& d, int64_t channels);

namespace kinds {
DefenseKind cis();
}

}  // namespace sl
