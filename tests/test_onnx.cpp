// The ONNX importer (onnx/import.h): the ONNX project's backend tests for the supported operators pass against their
// stored outputs (the rest are refused as unsupported with one clear line); a residual model built here imports to
// the graph it describes (split points between blocks, batch norm folded, MatMul + Add one Linear, a dynamic batch);
// bad files — truncated, corrupt, empty, missing, unsupported operators and attributes, dynamic dims, several inputs
// or outputs — are one-line errors. Skips visibly when the component or the test data is absent.
#include <catch2/catch.hpp>

#ifndef SPLITLEAK_WITH_ONNX
TEST_CASE("ONNX importer", "[onnx]") {
  WARN("ONNX component not built (libonnx-dev / libprotobuf-dev absent): skipped");
}
#else
#include <onnx/onnx_pb.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "nn/layers.h"
#include "onnx/conformance.h"
#include "onnx/fuzz_import.h"
#include "onnx/import.h"
#include "tests/op_harness.h"

using namespace sl;
using namespace sl::test;
using sl::onnxio::ImportedModel;
using sl::onnxio::UnsupportedError;

namespace {

// ---- building small models with the ONNX library's protobuf classes --------------------------------------------
struct ModelBuilder {
  ::onnx::ModelProto m;
  ::onnx::GraphProto* g;
  explicit ModelBuilder(int64_t opset = 13) {
    m.set_ir_version(7);
    m.set_producer_name("splitleak-test");
    auto* o = m.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    g = m.mutable_graph();
    g->set_name("test");
  }
  // dims: > 0 fixed, 0 symbolic (named by `params`, in order)
  void input(const std::string& name, const std::vector<int64_t>& dims, std::vector<std::string> params = {},
             int elem = ::onnx::TensorProto::FLOAT) {
    value_info(g->add_input(), name, dims, params, elem);
  }
  void output(const std::string& name, const std::vector<int64_t>& dims, std::vector<std::string> params = {}) {
    value_info(g->add_output(), name, dims, params, ::onnx::TensorProto::FLOAT);
  }
  static void value_info(::onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims,
                         std::vector<std::string> params, int elem) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(elem);
    auto* s = t->mutable_shape();
    size_t p = 0;
    for (int64_t d : dims) {
      auto* dim = s->add_dim();
      if (d > 0)
        dim->set_dim_value(d);
      else
        dim->set_dim_param(p < params.size() ? params[p++] : "N");
    }
  }
  void init(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& v) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(::onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
  }
  void init_i64(const std::string& name, const std::vector<int64_t>& v) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(::onnx::TensorProto::INT64);
    t->add_dims(int64_t(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
  }
  ::onnx::NodeProto* node(const std::string& op, const std::string& name, std::vector<std::string> in,
                          std::vector<std::string> out) {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (auto& s : in) n->add_input(s);
    for (auto& s : out) n->add_output(s);
    return n;
  }
  static void ints(::onnx::NodeProto* n, const std::string& a, const std::vector<int64_t>& v) {
    auto* at = n->add_attribute();
    at->set_name(a);
    at->set_type(::onnx::AttributeProto::INTS);
    for (int64_t x : v) at->add_ints(x);
  }
  static void integer(::onnx::NodeProto* n, const std::string& a, int64_t v) {
    auto* at = n->add_attribute();
    at->set_name(a);
    at->set_type(::onnx::AttributeProto::INT);
    at->set_i(v);
  }
  std::string bytes() const { return m.SerializeAsString(); }
  ImportedModel import(const onnxio::ImportOptions& o = {}) const {
    const std::string b = bytes();
    return onnxio::import_bytes(b.data(), b.size(), "built", o);
  }
};

std::vector<float> randv(Generator& g, size_t n, double scale = 0.5) {
  auto v = randn({int64_t(n)}, g, scale).to_vector();
  return std::vector<float>(v.begin(), v.end());
}

Tensor as_tensor(const std::vector<float>& v, const Shape& s) { return Tensor::from_vector(v, s); }

// conv1 (3x3, s2, p1) -> bn1 -> relu1 -> [conv2 -> relu2 -> conv3] + relu1 -> add -> relu3 -> gap -> flat -> fc
// (MatMul + Add) -> prob (Softmax); the input's batch is symbolic.
struct Residual {
  ModelBuilder b;
  std::map<std::string, std::vector<float> > w;
  Residual() {
    Generator g(99);
    auto param = [&](const std::string& n, std::vector<int64_t> dims, double scale = 0.5) {
      int64_t c = 1;
      for (int64_t d : dims) c *= d;
      w[n] = randv(g, size_t(c), scale);
      b.init(n, dims, w[n]);
    };
    b.input("x", {0, 3, 8, 8}, {"batch"});
    param("w1", {4, 3, 3, 3});
    param("b1", {4});
    param("gamma", {4});
    param("beta", {4});
    param("mean", {4});
    w["var"] = {0.5f, 1.5f, 2.0f, 0.25f};
    b.init("var", {4}, w["var"]);
    param("w2", {4, 4, 3, 3});
    param("w3", {4, 4, 3, 3});
    param("b3", {4});
    param("wfc", {4, 5});  // MatMul's B: [in, out]
    param("bfc", {5});
    auto* c1 = b.node("Conv", "conv1", {"x", "w1", "b1"}, {"c1"});
    ModelBuilder::ints(c1, "kernel_shape", {3, 3});
    ModelBuilder::ints(c1, "strides", {2, 2});
    ModelBuilder::ints(c1, "pads", {1, 1, 1, 1});
    b.node("BatchNormalization", "bn1", {"c1", "gamma", "beta", "mean", "var"}, {"n1"});
    b.node("Relu", "relu1", {"n1"}, {"r1"});
    auto* c2 = b.node("Conv", "conv2", {"r1", "w2"}, {"c2"});
    ModelBuilder::ints(c2, "pads", {1, 1, 1, 1});
    b.node("Relu", "relu2", {"c2"}, {"r2"});
    auto* c3 = b.node("Conv", "block.conv3", {"r2", "w3", "b3"}, {"c3"});  // a '.' in the name
    ModelBuilder::ints(c3, "pads", {1, 1, 1, 1});
    b.node("Add", "add", {"c3", "r1"}, {"s"});
    b.node("Relu", "relu3", {"s"}, {"r3"});
    b.node("GlobalAveragePool", "gap", {"r3"}, {"p"});
    b.node("Flatten", "flat", {"p"}, {"f"});
    b.node("MatMul", "fc", {"f", "wfc"}, {"mm"});
    b.node("Add", "fc_bias", {"mm", "bfc"}, {"logits"});
    b.node("Softmax", "prob", {"logits"}, {"y"});
    b.output("y", {0, 5}, {"batch"});
  }
  // The same network from our ops, unfolded: conv, batch norm as the formula, ...
  Tensor reference(const Tensor& x) {
    NoGradGuard ng;
    auto T = [&](const std::string& n, Shape s) { return as_tensor(w[n], s); };
    Tensor c1 = conv2d(x, T("w1", {4, 3, 3, 3}), T("b1", {4}), 2, 1);
    std::vector<double> a(4), sh(4);
    for (size_t c = 0; c < 4; ++c) {
      a[c] = w["gamma"][c] / std::sqrt(double(w["var"][c]) + 1e-5);
      sh[c] = w["beta"][c] - w["mean"][c] * a[c];
    }
    Tensor r1 = relu(channel_affine(c1, Tensor::from_vector(a, {4}), Tensor::from_vector(sh, {4})));
    Tensor c3 =
        conv2d(relu(conv2d(r1, T("w2", {4, 4, 3, 3}), Tensor(), 1, 1)), T("w3", {4, 4, 3, 3}), T("b3", {4}), 1, 1);
    Tensor f = flatten(global_avg_pool2d(relu(add(c3, r1))), 1);
    std::vector<double> wt(20);  // [out 5, in 4] = wfc^T
    for (size_t i = 0; i < 4; ++i)
      for (size_t o = 0; o < 5; ++o) wt[o * 4 + i] = w["wfc"][i * 5 + o];
    return softmax(linear(f, Tensor::from_vector(wt, {5, 4}), T("bfc", {5})));
  }
};

void check_one_line(const std::string& msg) {
  INFO(msg);
  CHECK(msg.find('\n') == std::string::npos);
  CHECK(msg.find("ONNX model '") != std::string::npos);
}

// Imports bytes expecting an error of type E whose message contains every `parts`; returns the message.
template <class E>
std::string expect_error(const std::string& bytes, std::initializer_list<const char*> parts) {
  try {
    onnxio::import_bytes(bytes.data(), bytes.size(), "bad.onnx");
  } catch (const E& e) {
    const std::string m = e.what();
    check_one_line(m);
    for (const char* p : parts) {
      INFO(m);
      CHECK(m.find(p) != std::string::npos);
    }
    return m;
  } catch (const std::exception& e) {
    FAIL("wrong error type: " << e.what());
  }
  FAIL("no error for a bad model");
  return "";
}

}  // namespace

