// The ONNX importer (onnx/import.h). Steps:
//   1. parse the bytes as an onnx::ModelProto (the ONNX library's protobuf classes), run the ONNX checker;
//   2. scan every node: a supported operator in the default domain, attributes it takes with values splitleak
//      handles (else UnsupportedError naming the node, the operator and what is supported);
//   3. one float data input (dims static but the first), one output;
//   4. walk the nodes in order (the checker guarantees a topological one), turning constants into tensors and each
//      operator into layers of nn/layers.h, computing every value's shape at the import batch as it goes;
//   5. keep the nodes the output needs, build the Graph, and compare our shapes with ONNX's shape inference.
#include "onnx/import.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "kernels/broadcast.h"
#include "nn/layers.h"

namespace sl::onnxio {

namespace {

using ::onnx::AttributeProto;
using ::onnx::GraphProto;
using ::onnx::ModelProto;
using ::onnx::NodeProto;
using ::onnx::TensorProto;
using ::onnx::ValueInfoProto;

constexpr const char* kSupported =
    "Add, AveragePool, BatchNormalization, Constant, Conv, ConvTranspose, Dropout, Flatten, Gemm, GlobalAveragePool, "
    "Identity, LeakyRelu, MatMul, MaxPool, Relu, Reshape, Sigmoid, Softmax, Squeeze, Tanh, Transpose (of constants), "
    "Unsqueeze";

// One line: newlines and runs of blanks of a library message become single spaces.
std::string one_line(const std::string& s) {
  std::string out;
  bool blank = false;
  for (char c : s) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      blank = !out.empty();
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';  // other control characters
    if (blank) out += ' ';
    blank = false;
    out += c;
  }
  return out;
}

const char* dtype_name_onnx(int t) {
  switch (t) {
    case TensorProto::FLOAT:
      return "FLOAT";
    case TensorProto::UINT8:
      return "UINT8";
    case TensorProto::INT8:
      return "INT8";
    case TensorProto::UINT16:
      return "UINT16";
    case TensorProto::INT16:
      return "INT16";
    case TensorProto::INT32:
      return "INT32";
    case TensorProto::INT64:
      return "INT64";
    case TensorProto::STRING:
      return "STRING";
    case TensorProto::BOOL:
      return "BOOL";
    case TensorProto::FLOAT16:
      return "FLOAT16";
    case TensorProto::DOUBLE:
      return "DOUBLE";
    case TensorProto::UINT32:
      return "UINT32";
    case TensorProto::UINT64:
      return "UINT64";
    case TensorProto::BFLOAT16:
      return "BFLOAT16";
    default:
      return "another type";
  }
}

// A constant: float values (kept in double until they become a float32 tensor) or integers, with a shape.
struct Const {
  Shape shape;
  bool is_int = false;
  std::vector<double> f;
  std::vector<int64_t> i;
  int64_t numel() const { return shape.numel(); }
  double at(size_t k) const { return is_int ? double(i[k]) : f[k]; }
  Tensor tensor() const {
    std::vector<double> v(static_cast<size_t>(numel()));
    for (size_t k = 0; k < v.size(); ++k) v[k] = at(k);
    return Tensor::from_vector(v, shape, DType::f32);
  }
};

// A value of the ONNX graph: a constant, or a tensor made at run time by a node of our graph (kInput: the input).
struct Value {
  bool is_const = false;
  Const c;
  std::string producer;  // our node's name, or Graph::kInput
  Shape shape;           // at the import batch
  bool batch = false;    // dim 0 is the batch
};

// A node of our graph before the Graph is built (passes may replace layers or drop nodes).
struct PNode {
  std::string name;
  std::shared_ptr<Module> layer;
  std::vector<std::string> inputs;  // producers: our node names or Graph::kInput
  std::string onnx_op;
};

class Importer {
 public:
  Importer(const std::string& what, const ImportOptions& opt) : what_(what), opt_(opt) {}

  ImportedModel run(ModelProto& model);

 private:
  std::string what_;
  ImportOptions opt_;
  int64_t opset_ = 0;
  std::map<std::string, Value> values_;
  std::map<std::string, int> readers_;  // how many node inputs (and graph outputs) read each value
  std::vector<PNode> nodes_;
  std::set<std::string> used_names_;
  std::string output_value_;
  int folded_ = 0;
  const NodeProto* cur_ = nullptr;  // the node being converted (for messages)
  std::string cur_name_;

  // ---- errors -------------------------------------------------------------------------------------------------
  std::string where() const {
    std::string w = str("ONNX model '", what_, "'");
    if (cur_) w += str(": node '", cur_->name().empty() ? cur_name_ : cur_->name(), "' (", cur_->op_type(), ")");
    return w;
  }
  [[noreturn]] void unsupported(const std::string& msg) const { throw UnsupportedError(str(where(), ": ", msg)); }
  [[noreturn]] void invalid(const std::string& msg) const { throw ValueError(str(where(), ": ", msg)); }
  [[noreturn]] void corrupt(const std::string& msg) const { throw IoError(str(where(), ": ", msg)); }

  // ---- constants ----------------------------------------------------------------------------------------------
  Const read_tensor(const TensorProto& t, const std::string& name) const;
  Const read_attr_constant(const NodeProto& n) const;

