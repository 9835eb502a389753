// The adaptive attacker's model of a defense (not in the paper; docs/defenses.md): what the white-box and query-free
// rMLE optimise when the attacker knows the defense's kind, place and level (never its seed, so never the draw).
//
// Per group of rows (one deployment each), from its specs:
//   dropout on the intermediate tensor  the observed zeros are unknown entries: the squared error runs only over
//        the entries of v that are not zero, each image's mean over its own observed entries (weight P / nnz on
//        them, 0 elsewhere; P the elements of one sample). Without rescaling the mask is exactly v != 0 where f1's
//        output is not itself zero; with it, kept entries are f1(x) / (1 - r), so the target becomes (1 - r) · v.
//        (The natural zeros of a ReLU layer are dropped from the loss too. Weighing each zero by the posterior
//        probability that it is a natural one — the expected squared error — was tried and is worse: at LeNet's
//        ReLU2, r = 0.6, SSIM 0.277 against 0.42 for the plain mask; a dropped large entry pulled to 0 costs more
//        than the one-sided hint "f1 <= 0 here" gains. The likelihood of a zero is bounded (-log r), the squared
//        error is not.)
//   Gaussian noise on the intermediate  the squared error is the noise model's MAP data term already; against the
//        image prior it weighs 1 / (1 + σ²/m²), m² the features' power estimated from v (mean(v²) - σ² over the
//        group, at least 1 % of mean(v²)): the noisier v, the more the TV prior decides.
//   Laplace noise on the intermediate   the MAP data term is ℓ1: weight 2m / (1 + 2b²/m²) on |f1(x) - v| (the
//        gradient of the squared error at a residual of m, scaled like the Gaussian case; variance 2b²).
//   CIS on the intermediate             v = clip(f1(x)) + Laplace(2C/ε_c) per channel (split/cis.h): the forward
//        model clips f1's output as the edge does (Observed::clip_l1: channel_l1_clip, differentiable), and each
//        channel's squared error weighs 1 / (1 + 2b_c²/m_c²) (its own noise variance against its power, as for
//        Gaussian noise) times 1/f_c², f_c = min(1, C / the channel's mean L1 norm on the attacker's own images):
//        the data term in f1's natural scale, so the attack's TV weight, set for unclipped features, keeps its
//        balance (without it the clip shrinks the data term by f_c² and the prior decides). The Laplace MAP term
//        (absolute error) was tried and not kept: at CIFAR-10's ReLU22, ε = 10⁶, SSIM 0.189 against 0.354 for the
//        squared error (1000 iterations), whose gradient vanishes at the fit where the absolute error's does not.
//        The attacker knows the spec and the deployment's calibration (the budgets), never the seed.
//   noise or dropout on the input       expectation over K draws of the defense at its level (EOT): the feature
//        term is the mean over x + ε_k (or x ⊙ M_k) of the squared error. The draws are the attacker's own
//        (Philox, its seed), fixed for the whole optimisation, so a CUDA graph replays the step unchanged.
// Rows without a defense (or at level 0) keep the paper's objective. One defense per place is modelled; a chain
// with two at the same place is an error. Prob / label targets are inverted as the paper's attacker does.
#pragma once
#include <vector>

#include "inversion/attack.h"

namespace sl::inv {

// A sub-batch of an observation with its defense model: rMLE runs on `observed` for the rows `rows`.
struct ModelledRows {
  std::vector<int64_t> rows;  // into the observation, ascending
  Observed observed;          // on the observation's device
  bool input_draws = false;   // the objective averages over K input draws
};

// Splits the observation into the rows that need input draws and those that do not (one rMLE each: a row
// without input draws costs one forward pass, not K), and by CIS clip bound, and builds each part's model. `image` is
// one image's shape.
// `channel_l1`: the mean L1 norm of each channel map of f1's output on the attacker's own images (channel_l1_means;
// null or empty: unknown, f_c = 1).
std::vector<ModelledRows> model_defenses(const Observation& obs, const Shape& image, const AdaptiveOptions& o,
                                         uint64_t seed, const std::vector<double>* channel_l1 = nullptr);

// The mean over `images` of the L1 norm of each channel map of f1's output ([N, C, ...]; [N, F]: F one-element
// maps), in double.
std::vector<double> channel_l1_means(Module& f1, const Tensor& images);
// Whether any deployment of the observation has a CIS defense (its rows need channel_l1_means).
bool observes_cis(const Observation& obs);

// What the model does, in one line per deployment (for results files): e.g. "dropout:0.5@intermediate: masked MSE
// over v != 0".
std::string describe_defense_model(const DefenseChain& deployed, const AdaptiveOptions& o);

}  // namespace sl::inv
