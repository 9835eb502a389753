// White-box attack: regularised maximum-likelihood estimation (rMLE, He et al. §III-A).
//
// The cloud knows the edge part f1 and sees v = f1(x0). It searches for the input that f1 maps onto v and
// that looks like a natural image:
//
//   x* = argmin_x  mean_f (f1(x)_f - v_f)²  +  λ·TV_β(x)  +  λ2·mean(x²)
//
// starting from x = 0 (the mid-grey image in the normalised space) and following the gradient, which
// autograd carries back through f1 to the image. Besides a split layer's output the target can be the
// model's softmax output (`prob`: the feature loss compares probabilities) or just a class (`label`:
// the feature loss becomes -log p_c, i.e. "find an image the model labels c").
//
// Batching: the N images of a batch are N independent problems. The objective optimised is the SUM over
// images of each image's objective above (each a mean over that image alone), so every image gets exactly
// the gradient it would get alone and the result does not depend on N (Adam works element by element).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "inversion/common.h"
#include "nn/module.h"

namespace sl::inv {

enum class TargetKind { feature, prob, label };

// What the attacker observed for a batch of N private inputs, and (adaptive attacks, feature targets only) how it
// models a defense between x and v. With the model fields empty this is the paper's attacker. With them the
// feature term of image n becomes
//
//   (1/K) Σ_k  mean_f [ weight_f · (g(x̃_k)_f − v_f)² + l1_weight_f · |g(x̃_k)_f − v_f| ],
//   x̃_k = x ⊙ input_mul[k] + input_add[k]     (EOT over K draws of an input defense; x̃ = x when none)
//   g = channel_l1_clip(f1(·), clip_l1)       (CIS's clip when clip_l1 > 0; g = f1 otherwise)
//
// weight is the masked / noise-aware MSE (dropout: 1/(share observed) on the entries of v that are not zero and 0
// elsewhere), l1_weight the Laplace MAP term; both per element of v, so each row may model its own defense level
// (inversion/adaptive.h builds them). Every term is composed of existing differentiable ops.
struct Observed {
  Observed() = default;
  Observed(TargetKind k, Tensor observed_v) : kind(k), v(std::move(observed_v)) {}
  TargetKind kind = TargetKind::feature;
  Tensor v;          // feature: f1's output [N, ...]; prob: softmax output [N, classes]; label: int32 classes [N]
  Tensor weight;     // like v: per-element weight of the squared error; undefined = 1 everywhere
  Tensor l1_weight;  // like v: per-element weight of the absolute error; undefined = no such term
  std::vector<Tensor> input_mul, input_add;  // K draws like x (either may be empty); EOT over them
  double clip_l1 = 0;  // > 0: v was clipped by CIS (split/cis.h): f1's output goes through channel_l1_clip first
  bool models_defense() const {
    return weight.defined() || l1_weight.defined() || !input_mul.empty() || !input_add.empty() || clip_l1 > 0;
  }
  // Rows [b, e) of every field.
  Observed rows(int64_t b, int64_t e) const;
};

struct RmleOptions {
  int iters = 5000;
  double lr = 1e-2;
  double tv = 0;         // λ, weight of the total variation
  double tv_beta = 2;    // 2: the reference code's squared TV; otherwise the paper's Σ (dh² + dw²)^(β/2)
  double tv_eps = 1e-8;  // smoothing inside the root when β < 2
  double l2 = 0;         // λ2, weight of mean(x²)
  // "adam": Adam, AMSGrad and eps 1e-3 by default (the reference); "sgd": SGD with momentum 0.9.
  std::string optimizer = "adam";
  double adam_eps = 1e-3;
  bool amsgrad = true;
  // "constant" (the reference) or "cosine": lr_t = lr · (1 + cos(π t / iters)) / 2, decaying to 0.
  std::string schedule = "constant";
  // Project x into the valid pixel box after every step (projected gradient). Off in the reference, which
  // only clamps the final result (as this function always does).
  bool project = false;
};

// Called with 0 at the start, then every `every` iterations and after the last: (iterations done, the
// total objective at that iteration).
struct RmleProgress {
  int every = 100;
  std::function<void(int iter, double objective)> fn;
};

// The objective summed over the batch (a 0-d tensor with its graph back to x). f1 is the edge part for
// feature targets and the whole network (logits) for prob and label.
Tensor rmle_objective(Module& f1, const Tensor& x, const Observed& observed, const RmleOptions& o);

// Reconstructs the N inputs behind `observed`. input_shape is the batch shape [N, C, H, W]; the optimisation
// runs on the device of observed.v with f1 (already there) frozen. Returns the reconstructions in the
// normalised space, clamped into `range`.
Tensor rmle(Module& f1, const Observed& observed, const Shape& input_shape, const PixelRange& range,
            const RmleOptions& o, const RmleProgress& progress = {});

// "feature", "prob", "label" <-> TargetKind (ValueError for other names).
TargetKind target_kind(const std::string& name);

}  // namespace sl::inv
