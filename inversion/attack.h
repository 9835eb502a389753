// One call that runs any of the three attacks against a model split at a named layer and scores it: what
// the CLI (`splitleak attack`) and the §7 table use. The attacks themselves live in rmle.h, inverse_net.h
// and query_free.h; this file only wires them to a model, the victims and the attacker's data.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "inversion/common.h"
#include "inversion/rmle.h"
#include "nn/models.h"

namespace sl::inv {

enum class AttackKind { whitebox, blackbox, queryfree };
AttackKind attack_kind(const std::string& name);  // "whitebox", "blackbox", "queryfree"; ValueError otherwise
std::string attack_name(AttackKind k);

// Progress of the running phase ("query + fit decoder", "rMLE", ...): done of total units, and a short note.
using PhaseProgress =
    std::function<void(const std::string& phase, int64_t done, int64_t total, const std::string& note)>;

struct AttackConfig {
  AttackKind kind = AttackKind::whitebox;
  // A layer name of the model, or "prob" (softmax output of the whole model) or "label" (its predicted class;
  // white-box only).
  std::string split;
  RmleOptions rmle;     // white-box and query-free
  FitOptions fit;       // black-box decoder and query-free shadow training
  int64_t batch = 100;  // victims reconstructed at once (rMLE batch; the result does not depend on it)
  Device device = Device::cpu();
  uint64_t seed = 1;  // decoder / shadow initialisation
};

// The settings for an attack at a split of a model (arch), by preset:
//   "reference": SPEC §4 and the reference commands (rMLE: AMSGrad lr 1e-2, 5000 iterations, squared TV with
//                λ per split, clamping only at the end);
//   "tuned":     what reconstructs better on MNIST (projection every step, lr 0.05 with cosine decay, TV with
//                β = 1); the same as "reference" for other models until measured there.
// The table of values, and the decoder / shadow training settings, are in attack.cpp.
AttackConfig default_config(AttackKind kind, const std::string& arch, const std::string& split,
                            const std::string& preset = "reference");

struct AttackResult {
  Tensor originals;                // [N, C, H, W] pixels in [0, 1]
  Tensor reconstructions;          // [N, C, H, W] pixels in [0, 1]
  std::vector<int32_t> labels;     // the victims' true labels
  std::vector<int32_t> predicted;  // the full model's label for each reconstruction
  std::vector<double> psnr, ssim;
  double recovery_rate = 0;
  double train_seconds = 0;   // decoder / shadow training (0 for white-box)
  double invert_seconds = 0;  // reconstructing the victims
  std::string detail;         // e.g. "decoder: ConvTranspose2d(16->8, k5) ..." or "shadow accuracy 97.9 %"
  double mean_psnr() const;
  double mean_ssim() const;
};

// Runs the attack: the model (in eval mode, on cfg.device) is split at cfg.split; the edge sees `victims`
// and the attacker learns, where it learns at all, only from `attacker_data`. Errors (ValueError /
// ShapeError) say what is wrong: an unknown split (listing the names), images that do not fit the model,
// an empty attacker data set, a target the attack cannot use.
AttackResult run_attack(const Model& model, const data::Dataset& victims, const data::Dataset& attacker_data,
                        const AttackConfig& cfg, const PhaseProgress& progress = {});

// --- choosing images ------------------------------------------------------------------------------------
// The index of the first image of each class 0..classes-1, in class order (skipping classes absent).
std::vector<int64_t> first_of_each_class(const data::Dataset& d);
// A copy of the samples at `indices`, in that order.
data::Dataset select(const data::Dataset& d, const std::vector<int64_t>& indices);
// A copy of the data set without the samples at `indices` (the attacker never trains on the victims).
data::Dataset without(const data::Dataset& d, const std::vector<int64_t>& indices);
// Throws ValueError when the data set's images do not have the model's input shape.
void check_model_fits_data(const Model& m, const data::Dataset& d);

}  // namespace sl::inv
