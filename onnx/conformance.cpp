#include "onnx/conformance.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "autograd/node.h"
#include "onnx/import.h"

namespace sl::onnxio {

namespace fs = std::filesystem;

const char* outcome_name(Outcome o) {
  return o == Outcome::passed ? "passed" : o == Outcome::failed ? "failed" : "unsupported";
}

std::string default_testdata_dir() {
  const char* env = std::getenv("SPLITLEAK_ONNX_TESTDATA");
  return env && *env ? env : "/usr/share/libonnx-testdata/data";
}

std::vector<std::string> conformance_tests(const std::string& dir) {
  std::vector<std::string> out;
  // node tests of the supported operators
  static const std::regex node_re(
      "test_(conv_.*|basic_conv_.*|convtranspose.*|maxpool_[12]d_.*|averagepool_[12]d_.*|globalaveragepool.*|gemm_.*|"
      "matmul_2d|relu|leakyrelu.*|sigmoid.*|tanh.*|softmax_.*|flatten_.*|reshape_.*|squeeze.*|unsqueeze_.*|"
      "transpose_.*|batchnorm_.*|add|add_.*|dropout_.*|identity)");
  for (const char* suite : {"node", "pytorch-converted"}) {
    const fs::path p = fs::path(dir) / suite;
    std::error_code ec;
    if (!fs::is_directory(p, ec)) continue;
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(p, ec)) {
      const std::string n = e.path().filename().string();
      if (!fs::exists(e.path() / "model.onnx")) continue;
      if (std::string(suite) == "node" && !std::regex_match(n, node_re)) continue;
      names.push_back(n);
    }
    std::sort(names.begin(), names.end());
    for (const auto& n : names) out.push_back(std::string(suite) + "/" + n);
  }
  return out;
}

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw IoError(str("cannot open '", p.string(), "'"));
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

::onnx::TensorProto read_tensor_pb(const fs::path& p) {
  ::onnx::TensorProto t;
  const std::string b = read_file(p);
  if (!t.ParseFromString(b)) throw IoError(str("'", p.string(), "' is not a TensorProto"));
  return t;
}

// The float values of a TensorProto (raw or typed data), with its shape.
std::vector<double> float_values(const ::onnx::TensorProto& t, Shape& shape) {
  std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
  shape = Shape(dims);
  const size_t n = size_t(shape.numel());
  std::vector<double> v(n);
  if (t.data_type() != ::onnx::TensorProto::FLOAT && t.data_type() != ::onnx::TensorProto::DOUBLE)
    throw UnsupportedError(str("a test tensor of ONNX element type ", t.data_type(), " (splitleak runs float)"));
  const bool dbl = t.data_type() == ::onnx::TensorProto::DOUBLE;
  if (t.has_raw_data()) {
    const std::string& r = t.raw_data();
    if (r.size() != n * (dbl ? 8 : 4)) throw IoError("test tensor size mismatch");
    for (size_t i = 0; i < n; ++i) {
      if (dbl) {
        double d;
        std::memcpy(&d, r.data() + 8 * i, 8);
        v[i] = d;
      } else {
        float f;
        std::memcpy(&f, r.data() + 4 * i, 4);
        v[i] = f;
      }
    }
  } else {
    if (size_t(dbl ? t.double_data_size() : t.float_data_size()) != n) throw IoError("test tensor size mismatch");
    for (size_t i = 0; i < n; ++i) v[i] = dbl ? t.double_data(int(i)) : double(t.float_data(int(i)));
  }
  return v;
}

}  // namespace

