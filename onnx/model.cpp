// The imported graph as a chain of its segments between split points (onnx/import.h: to_model).
#include "nn/graph.h"
#include "nn/sequential.h"
#include "onnx/import.h"

namespace sl::onnxio {

Model to_model(const ImportedModel& m, const std::string& arch) {
  SL_CHECK(m.input_shape.rank() == 4, UnsupportedError, "ONNX model: input '", m.input_name, "' has shape ",
           m.input_shape.str(), "; splitleak's commands take images [N, C, H, W]");
  Model model;
  model.arch = arch;
  model.input_shape = Shape{m.input_shape[1], m.input_shape[2], m.input_shape[3]};
  model.num_classes = m.output_shape.rank() == 2 ? int(m.output_shape[1]) : 0;
  model.net = std::make_shared<Sequential>();
  std::shared_ptr<Graph> rest = m.graph;
  for (const std::string& point : m.graph->split_points()) {
    GraphSplit s = rest->split(point);
    const Graph& seg = *s.head;
    const auto names = seg.node_names();
    if (names.size() == 1 && !dynamic_cast<MultiInputModule*>(seg.layer(names[0]).get()))
      model.net->add(point, seg.layer(names[0]));
    else
      model.net->add(point, s.head);
    rest = s.tail;
  }
  SL_CHECK(rest->size() == 0, ValueError, "ONNX model: the graph's last node is not a split point");
  model.net->eval();
  return model;
}

}  // namespace sl::onnxio