TEST_CASE("ONNX backend tests of the supported operators pass; the rest are refused as unsupported",
          "[onnx][conformance]") {
  const std::string dir = onnxio::default_testdata_dir();
  const auto tests = onnxio::conformance_tests(dir);
  if (tests.empty()) {
    WARN("ONNX backend test data not found at " << dir << " (install libonnx-testdata): conformance skipped");
    return;
  }
  // what is refused, and why (substring of the message); every other test must pass
  const std::vector<std::pair<std::string, std::string> > refused = {
      {"node/test_add_uint8", "element type UINT8"},
      {"node/test_maxpool_2d_uint8", "element type UINT8"},
      {"node/test_batchnorm_epsilon_training_mode", "training_mode=1 is not supported"},
      {"node/test_batchnorm_example_training_mode", "training_mode=1 is not supported"},
      {"node/test_convtranspose_3d", "3-d kernel"},
      {"node/test_dropout_default_mask", "mask output"},
      {"node/test_dropout_default_mask_ratio", "mask output"},
      {"node/test_gemm_all_attributes", "transA=1"},
      {"node/test_gemm_transposeA", "transA=1"},
      {"node/test_reshape_allowzero_reordered", "non-empty inputs"},
      {"node/test_softmax_", "operator ReduceMax is not supported"},  // the *_expanded forms
      {"node/test_transpose_", "Transpose of data computed at run time"},
      {"pytorch-converted/test_AvgPool3d", "3 spatial dims"},
      {"pytorch-converted/test_MaxPool3d", "3 spatial dims"},
      {"pytorch-converted/test_Conv3d", "3-d kernel"},
      {"pytorch-converted/test_PixelShuffle", "Transpose of data computed at run time"},
      {"pytorch-converted/test_", "is not supported; splitleak imports"},  // Pad, Elu, Gather, Split, LogSoftmax, ...
  };
  std::vector<onnxio::ConformanceResult> results;
  int passed = 0, unsupported = 0;
  std::set<std::string> ops_passed;
  for (const auto& t : tests) {
    const auto r = onnxio::run_conformance_test(dir, t);
    results.push_back(r);
    INFO(t << ": " << onnxio::outcome_name(r.outcome) << " — " << r.detail);
    CHECK(r.outcome != onnxio::Outcome::failed);
    if (r.outcome == onnxio::Outcome::passed) {
      ++passed;
      continue;
    }
    ++unsupported;
    check_one_line(r.detail);
    bool expected = false;
    for (const auto& [prefix, why] : refused)
      if (t.rfind(prefix, 0) == 0 && r.detail.find(why) != std::string::npos) expected = true;
    CHECK(expected);
  }
  // every operator of the list passes tests of its own
  for (const char* t : {"node/test_conv_with_strides_and_asymmetric_padding",
                        "node/test_basic_conv_with_padding",
                        "node/test_convtranspose_pads",
                        "node/test_convtranspose_output_shape",
                        "node/test_maxpool_2d_dilations",
                        "node/test_maxpool_2d_ceil",
                        "node/test_averagepool_2d_pads_count_include_pad",
                        "node/test_averagepool_2d_same_lower",
                        "node/test_globalaveragepool",
                        "node/test_gemm_default_matrix_bias",
                        "node/test_gemm_transposeB",
                        "node/test_matmul_2d",
                        "node/test_relu",
                        "node/test_leakyrelu",
                        "node/test_sigmoid",
                        "node/test_tanh",
                        "node/test_softmax_axis_0",
                        "node/test_flatten_negative_axis3",
                        "node/test_reshape_negative_extended_dims",
                        "node/test_batchnorm_epsilon",
                        "node/test_add_bcast",
                        "node/test_dropout_default",
                        "node/test_unsqueeze_unsorted_axes",
                        "pytorch-converted/test_Conv2d_groups",
                        "pytorch-converted/test_Conv2d_dilated",
                        "pytorch-converted/test_Conv1d_pad2",
                        "pytorch-converted/test_ConvTranspose2d",
                        "pytorch-converted/test_MaxPool1d_stride_padding_dilation",
                        "pytorch-converted/test_BatchNorm3d_eval",
                        "pytorch-converted/test_Linear_no_bias",
                        "pytorch-converted/test_AvgPool1d_stride",
                        "pytorch-converted/test_Softmax"}) {
    INFO(t);
    bool found = false;
    for (const auto& r : results)
      if (r.suite + "/" + r.name == t) found = r.outcome == onnxio::Outcome::passed;
    CHECK(found);
  }
  WARN("ONNX conformance (" << dir << "): " << passed << " passed, " << unsupported << " unsupported, "
                            << results.size() - size_t(passed + unsupported) << " failed of " << results.size());
}

