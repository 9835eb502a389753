// Pieces the commands and the experiment runs share: loading a trained model, checking it fits a data set,
// evaluating, the device and thread settings, and the command line that every results file records.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "nn/checkpoint.h"
#include "nn/models.h"
#include "split/pipeline.h"

namespace sl::experiment {

// A model rebuilt from a checkpoint, on `device`, in eval mode.
struct LoadedModel {
  Model model;
  Checkpoint ckpt;
  std::string dataset;  // from the checkpoint's metadata
};
// A checkpoint holding NaN or inf weights is refused (naming the tensor) unless allow_nonfinite, which loads it
// with a warning on stderr.
// A path ending in .onnx is an ONNX model (imported through onnx/, when built: onnxio::to_model), its data set guessed
// from its input shape; anything else a checkpoint.
LoadedModel load_model(const std::string& path, Device device, bool allow_nonfinite = false);
bool is_onnx_path(const std::string& path);
// "mnist" for [1, 28, 28], "cifar10" for [3, 32, 32], "" otherwise.
std::string dataset_for_input(const Shape& input_shape);

// ValueError unless the data set holds at least one image; `role` says which ("training set", "victims").
void check_not_empty(const data::Dataset& d, const std::string& role, const std::string& hint);

// JSON as text; bytes that are not UTF-8 (a path on the command line, a checkpoint's metadata) are replaced.
std::string json_text(const nlohmann::json& j, int indent = -1);

// Throws ValueError when the data set's images do not have the model's input shape.
void check_fits(const Model& m, const data::Dataset& d);

struct EvalResult {
  double accuracy = 0, loss = 0;
  int64_t count = 0;
  std::vector<int32_t> predictions;
  double seconds = 0;
};
// Runs fn(batch of images on `device`) -> logits over the data set and scores it; shows progress if `label`.
// fn may also take the index of the batch's first image, fn(x, first) (the query numbers of a defended split).
// ValueError for an empty data set, or when the model's outputs are not finite (no accuracy is reported then).
template <class Fn>
EvalResult evaluate_with(Fn&& fn, const data::Dataset& d, Device device, int64_t batch, const char* label);
EvalResult evaluate(Module& net, const data::Dataset& d, Device device, int64_t batch = 500,
                    const char* label = nullptr);

// CIS rank allocation's calibration (split/cis.h) at the pipeline's split: the mean channel ranks over the first
// `images` training images of the data set (the edge's own data), stated on stderr.
DefenseCalibration calibrate_on_training_data(const SplitPipeline& pipeline, const std::string& dataset,
                                              const std::string& data_dir, Device device, int64_t images = 256);

// Whether a --defense spec holds a CIS defense.
bool has_cis(const std::string& defense_spec);
// How many of the attacker's own images an attack loads (nullopt: none). The black-box and query-free attacks learn
// from them (`attacker_limit`, -1 for all); the white-box one needs none, except adaptively against CIS, where it
// measures f1's channel norms on 256.
std::optional<int64_t> attacker_images_needed(bool whitebox, bool adaptive_against_cis, int64_t attacker_limit);

// The device named by --device, checked usable now (DeviceError otherwise), before any data is loaded.
Device parse_device(const std::string& name);

// Sets the number of CPU threads (0 = leave OpenMP's default).
void set_threads(int n);

// The command line as one string, for results files.
std::string command_line();
void set_command_line(int argc, char** argv);

}  // namespace sl::experiment

#include "experiment/common_impl.h"
