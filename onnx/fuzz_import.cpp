#include "onnx/fuzz_import.h"

#include <cstdio>
#include <cstdlib>

#include "autograd/node.h"
#include "nn/layers.h"
#include "onnx/import.h"

namespace sl::onnxio {

namespace {
// Multiply-adds of one forward pass, roughly (convolutions, linear layers and pooling windows dominate).
double forward_cost(const ImportedModel& m) {
  double cost = 0;
  for (const auto& [name, out] : m.graph->output_shapes(m.input_shape)) {
    const auto layer = m.graph->layer(name);
    double per = 1;
    if (auto* c = dynamic_cast<Conv2d*>(layer.get())) per = double(c->weight.numel()) / c->out_channels;
    if (auto* c = dynamic_cast<ConvTranspose2d*>(layer.get())) per = double(c->weight.numel());
    if (auto* l = dynamic_cast<Linear*>(layer.get())) per = l->in_features;
    if (auto* p = dynamic_cast<Pool2d*>(layer.get())) per = double(p->args.kh) * p->args.kw;
    cost += per * double(out.numel());
  }
  return cost;
}
}  // namespace

int fuzz_import(const uint8_t* data, size_t size) {
  ImportOptions opt;
  opt.max_elements = int64_t(1) << 20;
  ImportedModel m;
  try {
    m = import_bytes(data, size, "fuzz input", opt);
  } catch (const Error& e) {
    // refused: fine, with a one-line message (the CLI prints it as one line)
    for (const char* c = e.what(); *c; ++c)
      if (static_cast<unsigned char>(*c) < 0x20 || *c == 0x7F) {
        std::fprintf(stderr, "fuzz: a control character in the importer's error message: %s\n", e.what());
        std::abort();
      }
    return 0;
  }
  if (forward_cost(m) > 2e7) return 0;
  NoGradGuard ng;
  m.graph->forward(Tensor::zeros(m.input_shape));
  return 0;
}

}  // namespace sl::onnxio
