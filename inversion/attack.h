// The attacks behind one interface. An attack observes a split pipeline (split/pipeline.h) — in process, or (later)
// a recorded stream — and reconstructs the inputs behind what the cloud saw:
//
//   prepare(target)        learn what it needs from the attacker's own data (decoder, shadow head); once
//   invert(target, obs)    reconstruct a batch of observations (any number of rows, each with its own defense)
//
// Attacks are registered by name ("whitebox", "blackbox", "queryfree"); adding one is a file with an Attack subclass
// and one line in the registry's list (attack.cpp), or a register_attack() call. Each reads only what its threat
// model gives it (the paper's §II): white-box the edge head, black-box the edge as an oracle (edge() of the deployed
// pipeline), query-free the cloud tail and its own data. With `adaptive` set, an attack also knows the defense's
// kind, place and level (never its seed) and models it (inversion/adaptive.h, docs/defenses.md).
//
// run_attack() is the one call that runs an attack against a split and scores it: what `splitleak attack` and the
// §7 table use. The attacks themselves live in rmle.h, inverse_net.h and query_free.h.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "inversion/common.h"
#include "inversion/rmle.h"
#include "nn/models.h"
#include "nn/profile.h"
#include "split/pipeline.h"

namespace sl::inv {

// An attack's registered name. The three of the paper are constants; attack_kind() checks a name.
struct AttackKind {
  std::string name;
  static const AttackKind whitebox, blackbox, queryfree;
  bool operator==(const AttackKind& o) const { return name == o.name; }
  bool operator!=(const AttackKind& o) const { return name != o.name; }
};
inline const AttackKind AttackKind::whitebox{"whitebox"};
inline const AttackKind AttackKind::blackbox{"blackbox"};
inline const AttackKind AttackKind::queryfree{"queryfree"};
AttackKind attack_kind(const std::string& name);  // a registered name; ValueError listing them otherwise
std::string attack_name(const AttackKind& k);

// Progress of the running phase ("query + fit decoder", "rMLE", ...): done of total units, and a short note.
using PhaseProgress =
    std::function<void(const std::string& phase, int64_t done, int64_t total, const std::string& note)>;

// How the adaptive attackers model a defense (inversion/adaptive.h).
struct AdaptiveOptions {
  int eot_draws = 4;  // K: draws of an input defense the white-box objective averages over
};

struct AttackConfig {
  AttackKind kind = AttackKind::whitebox;
  // A layer name of the model, or "prob" (softmax output of the whole model) or "label" (its predicted class;
  // white-box only).
  std::string split;
  RmleOptions rmle;     // white-box and query-free
  FitOptions fit;       // black-box decoder and query-free shadow training
  int64_t batch = 100;  // victims reconstructed at once (rMLE batch; the result does not depend on it)
  Device device = Device::cpu();
  uint64_t seed = 1;      // decoder / shadow initialisation, the adaptive attacker's own draws
  bool adaptive = false;  // knows the defense (kind, place, level) and models it
  AdaptiveOptions adaptive_options;
};

// The settings for an attack at a split, by preset, from the model's profile (nn/profile.h):
//   "reference": the authors' code and commands (rMLE: AMSGrad lr 1e-2, 5000 iterations, squared TV with the
//                profile's λ for the split's region, clamping only at the end);
//   "tuned":     what reconstructs better where it was measured (projection every step, lr 0.05 with cosine
//                decay, TV with β = 1, the profile's tuned λ); the same as "reference" for a model without a
//                tuned setting.
// Decoder / shadow training: 2 epochs, batch 32, cosine decay from lr 2e-2 (decoder) or 1e-3 (shadow).
AttackConfig default_config(const AttackKind& kind, const ModelProfile& profile, const std::string& split,
                            const std::string& preset = "reference");
// The same for an architecture by name (its built-in profile; a split it has no facts for counts as the conv part).
AttackConfig default_config(const AttackKind& kind, const std::string& arch, const std::string& split,
                            const std::string& preset = "reference");

// Rows [begin, end) of an observation went through the defenses of one deployment (empty chain: none).
struct ObservedGroup {
  int64_t begin = 0, end = 0;
  DefenseChain deployed;
};

// What the cloud saw for a batch of victims: the observation and, per group of rows, the deployment behind it.
struct Observation {
  TargetKind kind = TargetKind::feature;
  Tensor v;                           // on the attack's device
  std::vector<ObservedGroup> groups;  // cover the rows in order; empty = one group without defense
  int64_t rows() const { return v.defined() ? v.size(0) : 0; }
};

// The split under attack and what the attacker brings.
struct AttackTarget {
  SplitPipeline pipeline;  // the split (its head and tail); the defenses deployed come with each observation
  TargetKind kind = TargetKind::feature;
  const data::Dataset* attacker_data = nullptr;  // the attacker's own images (black-box, query-free)
  PixelRange range;                              // valid pixels of the images
  Shape image;                                   // one image, [C, H, W]
  Device device = Device::cpu();
};

// The observation of victims x (rows are queries `queries` of the edge), through `deployed` defenses: the
// intermediate tensor, the softmax output or the predicted class of the pipeline.
Observation observe(const SplitPipeline& pipeline, TargetKind kind, const Tensor& x,
                    const std::vector<uint64_t>& queries, const DefenseChain& deployed);

class Attack {
 public:
  explicit Attack(AttackConfig cfg) : cfg_(std::move(cfg)) {}
  virtual ~Attack() = default;
  Attack(const Attack&) = delete;
  Attack& operator=(const Attack&) = delete;

