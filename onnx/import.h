// The ONNX importer: an ONNX model file -> an nn::Graph of splitleak layers (optional build component SPLITLEAK_ONNX,
// built on the ONNX project's own library: its protobuf classes, checker and shape inference).
//
// What it takes: one float32 data input (its first dim may be symbolic: the batch), one output, the operators
//   Conv, ConvTranspose (1-d and 2-d), MaxPool, AveragePool, GlobalAveragePool, Gemm, MatMul, Add, Relu, LeakyRelu,
//   Sigmoid, Tanh, Softmax, Flatten, Reshape, Squeeze, Unsqueeze, Dropout and Identity (inference: the identity),
//   BatchNormalization (inference; folded into the convolution before it, or a per-channel op), Constant, and
//   Transpose of constants.
// Weights must be constants (initializers or Constant nodes). Layer names come from the ONNX node names ('.' becomes
// '_'; a nameless node is named after its operator and position). A MatMul followed by the Add of a constant vector is
// one Linear layer; a BatchNormalization after a Conv whose only reader it is is folded into the Conv's weights.
//
// What it refuses, each with one line naming the file and, where there is one, the node and its operator:
// unreadable, truncated or corrupt files (IoError); models the ONNX checker rejects, shapes that do not fit
// (ValueError); operators, attributes, data types or dynamic dimensions splitleak does not handle, graphs with several
// inputs or outputs (UnsupportedError, listing what is supported).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "nn/graph.h"
#include "tensor/error.h"

namespace sl::onnxio {

// The model uses something splitleak does not support (an operator, an attribute value, a data type, a dynamic
// dimension, several inputs or outputs).
struct UnsupportedError : ValueError {
  using ValueError::ValueError;
};

struct ImportOptions {
  bool fold_batchnorm = true;               // BatchNormalization after a Conv -> the Conv's weights
  int64_t max_elements = int64_t(1) << 28;  // per tensor (weights and every layer's output at the import batch)
};

struct ImportedModel {
  std::shared_ptr<Graph> graph;  // float32, on the CPU, in eval mode
  std::string input_name, output_name;
  Shape input_shape;           // the full input shape; dim 0 is the batch (1 where the file leaves it symbolic)
  bool dynamic_batch = false;  // the file's batch dim was symbolic
  Shape output_shape;          // at input_shape
  int64_t opset = 0;           // of the default (ai.onnx) domain
  int64_t ir_version = 0;
  std::string producer;  // "pytorch 1.13.1"
  std::string graph_name;
  int folded_batchnorms = 0;
};

// Reads, checks and converts a model file.
ImportedModel import_file(const std::string& path, const ImportOptions& opt = {});
// The same from bytes in memory; `what` names them in errors (a file name, "fuzz input").
ImportedModel import_bytes(const void* data, size_t size, const std::string& what, const ImportOptions& opt = {});

// The operators the importer maps, comma-separated (for messages and documentation).
std::string supported_operators();

}  // namespace sl::onnxio

#include "nn/models.h"

namespace sl::onnxio {

// An imported image model as the Model the commands take: a chain whose layers are the graph's segments between
// consecutive split points, each named after the split point that ends it (a segment of one single-input node is that
// node's layer itself, so a chain imports as exactly its layers). The chain's split points are the graph's; it
// computes what the graph computes. UnsupportedError unless the input is [N, C, H, W]; num_classes is the output's
// dim 1 for an output [N, classes], 0 otherwise (an edge head).
Model to_model(const ImportedModel& m, const std::string& arch = "onnx");

}  // namespace sl::onnxio
