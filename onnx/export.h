// The ONNX exporter: a splitleak network (a Sequential chain, a Graph, or a chain of graph segments as an imported
// model is) -> an ONNX model file that any ONNX runtime can run, and that the importer reads back into the same layers
// (same values, bit for bit).
//
// Layers written: Conv2d (Conv), ConvTranspose2d (ConvTranspose), Linear (Gemm, transB = 1), MaxPool2d and Pool2d
// (MaxPool, AveragePool), GlobalAvgPool2d, BatchNorm (BatchNormalization with mean 0, variance 1, epsilon 0),
// AddConstant and Add (Add), ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, Flatten, Reshape, Dropout (the identity at
// inference: no node). Anything else is a ValueError naming the layer. The file is opset 13, its input's first dim
// symbolic ("batch"), its weights initializers; it passes the ONNX checker before it is written (atomically).
#pragma once
#include <string>

#include "nn/module.h"

namespace sl::onnxio {

struct ExportOptions {
  std::string graph_name = "splitleak";
  std::string input_name = "input", output_name = "output";
  std::string doc;  // the graph's doc string (what the model is, where it came from)
};

// The serialised model for `net` run on inputs of `input_shape` (batch included; the batch is symbolic in the file).
std::string export_bytes(const Module& net, const Shape& input_shape, const ExportOptions& opt = {});
// The same, written atomically to `path` (IoError when it cannot be written).
void export_file(const std::string& path, const Module& net, const Shape& input_shape, const ExportOptions& opt = {});

}  // namespace sl::onnxio