TEST_CASE("the conformance runner notices a wrong output", "[onnx][conformance]") {
  const std::string dir = onnxio::default_testdata_dir();
  namespace fs = std::filesystem;
  const fs::path src = fs::path(dir) / "node" / "test_relu";
  if (!fs::exists(src)) {
    WARN("ONNX backend test data not found at " << dir << ": skipped");
    return;
  }
  const fs::path tmp = fs::temp_directory_path() / "splitleak-onnx-tamper";
  fs::remove_all(tmp);
  fs::create_directories(tmp / "node");
  fs::copy(src, tmp / "node" / "test_relu", fs::copy_options::recursive);
  CHECK(onnxio::run_conformance_test(tmp.string(), "node/test_relu").outcome == onnxio::Outcome::passed);
  // the expected output of relu, negated where positive: no longer what relu gives
  const fs::path out = tmp / "node" / "test_relu" / "test_data_set_0" / "output_0.pb";
  ::onnx::TensorProto t;
  {
    std::ifstream f(out, std::ios::binary);
    REQUIRE(t.ParseFromIstream(&f));
  }
  std::string raw = t.raw_data();
  REQUIRE(raw.size() >= 4);
  bool changed = false;
  for (size_t i = 0; i + 4 <= raw.size() && !changed; i += 4) {
    float v;
    std::memcpy(&v, raw.data() + i, 4);
    if (v > 0.1f) {
      v = -v;
      std::memcpy(raw.data() + i, &v, 4);
      changed = true;
    }
  }
  REQUIRE(changed);
  t.set_raw_data(raw);
  {
    std::ofstream f(out, std::ios::binary | std::ios::trunc);
    REQUIRE(t.SerializeToOstream(&f));
  }
  const auto r = onnxio::run_conformance_test(tmp.string(), "node/test_relu");
  CHECK(r.outcome == onnxio::Outcome::failed);
  CHECK(r.detail.find("expected") != std::string::npos);
  fs::remove_all(tmp);
}

