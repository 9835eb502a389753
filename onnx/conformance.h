// The ONNX backend test suite as splitleak's conformance yardstick (Debian libonnx-testdata): each test is a model
// (model.onnx) with inputs and expected outputs (test_data_set_*/input_*.pb, output_*.pb, TensorProtos). A test
// passes when the imported graph, run on the CPU in float32, gives every stored output within ONNX's own tolerance
// (|got - want| <= 1e-7 + 1e-3 |want|, as the suite's numpy runner). splitleak models take one data input: the test's
// other inputs (weights, shapes, a dropout ratio) become constants of the model, as initializers are.
#pragma once
#include <string>
#include <vector>

namespace sl::onnxio {

enum class Outcome { passed, failed, unsupported };
const char* outcome_name(Outcome o);

struct ConformanceResult {
  std::string suite;  // "node" or "pytorch-converted"
  std::string name;   // "test_conv_with_strides_padding"
  Outcome outcome = Outcome::failed;
  std::string detail;  // the error (failed / unsupported) or "max err 1.2e-07"
  double max_abs_err = 0;
};

// The default location of the test data (Debian's libonnx-testdata), or $SPLITLEAK_ONNX_TESTDATA.
std::string default_testdata_dir();

// The tests of the operators the importer supports: node/ tests selected by name (conv, convtranspose, pools, gemm,
// matmul_2d, activations, softmax, flatten, reshape, squeeze, unsqueeze, transpose, batchnorm, add, dropout,
// identity) and every pytorch-converted/ test, each as "suite/test_name". Empty when `dir` does not exist.
std::vector<std::string> conformance_tests(const std::string& dir);

// Runs one test (its directory dir/suite/name). Never throws for a bad model: the outcome says.
ConformanceResult run_conformance_test(const std::string& dir, const std::string& suite_and_name);

// A Markdown table: test, outcome, detail; then the totals.
std::string conformance_table(const std::vector<ConformanceResult>& results);

}  // namespace sl::onnxio
