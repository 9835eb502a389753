#include "cli/common.h"

#include <omp.h>

namespace sl::cli {

LoadedModel load_model(const std::string& path, Device device) {
  LoadedModel lm;
  lm.ckpt = load_checkpoint(path);
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
           " but data set '", d.name, "' has ", s.str(), " (use --dataset ", m.arch == "lenet" ? "mnist" : "cifar10",
           ")");
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

}  // namespace sl::cli