ConformanceResult run_conformance_test(const std::string& dir, const std::string& suite_and_name) {
  ConformanceResult r;
  const auto slash = suite_and_name.find('/');
  r.suite = suite_and_name.substr(0, slash);
  r.name = suite_and_name.substr(slash + 1);
  const fs::path base = fs::path(dir) / suite_and_name;
  try {
    ::onnx::ModelProto model;
    const std::string bytes = read_file(base / "model.onnx");
    if (!model.ParseFromString(bytes)) throw IoError("model.onnx is not a ModelProto");
    std::vector<fs::path> sets;
    for (const auto& e : fs::directory_iterator(base))
      if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
    std::sort(sets.begin(), sets.end());
    if (sets.empty()) throw IoError("no test_data_set_* directory");
    double worst = 0;
    for (const auto& set : sets) {
      // the inputs that are not initializers, in order: the first is the data, the others become constants
      std::vector<std::string> free_inputs;
      {
        std::vector<std::string> inits;
        for (const auto& t : model.graph().initializer()) inits.push_back(t.name());
        for (const auto& in : model.graph().input())
          if (std::find(inits.begin(), inits.end(), in.name()) == inits.end()) free_inputs.push_back(in.name());
      }
      ::onnx::ModelProto m = model;
      std::vector<::onnx::TensorProto> inputs;
      for (size_t k = 0; k < free_inputs.size(); ++k) {
        const fs::path p = set / str("input_", k, ".pb");
        if (!fs::exists(p)) break;
        inputs.push_back(read_tensor_pb(p));
      }
      if (inputs.empty()) throw IoError("no input_0.pb");
      for (size_t k = 1; k < inputs.size(); ++k) {
        ::onnx::TensorProto* t = m.mutable_graph()->add_initializer();
        *t = inputs[k];
        t->set_name(free_inputs[k]);
      }
      const std::string mb = m.SerializeAsString();
      const ImportedModel im = import_bytes(mb.data(), mb.size(), r.name);
      Shape xs;
      const std::vector<double> xv = float_values(inputs[0], xs);
      Tensor x = Tensor::from_vector(xv, xs, DType::f32);
      Tensor y;
      {
        NoGradGuard ng;
        y = im.graph->forward(x);
      }
      const fs::path op = set / "output_0.pb";
      if (!fs::exists(op)) throw IoError("no output_0.pb");
      Shape ws;
      const std::vector<double> want = float_values(read_tensor_pb(op), ws);
      if (y.shape() != ws) {
        r.outcome = Outcome::failed;
        r.detail = str("output shape ", y.shape().str(), ", expected ", ws.str());
        return r;
      }
      const std::vector<double> got = y.to_vector();
      for (size_t i = 0; i < got.size(); ++i) {
        const double e = std::fabs(got[i] - want[i]);
        const bool ok = e <= 1e-7 + 1e-3 * std::fabs(want[i]) || (std::isnan(got[i]) && std::isnan(want[i]));
        if (!ok) {
          r.outcome = Outcome::failed;
          r.detail = str(set.filename().string(), " element ", i, ": got ", got[i], ", expected ", want[i]);
          r.max_abs_err = e;
          return r;
        }
        if (!std::isnan(e)) worst = std::max(worst, e);
      }
    }
    r.outcome = Outcome::passed;
    r.max_abs_err = worst;
    std::ostringstream os;
    os.precision(2);
    os << "max abs err " << std::scientific << worst;
    r.detail = os.str();
  } catch (const UnsupportedError& e) {
    r.outcome = Outcome::unsupported;
    r.detail = e.what();
  } catch (const std::exception& e) {
    r.outcome = Outcome::failed;
    r.detail = e.what();
  }
  return r;
}

std::string conformance_table(const std::vector<ConformanceResult>& results) {
  std::ostringstream os;
  os << "| test | outcome | detail |\n|---|---|---|\n";
  int counts[3] = {0, 0, 0};
  for (const auto& r : results) {
    std::string d = r.detail;
    // the model's name repeats the test's: drop the prefix "ONNX model 'test_x': "
    const std::string pre = "ONNX model '" + r.name + "': ";
    if (d.rfind(pre, 0) == 0) d = d.substr(pre.size());
    const auto list = d.find("; splitleak imports ");  // the list of supported operators: once, in the docs
    if (list != std::string::npos) d = d.substr(0, list);
    for (auto& c : d)
      if (c == '|') c = '/';
    os << "| " << r.suite << "/" << r.name << " | " << outcome_name(r.outcome) << " | " << d << " |\n";
    ++counts[int(r.outcome)];
  }
  os << "\n"
     << counts[0] << " passed, " << counts[1] << " failed, " << counts[2] << " unsupported of " << results.size()
     << " tests\n";
  return os.str();
}

}  // namespace sl::onnxio
