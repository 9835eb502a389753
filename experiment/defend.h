// The defense sweep (the paper's §IV, Figs 6-13): for each defense line (a kind at a place and a split) and
// each of its levels, the usability — accuracy of the defended split over the test set, a fresh draw per image —
// and the privacy — PSNR / SSIM / recovery of an attack on the defended observations of the class exemplars —
// with the paper's attacker, the adaptive one, or both.
//
// Speed: every level of every line at one split is one batch of one optimisation: each row carries its own
// defense draw and level (the observation groups of inversion/attack.h), so a whole figure is a handful of rMLE
// runs rather than dozens (on CUDA each is a replayed graph). Accuracy runs level by level over the test set in
// large batches.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "inversion/attack.h"
#include "split/defense.h"

namespace sl::experiment {

// One curve: a defense kind at a place (with its options) at a split, over levels.
struct DefenseLine {
  std::string split;
  DefenseSpec defense;  // its level is ignored: `levels` gives them
  std::vector<double> levels;
  std::string name() const;  // "dropout@intermediate", "gaussian@input"
};

// Which attackers run: the paper's (it ignores the defense), the adaptive one (it models it), or both.
enum class Attackers { paper, adaptive, both };

struct DefendSettings {
  std::vector<DefenseLine> lines;
  Attackers attackers = Attackers::paper;
  // The attack's settings at a split (the CLI's preset and overrides); kind, adaptive and batch are set per run.
  std::function<inv::AttackConfig(const std::string& split)> attack_config;
  uint64_t defense_seed = 1;  // the deployments' seed (the attacker never sees it)
  int64_t eval_batch = 1000;  // accuracy batch
  Device device = Device::cpu();
  // By split: what the edge calibrated on its own data, for kinds that need it (CIS rank allocation, split/cis.h).
  std::map<std::string, DefenseCalibration> calibration;
};

// The attack on one level of one line, by one attacker.
struct AttackOutcome {
  std::vector<double> psnr, ssim;
  std::vector<int32_t> predicted;
  double recovery = 0, mse = 0, leakage_bits = 0;
  Tensor reconstructions;  // [images, C, H, W] pixels in [0, 1]
  double mean_psnr() const;
  double mean_ssim() const;
};

struct LevelOutcome {
  size_t line = 0;
  double level = 0;
  double accuracy = 0;
  std::map<std::string, AttackOutcome> by_attacker;  // "paper", "adaptive"
};

struct DefendOutcome {
  std::vector<LevelOutcome> levels;  // line by line, level by level
  Tensor originals;                  // the exemplars, pixels in [0, 1]
  std::vector<int32_t> labels;
  std::vector<int64_t> test_index;  // the exemplars' positions in the test set = their query numbers
  int64_t accuracy_images = 0;
  double pixel_variance = 0;  // of the test images, for the leakage index
  double accuracy_seconds = 0, attack_seconds = 0;
  std::map<std::string, std::string> details;  // "split / attacker" -> the attack's detail
  std::vector<std::string> attackers() const;
};

// The variance of every pixel (in [0, 1]) of a data set, over all its images: Var(x) of the leakage index.
double pixel_variance(const data::Dataset& d);

// Runs the sweep. `victim_index` picks the exemplars in `test` (their query numbers are these indices, so the
// attacked observations are exactly the ones behind the accuracy); accuracy runs over all of `test`. The attacker
// learns (black-box, query-free) only from `attacker_data`. ValueError before any work for a line whose split, kind
// or levels are wrong.
DefendOutcome run_defend(const Model& model, const data::Dataset& test, const std::vector<int64_t>& victim_index,
                         const data::Dataset& attacker_data, const DefendSettings& s,
                         const inv::PhaseProgress& progress = {});

// What a figure of the paper sweeps (§IV): 9 and 10 the three defenses at both places at ReLU2 / ReLU22; 11 and
// 13 (MNIST) and 12 (CIFAR-10) dropout on the intermediate at five layers. `quick` takes 8 levels per line instead
// of the full sweep. ValueError for another number or a model of the other data set.
std::vector<DefenseLine> figure_lines(int figure, const std::string& arch, bool quick);
// The noise and dropout levels of a sweep.
std::vector<double> default_levels(const std::string& kind, bool quick);

// Which accuracy a read-out keeps: at least 95 % (the paper's MNIST statements), or at most 0.8 points under the
// undefended accuracy (its CIFAR-10 statements). accuracy_rule() picks the first when the undefended accuracy is at
// least 96 %, the second otherwise.
struct AccuracyRule {
  double min_accuracy = 0.95;  // used when max_drop < 0
  double max_drop = -1;        // in accuracy (0.008 = 0.8 points)
  bool keeps(double accuracy, double base) const {
    return max_drop >= 0 ? accuracy >= base - max_drop - 1e-12 : accuracy >= min_accuracy;
  }
  std::string str() const;  // "acc>=95%", "drop<=0.8pt"
};
AccuracyRule accuracy_rule(const DefendOutcome& o);

// Per line, the paper's read-outs: base accuracy; the largest level whose accuracy the rule keeps and the attack
// there; the smallest level where SSIM < 0.25 and the accuracy there.
struct LineFinding {
  size_t line = 0;
  std::string attacker;
  double base_accuracy = 0;
  double max_level_at_accuracy = -1, ssim_there = 0, psnr_there = 0, accuracy_there = 0;  // -1: none
  double min_level_ssim_below = -1, accuracy_at_ssim_below = 0, psnr_at_ssim_below = 0;   // -1: none
};
std::vector<LineFinding> findings(const DefendOutcome& o, const std::vector<DefenseLine>& lines,
                                  const AccuracyRule& rule, double ssim_threshold = 0.25);

}  // namespace sl::experiment
