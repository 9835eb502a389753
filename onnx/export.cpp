#include "onnx/export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cstring>
#include <vector>

#include "nn/graph.h"
#include "nn/layers.h"
#include "nn/sequential.h"
#include "tensor/io.h"

namespace sl::onnxio {

namespace {

struct Writer {
  onnx::GraphProto* g;
  int unique = 0;

  std::string fresh(const std::string& base) { return base + "_" + std::to_string(unique++); }

  // A float32 initializer holding `t` (copied to the CPU, contiguous).
  std::string init(const std::string& name, const Tensor& t) {
    Tensor c = t.to(Device::cpu()).contiguous();
    SL_CHECK(c.dtype() == DType::f32, ValueError, "ONNX export: tensor '", name, "' is not float32");
    auto* p = g->add_initializer();
    p->set_name(name);
    p->set_data_type(onnx::TensorProto::FLOAT);
    for (size_t i = 0; i < c.shape().rank(); ++i) p->add_dims(c.shape()[i]);
    p->set_raw_data(std::string(reinterpret_cast<const char*>(c.data<float>()), size_t(c.numel()) * sizeof(float)));
    return name;
  }
  std::string init_i64(const std::string& name, const std::vector<int64_t>& v) {
    auto* p = g->add_initializer();
    p->set_name(name);
    p->set_data_type(onnx::TensorProto::INT64);
    p->add_dims(int64_t(v.size()));
    for (int64_t x : v) p->add_int64_data(x);
    return name;
  }
  std::string init_scalar_vec(const std::string& name, int64_t n, float value) {
    auto* p = g->add_initializer();
    p->set_name(name);
    p->set_data_type(onnx::TensorProto::FLOAT);
    p->add_dims(n);
    for (int64_t i = 0; i < n; ++i) p->add_float_data(value);
    return name;
  }

