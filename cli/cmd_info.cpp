// splitleak info: a trained model's layers, output shapes, parameters, and the bytes the edge would
// send per image if the model were split after each layer.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/validate.h"
#include "experiment/common.h"
#include "experiment/ui.h"
#include "nn/graph.h"

namespace sl::cli {

namespace {

struct InfoOptions {
  std::string model, arch, device = "cpu";
  bool json = false, allow_nonfinite = false;
};

void run_info(const InfoOptions& o) {
  Device device = parse_device(o.device);
  SL_CHECK(!o.model.empty() || !o.arch.empty(), ValueError, "info: pass --model FILE or --arch NAME");
  LoadedModel lm;
  if (!o.model.empty()) {
    lm = load_model(o.model, device, o.allow_nonfinite);
  } else {
    Generator g(0);
    lm.model = make_model(o.arch, g);
    lm.model.net->to(device);
  }
  auto& net = *lm.model.net;
  Shape in = lm.model.batch_shape(1);
  auto shapes = net.output_shapes(in);
  nlohmann::json j{
      {"arch", lm.model.arch}, {"input", in.dims()}, {"parameters", net.num_parameters()}, {"device", device.str()}};
  j["split_points"] = net.layer_names();
  for (auto& [k, v] : lm.ckpt.meta) j["meta"][k] = v;
  ui::Table t({"layer", "module", "output (per image)", "params", "sent if split here"});
  for (size_t i = 0; i < shapes.size(); ++i) {
    auto& [name, s] = shapes[i];
    auto layer = net.layer(name);
    int64_t per = s.numel();  // batch 1
    // A block of an imported graph (a residual block): its nodes, inside it, where the model cannot be split.
    std::string module = layer->describe();
    if (auto* g = dynamic_cast<Graph*>(layer.get())) {
      const Shape block_in = i == 0 ? in : shapes[i - 1].second;
      auto from = [&](const std::string& node) {
        std::string f;
        for (const auto& src : g->inputs_of(node))
          f += (f.empty() ? "" : ", ") + (src == Graph::kInput ? (i == 0 ? "input" : shapes[i - 1].first) : src);
        return f;
      };
      for (const auto& [node, ns] : g->output_shapes(block_in)) {
        if (node == name) continue;
        t.add({"  " + node, g->layer(node)->describe() + " <- " + from(node), ns.str(),
               std::to_string(g->layer(node)->num_parameters()), "(inside a block: no split)"});
      }
      module = g->layer(name)->describe() + " <- " + from(name) + " (ends a block)";
    }
    t.add({name, module, s.str(), std::to_string(layer->num_parameters()),
           ui::bytes(double(per) * 4) + " (" + std::to_string(per) + " floats)"});
    j["layers"].push_back({{"name", name},
                           {"module", layer->describe()},
                           {"output_shape", s.dims()},
                           {"parameters", layer->num_parameters()},
                           {"intermediate_bytes", per * 4}});
  }
  if (o.json) {
    std::cout << json_text(j) << std::endl;
    return;
  }
  std::cout << lm.model.arch << ": input " << in.str() << ", " << net.num_parameters() << " parameters ("
            << ui::bytes(double(net.num_parameters()) * 4) << ")\n";
  for (auto& [k, v] : lm.ckpt.meta) std::cout << "  " << k << ": " << v << "\n";
  std::string points;
  for (const auto& [name, s] : shapes) points += (points.empty() ? "" : ", ") + name;
  std::cout << "  split points (--split): " << points << "\n\n";
  t.print();
}

}  // namespace

void add_info(CLI::App& app) {
  auto o = std::make_shared<InfoOptions>();
  auto* c = app.add_subcommand("info", "Layers, output shapes, parameters and split sizes of a model");
  c->add_option("--model", o->model, "Checkpoint written by `splitleak train`, or an ONNX model (FILE.onnx)")
      ->check(valid::path());
  c->add_option("--arch", o->arch, "Or an architecture by name (untrained): lenet, cifar10cnn")
      ->check(CLI::IsMember({"lenet", "cifar10cnn"}));
  c->add_option("--device", o->device, "cpu or cuda[:N]");
  c->add_flag("--json", o->json, "Print one JSON object");
  c->add_flag("--allow-nonfinite", o->allow_nonfinite, "Load a checkpoint holding NaN or inf weights (with a warning)");
  c->callback([o] { run_info(*o); });
}

}  // namespace sl::cli
