// Loader: seeded shuffling, batching and (for CIFAR-10) per-sample augmentation over an in-memory Dataset.
//
// Reproducibility: the order of epoch e is a Fisher–Yates shuffle drawn from Generator(mix(seed, e)); the
// augmentation of dataset sample i in epoch e draws from a Generator positioned at counter (e * N + i) * 8.
// So the same seed gives the same batches, whatever the batch size, access order or thread count.
//
// Augmentation (SPEC §2): horizontal flip with probability 1/2, then a random affine map about the image centre
// (rotation uniform in ±degrees, translation uniform in ±translate·W and ±translate·H, scale uniform in
// [scale_min, scale_max]), sampled bilinearly; source positions outside the image read a black pixel (0 before
// normalisation, i.e. -mean/std per channel in the normalised data).
#pragma once
#include <cstdint>
#include <vector>

#include "datasets/dataset.h"
#include "tensor/rng.h"

namespace sl::data {

struct Augment {
  bool hflip = false;
  double degrees = 0;    // rotation range ±degrees
  double translate = 0;  // fraction of width/height, ±
  double scale_min = 1, scale_max = 1;
  static Augment none() { return {}; }
  static Augment cifar10() { return {true, 10.0, 0.1, 0.9, 1.1}; }  // the reference training transform
  bool active() const { return hflip || degrees != 0 || translate != 0 || scale_min != 1 || scale_max != 1; }
};

// One sample's draw of the augmentation.
struct AffineParams {
  bool flip = false;
  double angle_deg = 0, tx = 0, ty = 0, scale = 1;  // tx, ty in pixels
};

// Draws flip, angle, translation and scale for an H x W image (5 draws from g, in that order).
AffineParams sample_affine(const Augment& aug, Generator& g, int64_t H, int64_t W);
// Writes the transformed [C, H, W] image `src` into `dst` (not aliasing); fill[c] is the value read outside.
void apply_affine(const float* src, float* dst, int64_t C, int64_t H, int64_t W, const AffineParams& p,
                  const float* fill);

struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  bool drop_last = false;  // drop a last batch smaller than batch_size
  uint64_t seed = 0;
  Augment augment;  // none by default; Augment::cifar10() for CIFAR training
};

struct Batch {
  Tensor images;                 // float32 [B, C, H, W], contiguous, normalised
  Tensor labels;                 // int32 [B]
  std::vector<int64_t> indices;  // the dataset positions of the B samples
  int64_t size() const { return int64_t(indices.size()); }
};

class Loader {
 public:
  // Keeps its own handle on the dataset (the images tensor is shared, not copied).
  Loader(const Dataset& data, const LoaderOptions& opt);

  int64_t batches_per_epoch() const;
  int64_t epoch() const { return epoch_; }
  // Switches to epoch e: its order, its augmentation draws, cursor back to the first batch.
  void set_epoch(int64_t e);
  // The next batch of the current epoch into `out`; at the end returns false and moves to the next epoch, so
  // `while (loader.next(b)) ...` runs one epoch each time it is written.
  bool next(Batch& out);
  // Batch i of the current epoch (0 <= i < batches_per_epoch()).
  Batch batch(int64_t i) const;
  const std::vector<int64_t>& order() const { return order_; }
  const Dataset& dataset() const { return data_; }
  const LoaderOptions& options() const { return opt_; }

 private:
  Dataset data_;
  LoaderOptions opt_;
  std::vector<float> fill_;
  std::vector<int64_t> order_;
  int64_t epoch_ = 0;
  int64_t cursor_ = 0;
};

}  // namespace sl::data