  onnx::NodeProto* node(const std::string& op, const std::string& name, const std::vector<std::string>& ins,
                        const std::string& out) {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : ins) n->add_input(i);
    n->add_output(out);
    return n;
  }
  static void ints(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* n, const char* name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void real(onnx::NodeProto* n, const char* name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }

  static void conv_attrs(onnx::NodeProto* n, int kh, int kw, const ConvArgs& a, bool transpose) {
    ints(n, "kernel_shape", {kh, kw});
    ints(n, "strides", {a.sh(), a.sw()});
    ints(n, "pads", {a.pt(), a.pl(), a.pb(), a.pr()});
    ints(n, "dilations", {a.dilation_h, a.dilation_w});
    integer(n, "group", a.groups);
    if (transpose) {
      const int oph = a.output_padding, opw = a.output_padding_w >= 0 ? a.output_padding_w : a.output_padding;
      if (oph || opw) ints(n, "output_padding", {oph, opw});
    }
  }

  // Emits `layer` (named `name`) reading the value `in`; returns the value it makes.
  std::string emit(const std::string& name, const Module& layer, const std::vector<std::string>& ins) {
    const Module* m = &layer;
    auto one = [&] {
      SL_CHECK(ins.size() == 1, ValueError, "ONNX export: layer '", name, "' takes one input");
      return ins[0];
    };
    if (auto* s = dynamic_cast<const Sequential*>(m)) {
      std::string v = one();
      for (const auto& [child, l] : s->children()) v = emit(child, *l, {v});
      return v;
    }
    if (auto* gr = dynamic_cast<const Graph*>(m)) {
      std::map<std::string, std::string> val{{Graph::kInput, one()}};
      std::string last = one();
      for (const auto& n : gr->node_names()) {
        std::vector<std::string> node_ins;
        for (const auto& i : gr->inputs_of(n)) node_ins.push_back(val.at(i));
        last = val[n] = emit(n, *gr->layer(n), node_ins);
      }
      return last;
    }
    const std::string out = name;
    if (auto* c = dynamic_cast<const Conv2d*>(m)) {
      std::vector<std::string> in{one(), init(name + "_weight", c->weight)};
      if (c->bias.defined()) in.push_back(init(name + "_bias", c->bias));
      conv_attrs(node("Conv", name, in, out), c->kernel_h, c->kernel_w, c->geometry, false);
    } else if (auto* c = dynamic_cast<const ConvTranspose2d*>(m)) {
      std::vector<std::string> in{one(), init(name + "_weight", c->weight)};
      if (c->bias.defined()) in.push_back(init(name + "_bias", c->bias));
      conv_attrs(node("ConvTranspose", name, in, out), c->kernel_h, c->kernel_w, c->geometry, true);
    } else if (auto* l = dynamic_cast<const Linear*>(m)) {
      std::vector<std::string> in{one(), init(name + "_weight", l->weight)};
      if (l->bias.defined()) in.push_back(init(name + "_bias", l->bias));
      integer(node("Gemm", name, in, out), "transB", 1);
    } else if (auto* p = dynamic_cast<const MaxPool2d*>(m)) {
      auto* n = node("MaxPool", name, {one()}, out);
      ints(n, "kernel_shape", {p->kernel, p->kernel});
      ints(n, "strides", {p->stride, p->stride});
    } else if (auto* p = dynamic_cast<const Pool2d*>(m)) {
      const PoolArgs& a = p->args;
      const bool max = a.mode == PoolMode::max;
      auto* n = node(max ? "MaxPool" : "AveragePool", name, {one()}, out);
      ints(n, "kernel_shape", {a.kh, a.kw});
      ints(n, "strides", {a.sh, a.sw});
      ints(n, "pads", {a.pt, a.pl, a.pb, a.pr});
      if (max) ints(n, "dilations", {a.dh, a.dw});
      SL_CHECK(max || (a.dh == 1 && a.dw == 1), ValueError, "ONNX export: layer '", name,
               "': a dilated average pool has no ONNX operator (opset 13)");
      if (a.ceil_mode) integer(n, "ceil_mode", 1);
      if (!max && a.count_include_pad) integer(n, "count_include_pad", 1);
    } else if (dynamic_cast<const GlobalAvgPool2d*>(m)) {
      node("GlobalAveragePool", name, {one()}, out);
    } else if (auto* b = dynamic_cast<const BatchNorm*>(m)) {
      // y = x·w + b exactly: scale w, shift b, mean 0, variance 1, epsilon 0
      auto* n =
          node("BatchNormalization", name,
               {one(), init(name + "_scale", b->weight), init(name + "_shift", b->bias),
                init_scalar_vec(name + "_mean", b->channels, 0.f), init_scalar_vec(name + "_var", b->channels, 1.f)},
               out);
      real(n, "epsilon", 0.f);
    } else if (auto* a = dynamic_cast<const AddConstant*>(m)) {
      node("Add", name, {one(), init(name + "_value", a->value)}, out);
    } else if (dynamic_cast<const Add*>(m)) {
      SL_CHECK(ins.size() == 2, ValueError, "ONNX export: layer '", name, "' (Add) takes two inputs");
      node("Add", name, ins, out);
    } else if (dynamic_cast<const ReLU*>(m)) {
      node("Relu", name, {one()}, out);
    } else if (auto* l = dynamic_cast<const LeakyReLU*>(m)) {
      real(node("LeakyRelu", name, {one()}, out), "alpha", float(l->alpha));
    } else if (dynamic_cast<const Sigmoid*>(m)) {
      node("Sigmoid", name, {one()}, out);
    } else if (dynamic_cast<const Tanh*>(m)) {
      node("Tanh", name, {one()}, out);
    } else if (auto* s = dynamic_cast<const Softmax*>(m)) {
      SL_CHECK(!s->flatten, ValueError, "ONNX export: layer '", name,
               "': a softmax over a flattened input has no opset-13 operator");
      integer(node("Softmax", name, {one()}, out), "axis", s->axis);
    } else if (auto* f = dynamic_cast<const Flatten*>(m)) {
      integer(node("Flatten", name, {one()}, out), "axis", f->axis);
    } else if (auto* r = dynamic_cast<const Reshape*>(m)) {
      std::vector<int64_t> shape;
      if (r->keep_batch) shape.push_back(0);  // 0: the input's dim (the batch)
      for (size_t i = 0; i < r->target.rank(); ++i) shape.push_back(r->target[i]);
      node("Reshape", name, {one(), init_i64(name + "_shape", shape)}, out);
    } else if (dynamic_cast<const Dropout*>(m)) {
      return one();  // the identity at inference
    } else {
      throw ValueError(str("ONNX export: layer '", name, "' (", layer.describe(),
                           ") has no ONNX mapping; the exporter writes Conv2d, ConvTranspose2d, Linear, MaxPool2d, "
                           "Pool2d, GlobalAvgPool2d, BatchNorm, Add, AddConstant, ReLU, LeakyReLU, Sigmoid, Tanh, "
                           "Softmax, Flatten, Reshape, Dropout"));
    }
    return out;
  }
};

void set_value_info(onnx::ValueInfoProto* v, const std::string& name, const Shape& s) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  auto* sh = t->mutable_shape();
  for (size_t i = 0; i < s.rank(); ++i) {
    auto* d = sh->add_dim();
    if (i == 0)
      d->set_dim_param("batch");
    else
      d->set_dim_value(s[i]);
  }
}

}  // namespace