TEST_CASE("a residual model imports to the graph it describes", "[onnx]") {
  Residual res;
  const ImportedModel m = res.b.import();
  CHECK(m.dynamic_batch);
  CHECK(m.input_shape == Shape{1, 3, 8, 8});
  CHECK(m.output_shape == Shape{1, 5});
  CHECK(m.folded_batchnorms == 1);
  CHECK(m.opset == 13);
  CHECK(m.producer == "splitleak-test");
  // bn1 folded into conv1, fc_bias into fc's Linear; node names from ONNX ('.' -> '_')
  CHECK(m.graph->node_names() == std::vector<std::string>{"conv1", "relu1", "conv2", "relu2", "block_conv3", "add",
                                                          "relu3", "gap", "flat", "fc", "prob"});
  CHECK(m.graph->split_points() ==
        std::vector<std::string>{"conv1", "relu1", "add", "relu3", "gap", "flat", "fc", "prob"});
  auto* fc = dynamic_cast<Linear*>(m.graph->layer("fc").get());
  REQUIRE(fc);
  CHECK(fc->bias.defined());
  Generator g(5);
  for (int64_t batch : {1, 3}) {  // the batch is dynamic
    Tensor x = randn({batch, 3, 8, 8}, g).to(DType::f32);
    NoGradGuard ng;
    Tensor y = m.graph->forward(x);
    CHECK(y.shape() == Shape{batch, 5});
    CHECK(rel_max_diff(y, res.reference(x)) < 1e-5);
    // head and tail at a split point give the whole
    auto s = m.graph->split("relu1");
    CHECK(rel_max_diff(s.tail->forward(s.head->forward(x)), y) == 0.0);
  }
  // without folding, the batch norm is a layer of its own (and the same function)
  onnxio::ImportOptions keep;
  keep.fold_batchnorm = false;
  const ImportedModel k = res.b.import(keep);
  CHECK(k.graph->size() == 12);
  CHECK(dynamic_cast<BatchNorm*>(k.graph->layer("bn1").get()));
  Tensor x = randn({2, 3, 8, 8}, g).to(DType::f32);
  NoGradGuard ng;
  CHECK(rel_max_diff(k.graph->forward(x), m.graph->forward(x)) < 1e-5);
}

