// Deploying a split model: the edge checkpoint holds the head (the layers up to the deepest split), the cloud
// checkpoint the tail (the layers after the shallowest split), each with the fingerprint of every split it serves.
// The cloud never holds the edge's weights; edge and cloud agree on a split only when their fingerprints match.
//
// A split point is named by the last layer on the edge ("ReLU2"), or "input" for cloud-only (the edge sends the
// normalised image). The fingerprint of a split is "<arch>/<split>/s<8 hex>/w<8 hex>": s = CRC-32 of the head's
// structure (the input shape, each head layer's name, kind and parameter shapes, the head's output shape);
// w = CRC-32 of every weight of the model that was split (so an edge and a cloud cut from different training runs
// refuse each other even when their shapes agree).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/checkpoint.h"
#include "nn/models.h"
#include "split/pipeline.h"

namespace sl::runtime {

struct SplitPoint {
  std::string name;        // "ReLU2", or "input"
  size_t edge_layers = 0;  // how many layers of the full model run on the edge
  Shape sample_shape;      // what crosses the wire for one image (the tail's input), e.g. [16, 8, 8]
  std::string fingerprint;
};

// Parses "ReLU2", "ReLU2,pool2,fc1", "all" (every layer and "input") against the model's layers; the result is
// in model order. ValueError naming the valid layers for an unknown name.
std::vector<std::string> parse_split_list(const Sequential& net, const std::string& spec);

// The split points of `model` at `names` (model order), with fingerprints.
std::vector<SplitPoint> split_points(const Model& model, const std::vector<std::string>& names);

// Writes <dir>/edge.ckpt and <dir>/cloud.ckpt for the given splits of a trained model; `meta` (the source
// checkpoint's data set, accuracy, ...) is copied into both. `calibration` (split name -> what CIS's rank
// allocation measured at that split on the edge's own data, split/cis.h) goes into the edge's file only, as
// "cis_calibration.<split>".
struct SplitFiles {
  std::string edge_path, cloud_path;
  std::vector<SplitPoint> splits;
  int64_t edge_params = 0, cloud_params = 0;  // parameter counts
};
SplitFiles write_split(const Model& model, const std::vector<std::string>& names, const std::string& dir,
                       const std::map<std::string, std::string>& meta,
                       const std::map<std::string, DefenseCalibration>& calibration = {});

// One side of a deployed split, loaded from edge.ckpt or cloud.ckpt.
struct Deployment {
  std::string role;  // "edge" or "cloud"
  std::string arch;
  Shape input_shape;  // the model's input for one image, [C, H, W]
  int num_classes = 10;
  std::vector<SplitPoint> splits;   // model order
  std::vector<std::string> layers;  // the layers this side holds, in order
  size_t first_layer = 0;           // index in the full model of layers[0]
  std::shared_ptr<Sequential> net;  // exactly the layers this side holds (no other weights are loaded)
  Checkpoint ckpt;                  // the file's metadata (dataset, source accuracy, ...) and tensors
  // Edge: the calibrations stored at `splitleak split --calibrate` (split name -> channel ranks), checked against
  // each split's channel count when loaded.
  std::map<std::string, DefenseCalibration> calibration;

  const SplitPoint& split(const std::string& name) const;  // ValueError listing the splits served
  const SplitPoint* find_fingerprint(const std::string& fp) const;
  // Edge: the head of a split (layers [0, edge_layers)); cloud: its tail (layers [edge_layers, end)). Both share
  // the layer objects of `net`. An empty Sequential is the identity.
  std::shared_ptr<Sequential> part(const SplitPoint& s) const;
  std::vector<std::string> fingerprints() const;
  // The stored calibration of a split; ValueError saying how to make one when there is none.
  const DefenseCalibration& calibration_of(const SplitPoint& s) const;
  // This side of the split as a SplitPipeline (split/pipeline.h): the edge's holds the head and the defenses (its
  // edge() is what is sent), the cloud's the tail (its cloud() answers); the other side is absent.
  SplitPipeline pipeline(const SplitPoint& s, DefenseChain defenses = {}) const;
};

// Loads edge.ckpt (role "edge") or cloud.ckpt (role "cloud") onto `device`; IoError/ValueError when the file is
// not a split checkpoint of that role (saying which it is), or when its tensors do not fit its architecture.
Deployment load_deployment(const std::string& path, const std::string& role, Device device);

// "16,8,8" <-> Shape (per-sample shapes in the checkpoint metadata).
std::string shape_csv(const Shape& s);
Shape parse_shape_csv(const std::string& s);

}  // namespace sl::runtime