  // ---- attributes -----------------------------------------------------------------------------------------------
  const AttributeProto* attr(const NodeProto& n, const char* name) const {
    for (const auto& a : n.attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  int64_t attr_i(const NodeProto& n, const char* name, int64_t def) const {
    const AttributeProto* a = attr(n, name);
    if (!a) return def;
    if (a->type() != AttributeProto::INT) invalid(str("attribute '", name, "' must be an integer"));
    return a->i();
  }
  double attr_f(const NodeProto& n, const char* name, double def) const {
    const AttributeProto* a = attr(n, name);
    if (!a) return def;
    if (a->type() != AttributeProto::FLOAT) invalid(str("attribute '", name, "' must be a float"));
    return double(a->f());
  }
  std::string attr_s(const NodeProto& n, const char* name, const std::string& def) const {
    const AttributeProto* a = attr(n, name);
    if (!a) return def;
    if (a->type() != AttributeProto::STRING) invalid(str("attribute '", name, "' must be a string"));
    return a->s();
  }
  std::vector<int64_t> attr_ints(const NodeProto& n, const char* name) const {
    const AttributeProto* a = attr(n, name);
    if (!a) return {};
    if (a->type() != AttributeProto::INTS) invalid(str("attribute '", name, "' must be a list of integers"));
    return {a->ints().begin(), a->ints().end()};
  }

  // ---- the scan (step 2) ----------------------------------------------------------------------------------------
  void check_node(const NodeProto& n);

  // ---- values ---------------------------------------------------------------------------------------------------
  bool has_input(const NodeProto& n, int k) const { return n.input_size() > k && !n.input(k).empty(); }
  const Value& value(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) invalid(str("reads '", name, "', which no earlier node makes"));
    return it->second;
  }
  const Value& runtime(const NodeProto& n, int k, const char* what) const {
    if (!has_input(n, k)) invalid(str("has no ", what, " input"));
    const Value& v = value(n.input(k));
    if (v.is_const) unsupported(str("its ", what, " '", n.input(k), "' is a constant; splitleak runs it on the data"));
    return v;
  }
  const Const& constant(const NodeProto& n, int k, const char* what) const {
    if (!has_input(n, k)) invalid(str("has no ", what, " input"));
    const Value& v = value(n.input(k));
    if (!v.is_const)
      unsupported(str("its ", what, " '", n.input(k), "' is computed at run time; splitleak needs it constant"));
    return v.c;
  }
  void set_output(const NodeProto& n, Value v) {
    if (n.output_size() < 1 || n.output(0).empty()) invalid("has no output");
    if (!v.is_const) {
      int64_t e = v.shape.numel();
      if (e > opt_.max_elements)
        invalid(str("its output ", v.shape.str(), " has ", e, " elements, more than the ", opt_.max_elements,
                    " splitleak accepts"));
    }
    values_[n.output(0)] = std::move(v);
  }
  void set_const(const NodeProto& n, Const c) {
    Value v;
    v.is_const = true;
    v.shape = c.shape;
    v.c = std::move(c);
    set_output(n, std::move(v));
  }

  // ---- our nodes ------------------------------------------------------------------------------------------------
  std::string unique_name(const std::string& base);
  // Appends a node reading `in` (a runtime value); returns the value it makes (its shape from the layer).
  Value add_layer(const std::string& name, std::shared_ptr<Module> layer, const std::vector<const Value*>& in);
  Value reshape_to(const std::string& name, const Value& v, const Shape& full);

  // ---- operators -----------------------------------------------------------------------------------------------
  void convert(const NodeProto& n);
  void conv(const NodeProto& n, bool transposed);
  void pool(const NodeProto& n, PoolMode mode);
  void global_avg_pool(const NodeProto& n);
  void gemm(const NodeProto& n, bool matmul);
  void add(const NodeProto& n);
  void batchnorm(const NodeProto& n);
  void reshape(const NodeProto& n);
  void squeeze(const NodeProto& n, bool unsqueeze);
  void transpose(const NodeProto& n);
  void softmax(const NodeProto& n);

  ImportedModel finish(const ModelProto& model, const std::string& input_name, const Shape& input_shape,
                       bool dynamic_batch);
};

// ---- constants ------------------------------------------------------------------------------------------------
Const Importer::read_tensor(const TensorProto& t, const std::string& name) const {
  const std::string label = str("tensor '", name, "'");
  if (t.data_location() == TensorProto::EXTERNAL || t.external_data_size() > 0)
    unsupported(str(label, " keeps its data in an external file; splitleak reads self-contained models"));
  if (t.segment().begin() != 0 || t.segment().end() != 0) unsupported(str(label, " is segmented"));
  std::vector<int64_t> dims;
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) corrupt(str(label, " has a negative dim ", d));
    if (d > 0 && n > opt_.max_elements / d)
      invalid(str(label, " has more than the ", opt_.max_elements, " elements splitleak accepts"));
    n *= d;
    dims.push_back(d);
  }
  Const c;
  c.shape = Shape(dims);
  const int type = t.data_type();
  size_t elem = 0;
  switch (type) {
    case TensorProto::FLOAT:
    case TensorProto::INT32:
      elem = 4;
      break;
    case TensorProto::DOUBLE:
    case TensorProto::INT64:
      elem = 8;
      break;
    case TensorProto::BOOL:
    case TensorProto::UINT8:
    case TensorProto::INT8:
      elem = 1;
      break;
    default:
      unsupported(str(label, " has element type ", dtype_name_onnx(type),
                      "; splitleak reads FLOAT, DOUBLE, INT64, INT32, INT8, UINT8 and BOOL tensors"));
  }
  c.is_int = type != TensorProto::FLOAT && type != TensorProto::DOUBLE;
  const size_t count = size_t(n);
  (c.is_int ? c.i.resize(count) : c.f.resize(count));
  auto put = [&](size_t k, double fv, int64_t iv) {
    if (c.is_int)
      c.i[k] = iv;
    else
      c.f[k] = fv;
  };
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    if (raw.size() != count * elem)
      corrupt(str(label, " of shape ", c.shape.str(), " holds ", raw.size(), " bytes of data, it needs ", count * elem,
                  " (truncated or corrupt)"));
    const auto* p = reinterpret_cast<const uint8_t*>(raw.data());
    auto le = [&](size_t k, size_t bytes) {  // little-endian unsigned
      uint64_t v = 0;
      for (size_t b = 0; b < bytes; ++b) v |= uint64_t(p[k * bytes + b]) << (8 * b);
      return v;
    };
    for (size_t k = 0; k < count; ++k) {
      switch (type) {
        case TensorProto::FLOAT:
          put(k, double(std::bit_cast<float>(uint32_t(le(k, 4)))), 0);
          break;
        case TensorProto::DOUBLE:
          put(k, std::bit_cast<double>(le(k, 8)), 0);
          break;
        case TensorProto::INT64:
          put(k, 0, int64_t(le(k, 8)));
          break;
        case TensorProto::INT32:
          put(k, 0, int64_t(int32_t(uint32_t(le(k, 4)))));
          break;
        case TensorProto::INT8:
          put(k, 0, int64_t(int8_t(p[k])));
          break;
        default:  // UINT8, BOOL
          put(k, 0, int64_t(p[k]));
          break;
      }
    }
  } else {
    int have = 0;
    switch (type) {
      case TensorProto::FLOAT:
        have = t.float_data_size();
        break;
      case TensorProto::DOUBLE:
        have = t.double_data_size();
        break;
      case TensorProto::INT64:
        have = t.int64_data_size();
        break;
      default:
        have = t.int32_data_size();
        break;
    }
    if (size_t(have) != count)
      corrupt(str(label, " of shape ", c.shape.str(), " holds ", have, " values, it needs ", count,
                  " (truncated or corrupt)"));
    for (size_t k = 0; k < count; ++k) {
      const int i = int(k);
      switch (type) {
        case TensorProto::FLOAT:
          put(k, double(t.float_data(i)), 0);
          break;
        case TensorProto::DOUBLE:
          put(k, t.double_data(i), 0);
          break;
        case TensorProto::INT64:
          put(k, 0, t.int64_data(i));
          break;
        default:
          put(k, 0, int64_t(t.int32_data(i)));
          break;
      }
    }
  }
  if (!c.is_int)
    for (double v : c.f)
      if (!std::isfinite(v)) invalid(str(label, " holds a non-finite value (", v, ")"));
  return c;
}

Const Importer::read_attr_constant(const NodeProto& n) const {
  if (n.attribute_size() != 1) invalid("a Constant node needs exactly one value attribute");
  const AttributeProto& a = n.attribute(0);
  Const c;
  if (a.name() == "value") {
    if (a.type() != AttributeProto::TENSOR) invalid("attribute 'value' must be a tensor");
    return read_tensor(a.t(), n.output_size() ? n.output(0) : "constant");
  }
  if (a.name() == "value_float" || a.name() == "value_floats") {
    c.f = a.name() == "value_float" ? std::vector<double>{double(a.f())}
                                    : std::vector<double>(a.floats().begin(), a.floats().end());
    c.shape = a.name() == "value_float" ? Shape{} : Shape{int64_t(c.f.size())};
    return c;
  }
  if (a.name() == "value_int" || a.name() == "value_ints") {
    c.is_int = true;
    c.i =
        a.name() == "value_int" ? std::vector<int64_t>{a.i()} : std::vector<int64_t>(a.ints().begin(), a.ints().end());
    c.shape = a.name() == "value_int" ? Shape{} : Shape{int64_t(c.i.size())};
    return c;
  }
  unsupported(str("Constant attribute '", a.name(), "' is not supported (value, value_float(s), value_int(s) are)"));
}

