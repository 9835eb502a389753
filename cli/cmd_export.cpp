// splitleak export: a trained model (a checkpoint or an ONNX file), whole or one side of a split, as an ONNX file
// (onnx/export.h), so that an edge head trained here runs in any ONNX runtime.
#include <iostream>

#include "cli/commands.h"
#include "cli/validate.h"

#ifdef SPLITLEAK_WITH_ONNX
#include "onnx/export.h"
#endif

namespace sl::cli {

namespace {

struct ExportOptions {
  std::string model, out, split, part = "edge", format = "onnx";
  bool allow_nonfinite = false;
};

void run_export(const ExportOptions& o) {
#ifdef SPLITLEAK_WITH_ONNX
  LoadedModel lm = load_model(o.model, Device::cpu(), o.allow_nonfinite);
  std::shared_ptr<Module> net = lm.model.net;
  Shape in = lm.model.batch_shape(1);
  std::string what = lm.model.arch;
  if (!o.split.empty()) {
    SplitModel s = lm.model.net->split(o.split);  // ValueError listing the layers
    if (o.part == "edge") {
      net = s.head;
    } else {
      SL_CHECK(s.tail->size() > 0, ValueError, "export: the cloud part after the last layer '", o.split,
               "' is empty (the identity); split earlier");
      in = s.head->output_shape(in);
      net = s.tail;
    }
    what += ", " + o.part + " part of the split at " + o.split;
  }
  onnxio::ExportOptions eo;
  eo.graph_name = lm.model.arch;
  eo.doc = "splitleak " + what + " (from " + o.model + ")";
  onnxio::export_file(o.out, *net, in, eo);
  std::cout << "export: " << what << ": input " << in.str() << " (batch symbolic), output "
            << net->output_shape(in).str() << ", " << net->num_parameters() << " parameters -> " << o.out << "\n";
#else
  (void)o;
  throw ValueError(
      "export: this splitleak was built without the ONNX component (install libonnx-dev and libprotobuf-dev, and "
      "build with -DSPLITLEAK_ONNX=ON)");
#endif
}

}  // namespace

void add_export(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  auto* c = app.add_subcommand("export", "Write a trained model, or one part of a split, as an ONNX file");
  c->add_option("--model", o->model, "Checkpoint written by `splitleak train`, or an ONNX model (FILE.onnx)")
      ->required()
      ->check(valid::path());
  c->add_option("--out", o->out, "The ONNX file to write (written atomically)")->required()->check(valid::path());
  c->add_option("--split", o->split, "Export one side of a split at this layer");
  c->add_option("--part", o->part, "With --split: edge (the head, default) or cloud (the tail)")
      ->check(CLI::IsMember({"edge", "cloud"}));
  c->add_option("--format", o->format, "onnx (the only format)")->check(CLI::IsMember({"onnx"}));
  c->add_flag("--allow-nonfinite", o->allow_nonfinite, "Load a checkpoint holding NaN or inf weights (with a warning)");
  c->callback([o] {
    SL_CHECK(o->split.empty() ? o->part == "edge" : true, ValueError, "export: --part needs --split");
    run_export(*o);
  });
}

}  // namespace sl::cli