std::string export_bytes(const Module& net, const Shape& input_shape, const ExportOptions& opt) {
  SL_CHECK(input_shape.rank() >= 1, ValueError, "ONNX export: the input shape ", input_shape.str(),
           " has no batch dim");
  onnx::ModelProto model;
  model.set_ir_version(7);  // ONNX 1.7+, opset 13 (onnx 1.8): what PyTorch 1.13 and onnxruntime read
  model.set_producer_name("splitleak");
  auto* op = model.add_opset_import();
  op->set_domain("");
  op->set_version(13);
  auto* g = model.mutable_graph();
  g->set_name(opt.graph_name);
  if (!opt.doc.empty()) g->set_doc_string(opt.doc);
  Writer w{g};
  std::string out = w.emit("model", net, {opt.input_name});
  SL_CHECK(out != opt.input_name, ValueError, "ONNX export: the network has no layers");
  // The last node writes the graph's output under its own name: rename it.
  for (int i = g->node_size() - 1; i >= 0; --i) {
    auto* n = g->mutable_node(i);
    for (int k = 0; k < n->output_size(); ++k)
      if (n->output(k) == out) n->set_output(k, opt.output_name);
  }
  for (int i = 0; i < g->node_size(); ++i) {
    auto* n = g->mutable_node(i);
    for (int k = 0; k < n->input_size(); ++k)
      if (n->input(k) == out) n->set_input(k, opt.output_name);
  }
  set_value_info(g->add_input(), opt.input_name, input_shape);
  Shape os = net.output_shape(input_shape);
  set_value_info(g->add_output(), opt.output_name, os);
  try {
    onnx::checker::check_model(model);
    onnx::shape_inference::InferShapes(model);
  } catch (const std::exception& e) {
    throw ValueError(str("ONNX export: the written model fails the ONNX checker: ", e.what()));
  }
  g->clear_value_info();  // shape inference's annotations: not needed in the file
  std::string bytes;
  SL_CHECK(model.SerializeToString(&bytes), ValueError, "ONNX export: the model could not be serialised");
  return bytes;
}

void export_file(const std::string& path, const Module& net, const Shape& input_shape, const ExportOptions& opt) {
  const std::string bytes = export_bytes(net, input_shape, opt);
  io::write_file_atomic(path, bytes, "ONNX model");
}

}  // namespace sl::onnxio