  const AttackConfig& config() const { return cfg_; }
  // Checks that the attack can run against this target (ValueError otherwise) and learns from the attacker's data.
  virtual void prepare(const AttackTarget& target, const PhaseProgress& progress) = 0;
  // Reconstructions of the observed rows, in the normalised input space, clamped into the pixel box, on the CPU.
  virtual Tensor invert(const AttackTarget& target, const Observation& obs, const PhaseProgress& progress) = 0;

  double train_seconds() const { return train_seconds_; }
  double invert_seconds() const { return invert_seconds_; }
  const std::string& detail() const { return detail_; }  // e.g. "decoder ConvTranspose2d(16->8, k5) ..."

 protected:
  AttackConfig cfg_;
  double train_seconds_ = 0, invert_seconds_ = 0;
  std::string detail_;
};

using AttackFactory = std::function<std::unique_ptr<Attack>(const AttackConfig&)>;
void register_attack(const std::string& name, AttackFactory factory);  // replaces one of the same name
std::unique_ptr<Attack> make_attack(const AttackConfig& cfg);          // by cfg.kind; ValueError if unknown
std::vector<std::string> attack_names();

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

// Scores reconstructions (normalised space) of `victims`: pixels back in [0, 1], PSNR/SSIM per image, and the label
// the whole (undefended) model gives each reconstruction.
AttackResult score(const Model& model, const data::Dataset& victims, const Tensor& reconstructions, Device device);

// Runs the attack against a split pipeline and its defenses: the victims are the edge's queries `victim_queries`
// (one per image), and the attacker learns, where it learns at all, only from `attacker_data`. The target is the
// split's output (feature) or the model's prob / label (then `pipeline` is split at the last layer).
AttackResult run_attack(const SplitPipeline& pipeline, TargetKind target, const data::Dataset& victims,
                        const std::vector<uint64_t>& victim_queries, const data::Dataset& attacker_data,
                        const AttackConfig& cfg, const PhaseProgress& progress = {});
// The same on observations made elsewhere, e.g. recorded by the cloud (`splitleak attack --observed`): row r of
// `obs` is what the cloud received for victim r; `victims` only score the reconstructions. The attack learns from the
// pipeline's parts and `attacker_data` as in the overload above (the observation is not recomputed).
AttackResult run_attack_observed(const SplitPipeline& pipeline, const Observation& obs, const data::Dataset& victims,
                                 const data::Dataset& attacker_data, const AttackConfig& cfg,
                                 const PhaseProgress& progress = {});
// The model (in eval mode, on cfg.device) split at cfg.split without a defense; victims are queries 0, 1, ...
// Errors (ValueError / ShapeError) say what is wrong: an unknown split (listing the names), images that do not fit
// the model, an empty attacker data set, a target the attack cannot use.
AttackResult run_attack(const Model& model, const data::Dataset& victims, const data::Dataset& attacker_data,
                        const AttackConfig& cfg, const PhaseProgress& progress = {});
// The pipeline for cfg.split: a layer name, or prob / label (split after the last layer).
SplitPipeline pipeline_for(const Model& model, const std::string& split, DefenseChain defenses = {});
TargetKind target_of(const std::string& split);  // prob, label, or feature for a layer name

// --- choosing images ------------------------------------------------------------------------------------
// The index of the first image of each class 0..classes-1, in class order (skipping classes absent).
std::vector<int64_t> first_of_each_class(const data::Dataset& d);
// A copy of the samples at `indices`, in that order.
data::Dataset select(const data::Dataset& d, const std::vector<int64_t>& indices);
// A copy of the data set without the samples at `indices` (the attacker never trains on the victims).
data::Dataset without(const data::Dataset& d, const std::vector<int64_t>& indices);
// Throws ValueError when the data set's images do not have the model's input shape.
void check_model_fits_data(const Model& m, const data::Dataset& d);

// Rows `rows` of a batch tensor (any device), in that order.
Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& rows);

}  // namespace sl::inv
