#include "experiment/common.h"

#include <omp.h>

#include <cctype>
#include <iomanip>
#include <iostream>

#include "split/cis.h"

#ifdef SPLITLEAK_WITH_ONNX
#include "onnx/import.h"
#endif

namespace sl::experiment {

bool is_onnx_path(const std::string& path) {
  if (path.size() < 5) return false;
  std::string ext = path.substr(path.size() - 5);
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".onnx";
}

std::string dataset_for_input(const Shape& input_shape) {
  if (input_shape == Shape{1, 28, 28}) return "mnist";
  if (input_shape == Shape{3, 32, 32}) return "cifar10";
  return "";
}

namespace {
LoadedModel load_onnx(const std::string& path, Device device) {
#ifdef SPLITLEAK_WITH_ONNX
  onnxio::ImportedModel im = onnxio::import_file(path);
  LoadedModel lm;
  SL_CHECK(im.input_shape.rank() == 4, onnxio::UnsupportedError, "ONNX model '", path, "': input '", im.input_name,
           "' has shape ", im.input_shape.str(), "; splitleak's commands take images [N, C, H, W]");
  lm.model = onnxio::to_model(im);
  SL_CHECK(im.output_shape.rank() == 2, onnxio::UnsupportedError, "ONNX model '", path, "': output '", im.output_name,
           "' has shape ", im.output_shape.str(),
           "; splitleak's commands take classifiers with an output [N, classes]");
  lm.model.net->to(device);
  lm.model.net->eval();
  lm.ckpt.arch = lm.model.arch;
  lm.ckpt.meta["format"] = "onnx";
  lm.ckpt.meta["producer"] = im.producer.empty() ? "(not named)" : im.producer;
  lm.ckpt.meta["opset"] = std::to_string(im.opset);
  if (im.folded_batchnorms) lm.ckpt.meta["folded_batchnorms"] = std::to_string(im.folded_batchnorms);
  lm.dataset = dataset_for_input(lm.model.input_shape);
  if (!lm.dataset.empty()) lm.ckpt.meta["dataset"] = lm.dataset + " (from the input shape)";
  return lm;
#else
  (void)device;
  throw ValueError(str("model '", path,
                       "' is an ONNX file, but this splitleak was built without the ONNX component "
                       "(install libonnx-dev and libprotobuf-dev, and build with -DSPLITLEAK_ONNX=ON)"));
#endif
}
}  // namespace

LoadedModel load_model(const std::string& path, Device device, bool allow_nonfinite) {
  if (is_onnx_path(path)) return load_onnx(path, device);
  LoadedModel lm;
  lm.ckpt = load_checkpoint(path, allow_nonfinite);
  if (allow_nonfinite) {
    std::vector<std::string> bad = nonfinite_tensors(lm.ckpt);
    if (!bad.empty())
      std::cerr << "splitleak: WARNING: checkpoint " << path << ": tensor " << bad[0]
                << (bad.size() > 1 ? str(" and ", bad.size() - 1, " more hold") : std::string(" holds"))
                << " NaN or inf; loaded anyway (--allow-nonfinite): no number computed from it can be trusted\n";
  }
  Generator gen(0);
  lm.model = make_model(lm.ckpt.arch, gen);
  load_into(lm.model, lm.ckpt);
  lm.model.net->to(device);
  lm.model.net->eval();
  lm.dataset = lm.ckpt.get("dataset");
  return lm;
}

void check_fits(const Model& m, const data::Dataset& d) {
  Shape s{d.channels(), d.height(), d.width()};
  SL_CHECK(s == m.input_shape, ValueError, "model '", m.arch, "' takes images of shape ", m.input_shape.str(),
           " but data set '", d.name, "' has ", s.str(), " (use --dataset ",
           m.input_shape == Shape({1, 28, 28}) ? "mnist" : "cifar10", ")");
  SL_CHECK(m.num_classes <= 0 || d.classes <= m.num_classes, ValueError, "data set '", d.name, "' has ", d.classes,
           " classes but model '", m.arch, "' outputs ", m.num_classes);
}

Device parse_device(const std::string& name) {
  Device d = Device::parse(name);
  if (d.is_cuda()) Tensor::zeros(Shape{1}, DType::f32, d);  // throws DeviceError without a usable GPU
  return d;
}

void check_not_empty(const data::Dataset& d, const std::string& role, const std::string& hint) {
  SL_CHECK(d.size() > 0, ValueError, "the ", role, " is empty (", d.source.empty() ? d.name : d.source, "): ", hint);
}

std::string json_text(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

EvalResult evaluate(Module& net, const data::Dataset& d, Device device, int64_t batch, const char* label) {
  return evaluate_with([&](const Tensor& x) { return net.forward(x); }, d, device, batch, label);
}

void set_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

namespace {
std::string g_cmdline;
}
std::string command_line() { return g_cmdline; }
void set_command_line(int argc, char** argv) {
  g_cmdline.clear();
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i == 0) {
      auto p = a.find_last_of('/');
      a = p == std::string::npos ? a : a.substr(p + 1);
    }
    g_cmdline += (i ? " " : "") + a;
  }
}

bool has_cis(const std::string& defense_spec) {
  if (defense_spec.empty()) return false;
  for (auto& d : parse_defenses(defense_spec))
    if (d.kind == "cis") return true;
  return false;
}

std::optional<int64_t> attacker_images_needed(bool whitebox, bool adaptive_against_cis, int64_t attacker_limit) {
  if (!whitebox) return attacker_limit;
  if (adaptive_against_cis) return int64_t(256);
  return std::nullopt;
}

DefenseCalibration calibrate_on_training_data(const SplitPipeline& pipeline, const std::string& dataset,
                                              const std::string& data_dir, Device device, int64_t images) {
  data::Dataset own = data::load_dataset(dataset, data_dir, true, images);
  check_not_empty(own, "calibration set", "CIS rank allocation calibrates on the edge's own training images");
  DefenseCalibration cal = calibrate_channels(pipeline, own.images.to(device));
  std::cerr << "calibrated " << pipeline.split() << " on " << own.size() << " training images: mean channel rank";
  for (double r : cal.channel_rank) std::cerr << " " << std::fixed << std::setprecision(1) << r;
  std::cerr << std::defaultfloat << "\n";
  return cal;
}

}  // namespace sl::experiment