// ---- the scan -------------------------------------------------------------------------------------------------
void Importer::check_node(const NodeProto& n) {
  cur_ = &n;
  if (!n.domain().empty() && n.domain() != "ai.onnx")
    unsupported(str("operator domain '", n.domain(), "' is not supported (only the default ai.onnx domain is)"));
  static const std::map<std::string, std::vector<std::string>> kAttrs = {
      {"Conv", {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}},
      {"ConvTranspose",
       {"auto_pad", "dilations", "group", "kernel_shape", "output_padding", "output_shape", "pads", "strides"}},
      {"MaxPool", {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"}},
      {"AveragePool", {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"}},
      {"GlobalAveragePool", {}},
      {"Gemm", {"alpha", "beta", "transA", "transB", "broadcast"}},
      {"MatMul", {}},
      {"Add", {"broadcast"}},
      {"Relu", {}},
      {"LeakyRelu", {"alpha"}},
      {"Sigmoid", {}},
      {"Tanh", {}},
      {"Softmax", {"axis"}},
      {"Flatten", {"axis"}},
      {"Reshape", {"allowzero", "shape"}},
      {"Squeeze", {"axes"}},
      {"Unsqueeze", {"axes"}},
      {"Dropout", {"ratio", "seed", "is_test"}},
      {"Identity", {}},
      {"BatchNormalization", {"epsilon", "momentum", "spatial", "is_test", "training_mode"}},
      {"Constant", {"value", "value_float", "value_floats", "value_int", "value_ints"}},
      {"Transpose", {"perm"}},
  };
  auto it = kAttrs.find(n.op_type());
  if (it == kAttrs.end())
    unsupported(str("operator ", n.op_type(), " is not supported; splitleak imports ", kSupported));
  for (const auto& a : n.attribute()) {
    if (std::find(it->second.begin(), it->second.end(), a.name()) == it->second.end()) {
      std::string takes;
      for (const auto& s : it->second) takes += (takes.empty() ? "" : ", ") + s;
      unsupported(str("attribute '", a.name(), "' is not supported; ", n.op_type(), " takes ",
                      takes.empty() ? std::string("none") : takes));
    }
  }
  // attribute values splitleak does not handle
  const std::string& op = n.op_type();
  if (op == "BatchNormalization") {
    if (attr_i(n, "training_mode", 0) != 0)
      unsupported(
          "attribute training_mode=1 is not supported: splitleak imports models for inference (running "
          "statistics)");
    if (attr_i(n, "spatial", 1) != 1) unsupported("attribute spatial=0 (per-element statistics) is not supported");
    for (int k = 1; k < n.output_size(); ++k)
      if (!n.output(k).empty())
        unsupported(str("output ", k, " ('", n.output(k), "', a training statistic) is not supported"));
  }
  if (op == "MaxPool" && n.output_size() > 1 && !n.output(1).empty())
    unsupported(str("the Indices output ('", n.output(1), "') is not supported"));
  if (op == "Dropout" && n.output_size() > 1 && !n.output(1).empty())
    unsupported(str("the mask output ('", n.output(1), "') is not supported; Dropout is the identity at inference"));
  if (op == "Gemm" && attr_i(n, "transA", 0) != 0)
    unsupported("attribute transA=1 (a transposed data input) is not supported; transB is");
  for (const char* pad_op : {"Conv", "ConvTranspose", "MaxPool", "AveragePool"})
    if (op == pad_op) {
      const std::string ap = attr_s(n, "auto_pad", "NOTSET");
      if (ap != "NOTSET" && ap != "VALID" && ap != "SAME_UPPER" && ap != "SAME_LOWER")
        unsupported(str("auto_pad '", ap, "' is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER are)"));
    }
  cur_ = nullptr;
}

// ---- our nodes ----------------------------------------------------------------------------------------------------
std::string Importer::unique_name(const std::string& base) {
  std::string s;
  for (char c : base) s += c == '.' ? '_' : c;
  if (s.empty() || s == Graph::kInput) s = "node";
  std::string name = s;
  for (int k = 2; used_names_.count(name); ++k) name = str(s, "_", k);
  used_names_.insert(name);
  return name;
}

Value Importer::add_layer(const std::string& name, std::shared_ptr<Module> layer, const std::vector<const Value*>& in) {
  PNode p{name, layer, {}, cur_ ? cur_->op_type() : ""};
  std::vector<Shape> shapes;
  for (const Value* v : in) {
    p.inputs.push_back(v->producer);
    shapes.push_back(v->shape);
  }
  Value out;
  try {
    if (auto* m = dynamic_cast<MultiInputModule*>(layer.get()))
      out.shape = m->output_shape_many(shapes);
    else
      out.shape = layer->output_shape(shapes[0]);
  } catch (const Error& e) {
    invalid(e.what());
  }
  out.producer = name;
  out.batch = in[0]->batch;
  nodes_.push_back(std::move(p));
  return out;
}

// A Reshape node to `full` (the whole shape at the import batch): it keeps the batch when v has one and full keeps it.
Value Importer::reshape_to(const std::string& name, const Value& v, const Shape& full) {
  const bool keep = v.batch && full.rank() >= 1 && v.shape.rank() >= 1 && full[0] == v.shape[0];
  std::vector<int64_t> d;
  for (size_t i = keep ? 1 : 0; i < full.rank(); ++i) d.push_back(full[i]);
  Value out = add_layer(name, std::make_shared<Reshape>(Shape(d), keep), {&v});
  out.batch = keep;
  return out;
}

// ---- operators
// ------------------------------------------------------------------------------------------------------- Floor
// division (Python's //), for the padding arithmetic of ONNX's spec.
int64_t floordiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

void Importer::conv(const NodeProto& n, bool transposed) {
  const char* op = transposed ? "ConvTranspose" : "Conv";
  const Value& x = runtime(n, 0, "data");
  const Const& w = constant(n, 1, "weight");
  const size_t wr = w.shape.rank();
  if (wr != 3 && wr != 4)
    unsupported(str(op, " with a ", wr < 3 ? 0 : int(wr) - 2, "-d kernel (weight ", w.shape.str(),
                    ") is not supported; splitleak has 1-d and 2-d convolutions"));
  if (x.shape.rank() != wr) invalid(str("data ", x.shape.str(), " and weight ", w.shape.str(), " differ in rank"));
  const int nd = int(wr) - 2;  // spatial dims
  const int64_t group = attr_i(n, "group", 1);
  if (group < 1 || group > x.shape[1]) invalid(str("group ", group, " out of range"));
  std::vector<int64_t> k(w.shape.dims().begin() + 2, w.shape.dims().end());
  const auto ks = attr_ints(n, "kernel_shape");
  if (!ks.empty() && ks != k) invalid(str("kernel_shape does not match the weight ", w.shape.str()));
  auto per_axis = [&](const char* name, int64_t def) {
    auto v = attr_ints(n, name);
    if (v.empty()) v.assign(size_t(nd), def);
    if (v.size() != size_t(nd)) invalid(str("attribute ", name, " needs ", nd, " values, got ", v.size()));
    return v;
  };
  const auto strides = per_axis("strides", 1), dil = per_axis("dilations", 1);
  auto out_pad = transposed ? per_axis("output_padding", 0) : std::vector<int64_t>(size_t(nd), 0);
  std::vector<int64_t> pads = attr_ints(n, "pads");
  if (pads.empty()) pads.assign(size_t(2 * nd), 0);
  if (pads.size() != size_t(2 * nd)) invalid(str("attribute pads needs ", 2 * nd, " values, got ", pads.size()));
  for (int i = 0; i < nd; ++i)
    if (strides[size_t(i)] < 1 || dil[size_t(i)] < 1 || pads[size_t(i)] < 0 || pads[size_t(nd + i)] < 0 ||
        k[size_t(i)] < 1)
      invalid("strides, dilations and kernel sizes must be positive, pads non-negative");
  const std::string auto_pad = attr_s(n, "auto_pad", "NOTSET");
  std::vector<int64_t> in_sp(x.shape.dims().end() - nd, x.shape.dims().end());
  if (!transposed) {
    if (auto_pad == "VALID") std::fill(pads.begin(), pads.end(), 0);
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      for (int i = 0; i < nd; ++i) {
        const int64_t s = strides[size_t(i)], in = in_sp[size_t(i)], out = (in + s - 1) / s;
        const int64_t total = std::max<int64_t>(0, (out - 1) * s + (k[size_t(i)] - 1) * dil[size_t(i)] + 1 - in);
        const int64_t small = total / 2, big = total - small;
        pads[size_t(i)] = auto_pad == "SAME_UPPER" ? small : big;
        pads[size_t(nd + i)] = auto_pad == "SAME_UPPER" ? big : small;
      }
    }
  } else {
    auto out_shape = attr_ints(n, "output_shape");
    if (!out_shape.empty() && out_shape.size() != size_t(nd)) {
      if (out_shape.size() == size_t(nd + 2))
        out_shape.erase(out_shape.begin(), out_shape.begin() + 2);
      else
        invalid(str("attribute output_shape needs ", nd, " values, got ", out_shape.size()));
    }
    if (out_shape.empty() && (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER"))
      for (int i = 0; i < nd; ++i) out_shape.push_back(in_sp[size_t(i)] * strides[size_t(i)]);
    if (!out_shape.empty()) {  // the pads that give this output (ONNX's equations), a negative end: output padding
      for (int i = 0; i < nd; ++i) {
        const int64_t total = strides[size_t(i)] * (in_sp[size_t(i)] - 1) + out_pad[size_t(i)] +
                              (k[size_t(i)] - 1) * dil[size_t(i)] + 1 - out_shape[size_t(i)];
        int64_t begin, end;
        if (auto_pad == "SAME_UPPER") {
          begin = floordiv(total, 2);
          end = total - begin;
        } else {
          end = floordiv(total, 2);
          begin = total - end;
        }
        if (begin < 0) unsupported(str("output_shape ", out_shape[size_t(i)], " needs a negative leading padding"));
        if (end < 0) {
          out_pad[size_t(i)] -= end;
          end = 0;
        }
        pads[size_t(i)] = begin;
        pads[size_t(nd + i)] = end;
      }
    } else if (auto_pad == "VALID") {
      std::fill(pads.begin(), pads.end(), 0);
    }
  }
  const int64_t cin = x.shape[1];
  if (!transposed && w.shape[1] * group != cin)
    invalid(str("data has ", cin, " channels, the weight ", w.shape.str(), " with group ", group, " expects ",
                w.shape[1] * group));
  if (transposed && w.shape[0] != cin)
    invalid(str("data has ", cin, " channels, the weight ", w.shape.str(), " expects ", w.shape[0]));
  const int64_t cout = transposed ? w.shape[1] * group : w.shape[0];
  if (cout % group != 0 || cin % group != 0) invalid(str("channels do not split into ", group, " groups"));
  // the geometry in 2-d (a 1-d op runs on [N, C, 1, L])
  const int a0 = nd == 2 ? 0 : -1;  // index of the row axis in the per-axis lists (-1: none)
  auto ax = [&](const std::vector<int64_t>& v, int axis, int64_t def) { return axis < 0 ? def : v[size_t(axis)]; };
  const int ar = a0, ac = nd - 1;
  ConvArgs a;
  a.stride = int(ax(strides, ar, 1));
  a.stride_w = int(ax(strides, ac, 1));
  a.pad = int(ax(pads, ar, 0));
  a.pad_left = int(pads[size_t(ac)]);
  a.pad_bottom = int(ar < 0 ? 0 : pads[size_t(nd + ar)]);
  a.pad_right = int(pads[size_t(nd + ac)]);
  a.dilation_h = int(ax(dil, ar, 1));
  a.dilation_w = int(dil[size_t(ac)]);
  a.groups = int(group);
  a.output_padding = int(ax(out_pad, ar, 0));
  a.output_padding_w = int(out_pad[size_t(ac)]);
  for (int64_t v : {int64_t(a.stride), int64_t(a.stride_w), int64_t(a.pad), int64_t(a.pad_left), int64_t(a.pad_bottom),
                    int64_t(a.pad_right), int64_t(a.dilation_h), int64_t(a.dilation_w)})
    if (v > (1 << 20)) invalid("a stride, padding or dilation beyond 2^20");
  if (transposed && (a.oph() >= std::max(a.sh(), a.dilation_h) || a.opw() >= std::max(a.sw(), a.dilation_w)))
    unsupported(str("output padding ", a.oph(), "x", a.opw(), " is not smaller than the stride or dilation"));
  const int kh = int(nd == 2 ? k[0] : 1), kw = int(k[size_t(nd - 1)]);
  const bool has_bias = has_input(n, 2);
  std::shared_ptr<Module> layer;
  Tensor* wt = nullptr;
  Tensor* bt = nullptr;
  if (transposed) {
    auto l = std::make_shared<ConvTranspose2d>(int(cin), int(cout), kh, kw, a, has_bias);
    wt = &l->weight;
    bt = &l->bias;
    layer = l;
  } else {
    auto l = std::make_shared<Conv2d>(int(cin), int(cout), kh, kw, a, has_bias);
    wt = &l->weight;
    bt = &l->bias;
    layer = l;
  }
  wt->copy_(w.tensor().reshape(wt->shape()));
  if (has_bias) {
    const Const& b = constant(n, 2, "bias");
    if (b.numel() != cout) invalid(str("bias ", b.shape.str(), " needs ", cout, " elements"));
    bt->copy_(b.tensor().reshape(bt->shape()));
  }
  const std::string name = unique_name(cur_name_);
  if (nd == 2) {
    set_output(n, add_layer(name, layer, {&x}));
    return;
  }
  // 1-d: [N, C, L] -> [N, C, 1, L] -> the 2-d op -> [N, C', L']
  const Value x4 = reshape_to(unique_name(name + "_2d"), x, Shape{x.shape[0], x.shape[1], 1, x.shape[2]});
  const Value y4 = add_layer(name, layer, {&x4});
  set_output(n, reshape_to(unique_name(name + "_1d"), y4, Shape{y4.shape[0], y4.shape[1], y4.shape[3]}));
}

void Importer::pool(const NodeProto& n, PoolMode mode) {
  const Value& x = runtime(n, 0, "data");
  const int nd = int(x.shape.rank()) - 2;
  if (nd != 1 && nd != 2)
    unsupported(str("pooling over ", nd, " spatial dims (input ", x.shape.str(), ") is not supported; splitleak has ",
                    "1-d and 2-d pooling"));
  auto k = attr_ints(n, "kernel_shape");
  if (k.size() != size_t(nd)) invalid(str("kernel_shape needs ", nd, " values"));
  auto per_axis = [&](const char* name, int64_t def) {
    auto v = attr_ints(n, name);
    if (v.empty()) v.assign(size_t(nd), def);
    if (v.size() != size_t(nd)) invalid(str("attribute ", name, " needs ", nd, " values, got ", v.size()));
    return v;
  };
  const auto strides = per_axis("strides", 1), dil = per_axis("dilations", 1);
  std::vector<int64_t> pads = attr_ints(n, "pads");
  if (pads.empty()) pads.assign(size_t(2 * nd), 0);
  if (pads.size() != size_t(2 * nd)) invalid(str("attribute pads needs ", 2 * nd, " values, got ", pads.size()));
  const std::string auto_pad = attr_s(n, "auto_pad", "NOTSET");
  const bool ceil_mode = attr_i(n, "ceil_mode", 0) != 0;
  for (int i = 0; i < nd; ++i) {
    const int64_t s = strides[size_t(i)], kk = k[size_t(i)], d = dil[size_t(i)];
    if (s < 1 || kk < 1 || d < 1 || s > (1 << 20) || kk > (1 << 20) || d > (1 << 20))
      invalid("kernel sizes, strides and dilations must be in [1, 2^20]");
    if (auto_pad == "VALID") pads[size_t(i)] = pads[size_t(nd + i)] = 0;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const int64_t in = x.shape[size_t(2 + i)], out = (in + s - 1) / s;
      const int64_t total = std::max<int64_t>(0, (out - 1) * s + (kk - 1) * d + 1 - in);
      const int64_t small = total / 2, big = total - small;
      pads[size_t(i)] = auto_pad == "SAME_UPPER" ? small : big;
      pads[size_t(nd + i)] = auto_pad == "SAME_UPPER" ? big : small;
    }
    const int64_t span = (kk - 1) * d + 1;
    if (pads[size_t(i)] < 0 || pads[size_t(nd + i)] < 0) invalid("pads must be non-negative");
    if (pads[size_t(i)] >= span || pads[size_t(nd + i)] >= span)
      unsupported(str("padding ", std::max(pads[size_t(i)], pads[size_t(nd + i)]), " is not smaller than the window (",
                      span, "); a window of padding only is not supported"));
  }
  PoolArgs p;
  p.mode = mode;
  const int r = nd == 2 ? 0 : -1, c = nd - 1;
  p.kh = r < 0 ? 1 : int(k[0]);
  p.kw = int(k[size_t(c)]);
  p.sh = r < 0 ? 1 : int(strides[0]);
  p.sw = int(strides[size_t(c)]);
  p.pt = r < 0 ? 0 : int(pads[0]);
  p.pl = int(pads[size_t(c)]);
  p.pb = r < 0 ? 0 : int(pads[size_t(nd)]);
  p.pr = int(pads[size_t(nd + c)]);
  p.dh = r < 0 ? 1 : int(dil[0]);
  p.dw = int(dil[size_t(c)]);
  p.ceil_mode = ceil_mode;
  p.count_include_pad = mode == PoolMode::avg && attr_i(n, "count_include_pad", 0) != 0;
  std::shared_ptr<Module> layer;
  const bool plain = mode == PoolMode::max && p.kh == p.kw && p.sh == p.sw && p.pt == 0 && p.pl == 0 && p.pb == 0 &&
                     p.pr == 0 && p.dh == 1 && p.dw == 1 &&
                     (!ceil_mode || (nd == 2 && (x.shape[2] - p.kh) % p.sh == 0 && (x.shape[3] - p.kw) % p.sw == 0));
  if (plain)
    layer = std::make_shared<MaxPool2d>(p.kh, p.sh);
  else
    layer = std::make_shared<Pool2d>(p);
  const std::string name = unique_name(cur_name_);
  if (nd == 2) {
    set_output(n, add_layer(name, layer, {&x}));
    return;
  }
  const Value x4 = reshape_to(unique_name(name + "_2d"), x, Shape{x.shape[0], x.shape[1], 1, x.shape[2]});
  const Value y4 = add_layer(name, layer, {&x4});
  set_output(n, reshape_to(unique_name(name + "_1d"), y4, Shape{y4.shape[0], y4.shape[1], y4.shape[3]}));
}

void Importer::global_avg_pool(const NodeProto& n) {
  const Value& x = runtime(n, 0, "data");
  const std::string name = unique_name(cur_name_);
  if (x.shape.rank() == 4) {
    set_output(n, add_layer(name, std::make_shared<GlobalAvgPool2d>(), {&x}));
    return;
  }
  if (x.shape.rank() != 3)
    unsupported(str("GlobalAveragePool over ", int(x.shape.rank()) - 2, " spatial dims is not supported"));
  const Value x4 = reshape_to(unique_name(name + "_2d"), x, Shape{x.shape[0], x.shape[1], 1, x.shape[2]});
  const Value y4 = add_layer(name, std::make_shared<GlobalAvgPool2d>(), {&x4});
  set_output(n, reshape_to(unique_name(name + "_1d"), y4, Shape{y4.shape[0], y4.shape[1], 1}));
}

void Importer::gemm(const NodeProto& n, bool matmul) {
  const Value& a = runtime(n, 0, "A");
  const Const& b = constant(n, 1, "B");
  if (a.shape.rank() != 2)
    unsupported(str(matmul ? "MatMul" : "Gemm", " of a ", a.shape.rank(), "-d input ", a.shape.str(),
                    " is not supported; splitleak's Linear takes [N, features]"));
  if (b.shape.rank() != 2) unsupported(str("a ", b.shape.rank(), "-d B ", b.shape.str(), " is not supported"));
  const bool tb = !matmul && attr_i(n, "transB", 0) != 0;
  const double alpha = matmul ? 1.0 : attr_f(n, "alpha", 1.0), beta = matmul ? 1.0 : attr_f(n, "beta", 1.0);
  const int64_t K = tb ? b.shape[1] : b.shape[0], N = tb ? b.shape[0] : b.shape[1];
  if (a.shape[1] != K) invalid(str("A ", a.shape.str(), " and B ", b.shape.str(), " do not multiply"));
  // Linear's weight [N, K] = alpha op(B)^T
  std::vector<double> wv(size_t(N * K));
  for (int64_t o = 0; o < N; ++o)
    for (int64_t i = 0; i < K; ++i) wv[size_t(o * K + i)] = alpha * b.at(size_t(tb ? o * K + i : i * N + o));
  // C as a per-feature bias when it broadcasts along the rows (scalar, [N], [1, N]); else an added constant
  bool vector_bias = false, has_c = !matmul && has_input(n, 2);
  std::vector<double> bv;
  const Const* c = has_c ? &constant(n, 2, "C") : nullptr;
  if (c) {
    const Shape& cs = c->shape;
    vector_bias = c->numel() == 1 || (cs.rank() == 1 && cs[0] == N) || (cs.rank() == 2 && cs[0] == 1 && cs[1] == N);
    if (vector_bias) {
      bv.resize(size_t(N));
      for (int64_t o = 0; o < N; ++o) bv[size_t(o)] = beta * c->at(c->numel() == 1 ? 0 : size_t(o));
    }
  }
  auto lin = std::make_shared<Linear>(int(K), int(N), vector_bias);
  lin->weight.copy_(Tensor::from_vector(wv, lin->weight.shape(), DType::f32));
  if (vector_bias) lin->bias.copy_(Tensor::from_vector(bv, Shape{N}, DType::f32));
  const std::string name = unique_name(cur_name_);
  if (!c || vector_bias) {
    set_output(n, add_layer(name, lin, {&a}));
    return;
  }
  const Value y = add_layer(unique_name(name + "_matmul"), lin, {&a});
  Const scaled = *c;
  for (double& v : scaled.f) v *= beta;
  for (size_t i = 0; i < scaled.i.size(); ++i) scaled.f.push_back(beta * double(scaled.i[i]));
  scaled.is_int = false;
  scaled.i.clear();
  set_output(n, add_layer(name, std::make_shared<AddConstant>(scaled.tensor()), {&y}));
}

void Importer::add(const NodeProto& n) {
  if (!has_input(n, 0) || !has_input(n, 1)) invalid("Add needs two inputs");
  const Value& va = value(n.input(0));
  const Value& vb = value(n.input(1));
  if (va.is_const && vb.is_const) {  // fold
    const Shape out = [&] {
      try {
        return bcast::broadcast_shape(va.shape, vb.shape, "Add");
      } catch (const Error& e) {
        invalid(e.what());
      }
    }();
    NoGradGuard ng;
    Tensor r = add_broadcast(va.c.tensor(), vb.c.tensor());
    Const c;
    c.shape = out;
    c.f = r.to_vector();
    set_const(n, c);
    return;
  }
  const std::string name = unique_name(cur_name_);
  if (!va.is_const && !vb.is_const) {
    set_output(n, add_layer(name, std::make_shared<Add>(), {&va, &vb}));
    return;
  }
  const Value& x = va.is_const ? vb : va;
  const std::string& xname = va.is_const ? n.input(1) : n.input(0);
  const Const& c = va.is_const ? va.c : vb.c;
  // MatMul + Add of a vector: the bias of the Linear the MatMul became (when the Add is its only reader)
  if (!nodes_.empty() && nodes_.back().name == x.producer && readers_[xname] == 1) {
    auto* lin = dynamic_cast<Linear*>(nodes_.back().layer.get());
    const Shape& cs = c.shape;
    if (lin && !lin->bias.defined() && x.shape.rank() == 2 &&
        ((cs.rank() == 1 && cs[0] == lin->out_features) ||
         (cs.rank() == 2 && cs[0] == 1 && cs[1] == lin->out_features))) {
      auto with_bias = std::make_shared<Linear>(lin->in_features, lin->out_features, true);
      with_bias->weight.copy_(lin->weight);
      with_bias->bias.copy_(c.tensor().reshape(Shape{lin->out_features}));
      nodes_.back().layer = with_bias;
      values_[n.output(0)] = x;
      return;
    }
  }
  set_output(n, add_layer(name, std::make_shared<AddConstant>(c.tensor()), {&x}));
}

void Importer::batchnorm(const NodeProto& n) {
  const Value& x = runtime(n, 0, "data");
  const Const& scale = constant(n, 1, "scale");
  const Const& bias = constant(n, 2, "bias");
  const Const& mean = constant(n, 3, "mean");
  const Const& var = constant(n, 4, "var");
  if (x.shape.rank() < 2) invalid(str("data ", x.shape.str(), " has no channel dim"));
  const int64_t C = x.shape[1];
  for (const Const* t : {&scale, &bias, &mean, &var})
    if (t->numel() != C) invalid(str("scale, bias, mean and var need ", C, " elements each, one has ", t->numel()));
  const double eps = attr_f(n, "epsilon", 1e-5);
  std::shared_ptr<BatchNorm> bn;
  try {
    const Shape s{C};
    bn = BatchNorm::from_statistics(scale.tensor().reshape(s), bias.tensor().reshape(s), mean.tensor().reshape(s),
                                    var.tensor().reshape(s), eps);
  } catch (const Error& e) {
    invalid(e.what());
  }
  // folded into the Conv before it: W' = W a[co], b' = b a[co] + shift[co]
  if (opt_.fold_batchnorm && !nodes_.empty() && nodes_.back().name == x.producer && readers_[n.input(0)] == 1) {
    if (auto* cv = dynamic_cast<Conv2d*>(nodes_.back().layer.get())) {
      auto folded =
          std::make_shared<Conv2d>(cv->in_channels, cv->out_channels, cv->kernel_h, cv->kernel_w, cv->geometry, true);
      auto w = cv->weight.to_vector(), a = bn->weight.to_vector(), sh = bn->bias.to_vector();
      std::vector<double> b = cv->bias.defined() ? cv->bias.to_vector() : std::vector<double>(size_t(C), 0.0);
      const size_t per = w.size() / size_t(C);
      for (size_t co = 0; co < size_t(C); ++co) {
        for (size_t i = 0; i < per; ++i) w[co * per + i] = double(float(w[co * per + i]) * float(a[co]));
        b[co] = double(float(b[co]) * float(a[co]) + float(sh[co]));
      }
      folded->weight.copy_(Tensor::from_vector(w, folded->weight.shape(), DType::f32));
      folded->bias.copy_(Tensor::from_vector(b, folded->bias.shape(), DType::f32));
      nodes_.back().layer = folded;
      values_[n.output(0)] = x;
      ++folded_;
      return;
    }
  }
  set_output(n, add_layer(unique_name(cur_name_), bn, {&x}));
}

void Importer::reshape(const NodeProto& n) {
  const Value& x = value(n.input(0));
  std::vector<int64_t> target;
  if (has_input(n, 1)) {
    const Const& s = constant(n, 1, "shape");
    if (!s.is_int || s.shape.rank() != 1) invalid("the shape input must be a 1-d integer tensor");
    target = s.i;
  } else {
    target = attr_ints(n, "shape");
  }
  const bool allowzero = attr_i(n, "allowzero", 0) != 0;
  int64_t known = 1;
  int infer = -1;
  std::vector<int64_t> d(target.size());
  for (size_t i = 0; i < target.size(); ++i) {
    int64_t v = target[i];
    if (v == 0 && !allowzero) {
      if (i >= x.shape.rank()) invalid(str("shape entry ", i, " copies a dim the input ", x.shape.str(), " lacks"));
      v = x.shape[i];
    }
    if (v == -1) {
      if (infer >= 0) invalid("the shape has two -1 entries");
      infer = int(i);
      continue;
    }
    if (v < 0) invalid(str("shape entry ", v, " is negative"));
    d[i] = v;
    if (v > 0 && known > opt_.max_elements / v) invalid("the target shape is too large");
    known *= v;
  }
  const int64_t total = x.shape.numel();
  if (infer >= 0) {
    if (known == 0 || total % known != 0) invalid(str("cannot reshape ", x.shape.str(), " to ", Shape(target).str()));
    d[size_t(infer)] = total / known;
  }
  const Shape full(d);
  if (full.numel() != total) invalid(str("cannot reshape ", x.shape.str(), " (", total, " elements) to ", full.str()));
  if (x.is_const) {
    Const c = x.c;
    c.shape = full;
    set_const(n, c);
    return;
  }
  if (full.numel() == 0) unsupported("an empty tensor is not supported");
  set_output(n, reshape_to(unique_name(cur_name_), x, full));
}

void Importer::squeeze(const NodeProto& n, bool unsqueeze) {
  const Value& x = value(n.input(0));
  std::vector<int64_t> axes = attr_ints(n, "axes");
  if (has_input(n, 1)) {
    const Const& a = constant(n, 1, "axes");
    if (!a.is_int) invalid("axes must be integers");
    axes = a.i;
  }
  const int64_t r = int64_t(x.shape.rank()) + (unsqueeze ? int64_t(axes.size()) : 0);
  std::vector<bool> mark(size_t(r), false);
  for (int64_t a : axes) {
    const int64_t k = a < 0 ? a + r : a;
    if (k < 0 || k >= r || mark[size_t(k)]) invalid(str("axis ", a, " out of range or repeated"));
    mark[size_t(k)] = true;
  }
  std::vector<int64_t> d;
  if (unsqueeze) {
    for (int64_t i = 0, j = 0; i < r; ++i) d.push_back(mark[size_t(i)] ? 1 : x.shape[size_t(j++)]);
  } else {
    for (int64_t i = 0; i < r; ++i) {
      const bool drop = axes.empty() ? x.shape[size_t(i)] == 1 : bool(mark[size_t(i)]);
      if (drop && x.shape[size_t(i)] != 1) invalid(str("cannot squeeze dim ", i, " of ", x.shape.str()));
      if (!drop) d.push_back(x.shape[size_t(i)]);
    }
  }
  const Shape full(d);
  if (x.is_const) {
    Const c = x.c;
    c.shape = full;
    set_const(n, c);
    return;
  }
  Value out = reshape_to(unique_name(cur_name_), x, full);
  if (unsqueeze && !axes.empty() && mark[0]) out.batch = false;
  set_output(n, out);
}

void Importer::transpose(const NodeProto& n) {
  const Value& x = value(n.input(0));
  if (!x.is_const) unsupported("Transpose of data computed at run time is not supported (of constants it is)");
  const size_t r = x.shape.rank();
  std::vector<int64_t> perm = attr_ints(n, "perm");
  if (perm.empty())
    for (size_t i = 0; i < r; ++i) perm.push_back(int64_t(r - 1 - i));
  if (perm.size() != r) invalid("perm does not match the rank");
  std::vector<bool> seen(r, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= int64_t(r) || seen[size_t(p)]) invalid("perm is not a permutation");
    seen[size_t(p)] = true;
  }
  std::vector<int64_t> od(r), in_stride(r, 1);
  for (size_t i = r; i-- > 1;) in_stride[i - 1] = in_stride[i] * x.shape[i];
  for (size_t i = 0; i < r; ++i) od[i] = x.shape[size_t(perm[i])];
  Const c = x.c;
  c.shape = Shape(od);
  const int64_t total = x.shape.numel();
  for (int64_t o = 0; o < total; ++o) {
    int64_t rest = o, src = 0;
    for (size_t i = r; i-- > 0;) {
      src += (rest % od[i]) * in_stride[size_t(perm[i])];
      rest /= od[i];
    }
    if (c.is_int)
      c.i[size_t(o)] = x.c.i[size_t(src)];
    else
      c.f[size_t(o)] = x.c.f[size_t(src)];
  }
  set_const(n, c);
}

void Importer::softmax(const NodeProto& n) {
  const Value& x = runtime(n, 0, "data");
  const int r = int(x.shape.rank());
  const bool old = opset_ < 13;  // before opset 13: the input coerced to 2-d at axis, default axis 1
  const int64_t axis = attr_i(n, "axis", old ? 1 : -1);
  if (axis < -r || axis >= r) invalid(str("axis ", axis, " out of range for ", x.shape.str()));
  set_output(n, add_layer(unique_name(cur_name_), std::make_shared<Softmax>(int(axis), old), {&x}));
}

void Importer::convert(const NodeProto& n) {
  const std::string& op = n.op_type();
  if (op == "Constant") return set_const(n, read_attr_constant(n));
  if (op == "Identity" || op == "Dropout") {
    if (op == "Dropout" && has_input(n, 2)) {
      const Const& t = constant(n, 2, "training_mode");
      if (t.numel() != 1 || t.at(0) != 0)
        unsupported("training_mode=true is not supported; Dropout is the identity at inference");
    }
    values_[n.output(0)] = value(n.input(0));
    return;
  }
  if (op == "Conv") return conv(n, false);
  if (op == "ConvTranspose") return conv(n, true);
  if (op == "MaxPool") return pool(n, PoolMode::max);
  if (op == "AveragePool") return pool(n, PoolMode::avg);
  if (op == "GlobalAveragePool") return global_avg_pool(n);
  if (op == "Gemm") return gemm(n, false);
  if (op == "MatMul") return gemm(n, true);
  if (op == "Add") return add(n);
  if (op == "BatchNormalization") return batchnorm(n);
  if (op == "Reshape") return reshape(n);
  if (op == "Squeeze") return squeeze(n, false);
  if (op == "Unsqueeze") return squeeze(n, true);
  if (op == "Transpose") return transpose(n);
  if (op == "Softmax") return softmax(n);
  if (op == "Flatten") {
    const Value& x = runtime(n, 0, "data");
    const int r = int(x.shape.rank());
    const int64_t axis = attr_i(n, "axis", 1);
    if (axis < -r || axis > r) invalid(str("axis ", axis, " out of range for ", x.shape.str()));
    Value y = add_layer(unique_name(cur_name_), std::make_shared<Flatten>(int(axis)), {&x});
    y.batch = x.batch && (axis == 1 || axis + r == 1 || (axis == 0 ? false : axis > 0 || axis + r > 0));
    return set_output(n, y);
  }
  std::shared_ptr<Module> act;
  if (op == "Relu") act = std::make_shared<ReLU>();
  if (op == "Sigmoid") act = std::make_shared<Sigmoid>();
  if (op == "Tanh") act = std::make_shared<Tanh>();
  if (op == "LeakyRelu") act = std::make_shared<LeakyReLU>(attr_f(n, "alpha", 0.01));
  if (!act) unsupported(str("operator ", op, " is not supported; splitleak imports ", kSupported));
  const Value& x = runtime(n, 0, "data");
  set_output(n, add_layer(unique_name(cur_name_), act, {&x}));
}

// ---- the model ---------------------------------------------------------------------------------------------------
ImportedModel Importer::run(ModelProto& model) {
  // 1. the ONNX checker
  try {
    ::onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    throw ValueError(str("ONNX model '", what_, "' is not valid ONNX: ", one_line(e.what())));
  }
  for (const auto& o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset_ = o.version();
  if (opset_ == 0) throw UnsupportedError(str("ONNX model '", what_, "' imports no version of the default domain"));
  const GraphProto& g = model.graph();
  // 2. every node: a supported operator with attributes splitleak handles
  for (int i = 0; i < g.node_size(); ++i) {
    cur_name_ = str(g.node(i).op_type(), "_", i);
    check_node(g.node(i));
  }
  // 3. one float input, one output
  std::set<std::string> init_names;
  for (const auto& t : g.initializer()) init_names.insert(t.name());
  std::vector<const ValueInfoProto*> inputs;
  for (const auto& in : g.input())
    if (!init_names.count(in.name())) inputs.push_back(&in);
  const std::string m = str("ONNX model '", what_, "'");
  auto list = [](const auto& items, auto name) {
    std::string s;
    for (const auto& it : items) s += (s.empty() ? "" : ", ") + name(it);
    return s;
  };
  if (inputs.size() != 1)
    throw UnsupportedError(str(m, ": the graph has ", inputs.size(), " data inputs (",
                               list(inputs, [](const ValueInfoProto* v) { return v->name(); }),
                               "); splitleak models take one"));
  if (g.output_size() != 1)
    throw UnsupportedError(str(m, ": the graph has ", g.output_size(), " outputs (",
                               list(g.output(), [](const ValueInfoProto& v) { return v.name(); }),
                               "); splitleak models have one"));
  const ValueInfoProto& in = *inputs[0];
  if (!in.type().has_tensor_type()) throw UnsupportedError(str(m, ": input '", in.name(), "' is not a tensor"));
  const auto& tt = in.type().tensor_type();
  if (tt.elem_type() != TensorProto::FLOAT)
    throw UnsupportedError(str(m, ": input '", in.name(), "' has element type ", dtype_name_onnx(tt.elem_type()),
                               "; splitleak models take FLOAT tensors"));
  if (!tt.has_shape()) throw UnsupportedError(str(m, ": input '", in.name(), "' has no shape"));
  std::vector<int64_t> dims;
  bool dynamic_batch = false;
  for (int i = 0; i < tt.shape().dim_size(); ++i) {
    const auto& d = tt.shape().dim(i);
    if (d.has_dim_value() && d.dim_value() > 0) {
      dims.push_back(d.dim_value());
      continue;
    }
    if (d.has_dim_value())
      throw UnsupportedError(str(m, ": input '", in.name(), "' has a dim of size ", d.dim_value(), " at axis ", i,
                                 "; splitleak needs non-empty inputs"));
    if (i == 0) {  // the batch
      dims.push_back(1);
      dynamic_batch = true;
      continue;
    }
    throw UnsupportedError(str(m, ": input '", in.name(), "' has a dynamic dim ",
                               d.has_dim_param() ? "'" + d.dim_param() + "'" : std::string("(unnamed)"), " at axis ", i,
                               "; splitleak needs a fixed size for every dim but the batch (axis 0)"));
  }
  if (dims.empty()) throw UnsupportedError(str(m, ": input '", in.name(), "' is a scalar; splitleak needs a batch"));
  const Shape input_shape(dims);
  if (input_shape.numel() > opt_.max_elements)
    throw ValueError(
        str(m, ": input ", input_shape.str(), " has more elements than the ", opt_.max_elements, " splitleak accepts"));
  // 4. constants and nodes
  for (const auto& t : g.initializer()) {
    Value v;
    v.is_const = true;
    v.c = read_tensor(t, t.name());
    v.shape = v.c.shape;
    values_[t.name()] = std::move(v);
  }
  Value x;
  x.producer = Graph::kInput;
  x.shape = input_shape;
  x.batch = true;
  values_[in.name()] = x;
  for (const auto& node : g.node())
    for (const auto& s : node.input()) ++readers_[s];
  output_value_ = g.output(0).name();
  ++readers_[output_value_];
  for (int i = 0; i < g.node_size(); ++i) {
    cur_ = &g.node(i);
    cur_name_ = g.node(i).name().empty() ? str(g.node(i).op_type(), "_", i) : g.node(i).name();
    convert(g.node(i));
  }
  cur_ = nullptr;
  return finish(model, in.name(), input_shape, dynamic_batch);
}

ImportedModel Importer::finish(const ModelProto& model, const std::string& input_name, const Shape& input_shape,
                               bool dynamic_batch) {
  const std::string m = str("ONNX model '", what_, "'");
  auto it = values_.find(output_value_);
  if (it == values_.end()) throw ValueError(str(m, ": no node makes the output '", output_value_, "'"));
  const Value& out = it->second;
  if (out.is_const) throw UnsupportedError(str(m, ": the output '", output_value_, "' is a constant"));
  // 5. the nodes the output needs, in order; the graph
  std::set<std::string> need{out.producer};
  for (size_t i = nodes_.size(); i-- > 0;)
    if (need.count(nodes_[i].name))
      for (const auto& s : nodes_[i].inputs) need.insert(s);
  ImportedModel r;
  r.graph = std::make_shared<Graph>();
  for (const auto& p : nodes_)
    if (need.count(p.name)) r.graph->add(p.name, p.layer, p.inputs);
  r.graph->eval();
  r.input_name = input_name;
  r.output_name = output_value_;
  r.input_shape = input_shape;
  r.dynamic_batch = dynamic_batch;
  r.output_shape = out.shape;
  r.opset = opset_;
  r.ir_version = model.ir_version();
  r.producer = model.producer_name() + (model.producer_version().empty() ? "" : " " + model.producer_version());
  r.graph_name = model.graph().name();
  r.folded_batchnorms = folded_;
  if (r.graph->output_shape(input_shape) != out.shape)
    throw ValueError(str(m, ": the graph's output shape ", r.graph->output_shape(input_shape).str(),
                         " differs from the importer's ", out.shape.str()));
  // our output shape against ONNX's shape inference (where it gives a static one)
  ModelProto inferred = model;
  try {
    ::onnx::shape_inference::InferShapes(inferred);
  } catch (const std::exception& e) {
    throw ValueError(str(m, ": ONNX shape inference fails: ", one_line(e.what())));
  }
  auto check = [&](const ValueInfoProto& vi) {
    if (vi.name() != output_value_ || !vi.type().has_tensor_type() || !vi.type().tensor_type().has_shape()) return;
    const auto& sh = vi.type().tensor_type().shape();
    if (sh.dim_size() != int(out.shape.rank()))
      throw ValueError(
          str(m, ": ONNX shape inference gives the output ", sh.dim_size(), " dims, splitleak ", out.shape.str()));
    for (int i = 0; i < sh.dim_size(); ++i)
      if (sh.dim(i).has_dim_value() && sh.dim(i).dim_value() != out.shape[size_t(i)] && !(i == 0 && dynamic_batch))
        throw ValueError(str(m, ": ONNX shape inference gives the output dim ", i, " = ", sh.dim(i).dim_value(),
                             ", splitleak ", out.shape.str()));
  };
  for (const auto& vi : inferred.graph().output()) check(vi);
  for (const auto& vi : inferred.graph().value_info()) check(vi);
  return r;
}

}  // namespace

std::string supported_operators() { return kSupported; }

ImportedModel import_bytes(const void* data, size_t size, const std::string& what, const ImportOptions& opt) {
  ModelProto model;
  if (size > size_t(INT32_MAX))
    throw UnsupportedError(str("ONNX model '", what, "' is ", size, " bytes; protobuf reads at most 2 GiB"));
  if (size == 0) throw IoError(str("ONNX model '", what, "' is empty"));
  if (!model.ParseFromArray(data, int(size)))
    throw IoError(
        str("ONNX model '", what, "' is not a readable ONNX protobuf (truncated or corrupt, ", size, " bytes)"));
  if (!model.has_graph() || model.graph().node_size() == 0)
    throw IoError(str("ONNX model '", what, "' has no graph nodes (truncated, corrupt or not a model)"));
  Importer imp(what, opt);
  // Messages quote names and texts from the file (node names, the checker's words about them): on one line, without
  // control characters, whatever the file holds.
  try {
    return imp.run(model);
  } catch (const UnsupportedError& e) {
    throw UnsupportedError(one_line(e.what()));
  } catch (const ShapeError& e) {
    throw ShapeError(one_line(e.what()));
  } catch (const IoError& e) {
    throw IoError(one_line(e.what()));
  } catch (const ValueError& e) {
    throw ValueError(one_line(e.what()));
  }
}

ImportedModel import_file(const std::string& path, const ImportOptions& opt) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError(str("cannot open ONNX model '", path, "'"));
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw IoError(str("cannot read ONNX model '", path, "'"));
  return import_bytes(bytes.data(), bytes.size(), path, opt);
}

}  // namespace sl::onnxio