TEST_CASE("a Reshape fixed at the export batch follows the batch it is run with", "[onnx]") {
  ModelBuilder b;
  b.input("x", {1, 2, 3, 4});  // exported at batch 1, as torch.onnx.export does without dynamic axes
  b.init_i64("shape", {1, -1});
  b.node("Reshape", "view", {"x", "shape"}, {"y"});
  b.output("y", {1, 24});
  const ImportedModel m = b.import();
  CHECK_FALSE(m.dynamic_batch);
  Generator g(3);
  NoGradGuard ng;
  CHECK(m.graph->forward(randn({4, 2, 3, 4}, g).to(DType::f32)).shape() == Shape{4, 24});
  // a target that mixes the batch into other dims is kept as it was: other batches are an error
  ModelBuilder c;
  c.input("x", {2, 3, 4});
  c.init_i64("shape", {4, 6});
  c.node("Reshape", "view", {"x", "shape"}, {"y"});
  c.output("y", {4, 6});
  const ImportedModel mc = c.import();
  CHECK(mc.graph->forward(randn({2, 3, 4}, g).to(DType::f32)).shape() == Shape{4, 6});
  CHECK_THROWS_AS(mc.graph->forward(randn({3, 3, 4}, g).to(DType::f32)), ShapeError);
}

