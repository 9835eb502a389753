// Dataset: a labelled set of images held in memory as one normalised float32 [N, C, H, W] tensor, plus the
// per-channel normalisations of SPEC §2 and their inverse (back to [0, 1] pixels, which attacks and metrics use).
//
//   normalised = (pixel/255 - mean[c]) / std[c]
//   MNIST:    mean 0.5, std 0.5                   -> values in [-1, 1]
//   CIFAR-10: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace sl::data {

// Per-channel affine normalisation: x' = (x - mean[c]) / std[c], x in [0, 1].
struct Normalization {
  std::vector<float> mean;
  std::vector<float> std;
  int channels() const { return int(mean.size()); }
};

Normalization mnist_normalization();    // 1 channel, mean 0.5, std 0.5
Normalization cifar10_normalization();  // 3 channels, ImageNet mean/std
// "mnist" or "cifar10"; throws ValueError for any other name.
Normalization normalization_for(const std::string& dataset_name);

// [N, C, H, W] or [C, H, W] pixels in [0, 1] (f32 or f64, any device) -> new f32 CPU tensor, normalised.
Tensor normalize(const Tensor& pixels01, const Normalization& norm);
// Inverse of normalize: normalised images -> f32 CPU tensor of [0, 1] pixels (clamped to [0, 1] when clamp01).
Tensor denormalize(const Tensor& normalized, const Normalization& norm, bool clamp01 = true);

struct Dataset {
  Tensor images;                // float32 [N, C, H, W], contiguous, normalised with `norm`
  std::vector<int32_t> labels;  // N class indices in [0, classes)
  int classes = 10;
  std::string name;    // "mnist" or "cifar10"
  std::string split;   // "train" or "test"
  std::string source;  // what was read, e.g. "data/cifar10 PNG sprites, training batches 1 of 1..5"
  Normalization norm;

  int64_t size() const { return int64_t(labels.size()); }
  int64_t channels() const { return images.size(1); }
  int64_t height() const { return images.size(2); }
  int64_t width() const { return images.size(3); }
  // Labels as an int32 tensor [N].
  Tensor labels_tensor() const { return Tensor::from_labels(labels); }
  // Samples [begin, end) as a new Dataset sharing the image storage (zero-copy).
  Dataset slice(int64_t begin, int64_t end) const;
  // One sample as [1, C, H, W] (zero-copy view).
  Tensor image(int64_t i) const { return images.slice(i, i + 1); }
};

// Loads a data set by name ("mnist" or "cifar10") from data_dir (layout: data_dir/mnist, data_dir/cifar10).
// limit < 0 loads every sample. Throws IoError naming the fetch command when the files are missing.
Dataset load_dataset(const std::string& name, const std::string& data_dir, bool train, int64_t limit = -1);

// --- small file helpers shared by the readers and writers here ---------------------------------------------
// (Reading and atomic writing of files: tensor/io.h.)
// "run: splitleak fetch NAME --data DIR" — appended to every missing-data error.
std::string fetch_hint(const std::string& name, const std::string& data_dir);

}  // namespace sl::data