TEST_CASE("bad ONNX files are one-line errors, never a crash or a silently wrong graph", "[onnx]") {
  Residual res;
  const std::string good = res.b.bytes();
  // missing, empty, garbage
  CHECK_THROWS_WITH(onnxio::import_file("/nonexistent/model.onnx"), Catch::Contains("cannot open ONNX model"));
  expect_error<IoError>("", {"is empty"});
  expect_error<IoError>(std::string(200, '\xff'), {"not a readable ONNX protobuf"});
  expect_error<IoError>("this is a text file, not a model\n", {"bad.onnx"});

  // every truncation: an error of splitleak's, or (cut after the last field) the same model
  Tensor x = randn({2, 3, 8, 8}, *std::make_unique<Generator>(1)).to(DType::f32);
  Tensor want;
  {
    NoGradGuard ng;
    want = res.b.import().graph->forward(x);
  }
  int refused = 0;
  for (size_t cut = 0; cut < good.size(); cut += 7) {
    try {
      const ImportedModel m = onnxio::import_bytes(good.data(), cut, "cut.onnx");
      NoGradGuard ng;
      INFO("cut at " << cut << " of " << good.size());
      CHECK(rel_max_diff(m.graph->forward(x), want) == 0.0);
    } catch (const Error& e) {
      ++refused;
      check_one_line(e.what());
    }
  }
  CHECK(refused > 0);
  // flipped bytes: refused with splitleak's errors, or a model (of other weights) that runs
  uint64_t state = 12345;
  for (int trial = 0; trial < 300; ++trial) {
    std::string b = good;
    for (int k = 0; k < 3; ++k) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      b[size_t(state >> 33) % b.size()] ^= char(1 + (state >> 20) % 255);
    }
    try {
      const ImportedModel m = onnxio::import_bytes(b.data(), b.size(), "flipped.onnx");
      NoGradGuard ng;
      m.graph->forward(Tensor::zeros(m.input_shape));
    } catch (const Error& e) {
      check_one_line(e.what());
    }
  }

  // an initializer whose data is shorter than its shape
  {
    Residual r;
    auto* t = r.b.g->mutable_initializer(0);
    t->set_raw_data(t->raw_data().substr(0, 12));
    expect_error<IoError>(r.b.bytes(), {"tensor 'w1'", "truncated or corrupt"});
  }
  // an unsupported operator: named with its node and the list of supported ones
  {
    ModelBuilder b;
    b.input("x", {1, 4});
    b.node("Elu", "act7", {"x"}, {"y"});
    b.output("y", {1, 4});
    expect_error<UnsupportedError>(b.bytes(), {"node 'act7' (Elu)", "operator Elu is not supported", "Conv", "Gemm"});
  }
  // an unsupported attribute value
  {
    ModelBuilder b;
    b.input("x", {2, 3});
    b.init("w", {2, 4}, std::vector<float>(8, 1.f));
    auto* n = b.node("Gemm", "fc", {"x", "w"}, {"y"});
    ModelBuilder::integer(n, "transA", 1);
    b.output("y", {3, 4});
    expect_error<UnsupportedError>(b.bytes(), {"node 'fc' (Gemm)", "transA=1"});
  }
  // a dynamic dim other than the batch
  {
    ModelBuilder b;
    b.input("x", {0, 3, 0, 0}, {"N", "height", "width"});
    b.node("Relu", "r", {"x"}, {"y"});
    b.output("y", {0, 3, 0, 0}, {"N", "height", "width"});
    expect_error<UnsupportedError>(b.bytes(), {"dynamic dim 'height' at axis 2", "batch"});
  }
  // two outputs; two inputs; a non-float input
  {
    ModelBuilder b;
    b.input("x", {1, 4});
    b.node("Relu", "r", {"x"}, {"y"});
    b.node("Sigmoid", "s", {"x"}, {"z"});
    b.output("y", {1, 4});
    b.output("z", {1, 4});
    expect_error<UnsupportedError>(b.bytes(), {"2 outputs (y, z)", "one"});
  }
  {
    ModelBuilder b;
    b.input("x", {1, 4});
    b.input("u", {1, 4});
    b.node("Add", "a", {"x", "u"}, {"y"});
    b.output("y", {1, 4});
    expect_error<UnsupportedError>(b.bytes(), {"2 data inputs (x, u)"});
  }
  {
    ModelBuilder b;
    b.input("x", {1, 4}, {}, ::onnx::TensorProto::INT64);
    b.node("Relu", "r", {"x"}, {"y"});
    b.output("y", {1, 4});
    expect_error<UnsupportedError>(b.bytes(), {"element type INT64"});
  }
  // a weight computed at run time
  {
    ModelBuilder b;
    b.input("x", {1, 1, 4, 4});
    b.node("Relu", "r", {"x"}, {"w"});
    b.node("Conv", "c", {"x", "w"}, {"y"});
    b.output("y", {1, 1, 1, 1});
    expect_error<Error>(b.bytes(), {"node 'c' (Conv)"});
  }
  // what the ONNX checker rejects (a node reading a value nothing makes)
  {
    ModelBuilder b;
    b.input("x", {1, 4});
    b.node("Relu", "r", {"nothing"}, {"y"});
    b.output("y", {1, 4});
    expect_error<ValueError>(b.bytes(), {"not valid ONNX"});
  }
  // a kernel that does not fit the input
  {
    ModelBuilder b;
    b.input("x", {1, 1, 2, 2});
    b.init("w", {1, 1, 3, 3}, std::vector<float>(9, 1.f));
    b.node("Conv", "big", {"x", "w"}, {"y"});
    b.output("y", {1, 1, 1, 1});
    expect_error<Error>(b.bytes(), {"node 'big' (Conv)"});
  }
}

TEST_CASE("the fuzz entry refuses garbage and runs what imports", "[onnx]") {
  Residual res;
  const std::string good = res.b.bytes();
  auto run = [](const std::string& b) {
    return onnxio::fuzz_import(reinterpret_cast<const uint8_t*>(b.data()), b.size());
  };
  CHECK(run(good) == 0);
  CHECK(run("") == 0);
  CHECK(run(good.substr(0, good.size() / 2)) == 0);
  CHECK(run(std::string(64, '\x08')) == 0);
}
#endif
