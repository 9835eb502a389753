#include "nn/graph.h"

#include <algorithm>
#include <sstream>

#include "autograd/ops.h"
#include "nn/layers.h"
#include "nn/sequential.h"

namespace sl {

// ---- MultiInputModule, Add -------------------------------------------------------------------------------
Tensor MultiInputModule::forward(const Tensor&) {
  throw ValueError(str(describe(), " takes ", num_inputs(), " inputs; run it as a node of a Graph"));
}

Shape MultiInputModule::output_shape(const Shape&) const {
  throw ValueError(str(describe(), " takes ", num_inputs(), " inputs; its shape needs them all"));
}

Tensor Add::forward_many(const std::vector<Tensor>& xs) {
  SL_CHECK(xs.size() == 2, ValueError, "Add takes 2 inputs, got ", xs.size());
  return add_broadcast(xs[0], xs[1]);
}

Shape Add::output_shape_many(const std::vector<Shape>& in) const {
  SL_CHECK(in.size() == 2, ValueError, "Add takes 2 inputs, got ", in.size());
  // the broadcast shape (ShapeError naming Add when the two do not broadcast)
  const size_t r = std::max(in[0].rank(), in[1].rank());
  std::vector<int64_t> d(r);
  for (size_t i = 0; i < r; ++i) {
    const int64_t a = i + in[0].rank() >= r ? in[0][i + in[0].rank() - r] : 1,
                  b = i + in[1].rank() >= r ? in[1][i + in[1].rank() - r] : 1;
    SL_CHECK(a == b || a == 1 || b == 1, ShapeError, "Add: shapes ", in[0].str(), " and ", in[1].str(),
             " do not broadcast");
    d[i] = a == 1 ? b : a;
  }
  return Shape(d);
}

// ---- Graph: construction -----------------------------------------------------------------------------------
int Graph::find(const std::string& name) const {
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].name == name) return int(i);
  return -1;
}

Graph& Graph::add(std::string name, std::shared_ptr<Module> layer, std::vector<std::string> inputs) {
  SL_CHECK(layer != nullptr, ValueError, "graph node '", name, "' has no layer");
  SL_CHECK(name != kInput, ValueError, "'", kInput, "' names the graph's input, not a node");
  if (inputs.empty()) inputs.push_back(nodes_.empty() ? std::string(kInput) : nodes_.back().name);
  auto* multi = dynamic_cast<MultiInputModule*>(layer.get());
  const size_t want = multi ? multi->num_inputs() : 1;
  SL_CHECK(inputs.size() == want, ValueError, "graph node '", name, "' (", layer->describe(), ") takes ", want,
           " input", want == 1 ? "" : "s", ", got ", inputs.size());
  Node n{name, layer, inputs, {}, -1};
  for (const auto& in : inputs) {
    if (in == kInput) {
      n.inputs.push_back(-1);
      continue;
    }
    const int p = find(in);
    SL_CHECK(p >= 0, ValueError, "graph node '", name, "' reads '", in,
             "', which is not an earlier node (nodes are added in topological order)");
    n.inputs.push_back(p);
  }
  register_child(name, layer);  // checks the name: non-empty, unique, no '.'
  const int self = int(nodes_.size());
  for (int p : n.inputs)
    if (p >= 0) nodes_[size_t(p)].last_reader = self;
  nodes_.push_back(std::move(n));
  return *this;
}

std::shared_ptr<Graph> Graph::from_sequential(const Sequential& s) {
  auto g = std::make_shared<Graph>();
  for (const auto& [name, layer] : s.children()) g->add(name, layer);
  g->train(s.is_training());
  return g;
}

// ---- Graph: queries ------------------------------------------------------------------------------------------
std::vector<std::string> Graph::node_names() const {
  std::vector<std::string> out;
  for (const auto& n : nodes_) out.push_back(n.name);
  return out;
}

size_t Graph::index_of(const std::string& name) const {
  const int i = find(name);
  if (i >= 0) return size_t(i);
  std::string valid;
  for (const auto& n : nodes_) valid += (valid.empty() ? "" : ", ") + n.name;
  throw ValueError(str("no layer named '", name, "'; the layers are: ", valid.empty() ? "(none)" : valid));
}

std::shared_ptr<Module> Graph::layer(const std::string& name) const { return nodes_[index_of(name)].layer; }

const std::vector<std::string>& Graph::inputs_of(const std::string& name) const {
  return nodes_[index_of(name)].input_names;
}

std::vector<std::string> Graph::readers_of(const std::string& name) const {
  const int p = name == kInput ? -1 : int(index_of(name));
  std::vector<std::string> out;
  for (const auto& n : nodes_)
    if (std::find(n.inputs.begin(), n.inputs.end(), p) != n.inputs.end()) out.push_back(n.name);
  return out;
}

std::vector<std::string> Graph::split_points() const {
  std::vector<std::string> out;
  for (const auto& n : nodes_)
    if (is_split_point(n.name)) out.push_back(n.name);
  return out;
}

bool Graph::is_split_point(const std::string& name) const {
  const int i = find(name);
  if (i < 0) return false;
  const int last = int(nodes_.size()) - 1;
  // node i's output must still be needed (a reader after it, or it is the output) ...
  if (i != last && nodes_[size_t(i)].last_reader <= i) return false;
  // ... and be the only tensor so far that is: the graph input and every earlier node are done by then
  for (int p = 0; p < i; ++p)
    if (nodes_[size_t(p)].last_reader > i) return false;
  for (size_t j = size_t(i) + 1; j < nodes_.size(); ++j)
    for (int p : nodes_[j].inputs)
      if (p < 0) return false;
  return true;
}

GraphSplit Graph::split(const std::string& name) const {
  const size_t cut = index_of(name);
  if (!is_split_point(name)) {
    std::string valid;
    for (const auto& s : split_points()) valid += (valid.empty() ? "" : ", ") + s;
    throw ValueError(str("layer '", name, "' is not a split point: more than one tensor crosses the cut after it (",
                         "inside a residual block); the split points are: ", valid));
  }
  GraphSplit s{std::make_shared<Graph>(), std::make_shared<Graph>()};
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    if (i <= cut) {
      s.head->add(n.name, n.layer, n.input_names);
    } else {
      std::vector<std::string> ins = n.input_names;
      for (auto& in : ins)
        if (in == name) in = kInput;
      s.tail->add(n.name, n.layer, ins);
    }
  }
  s.head->train(is_training());
  s.tail->train(is_training());
  return s;
}

std::pair<std::shared_ptr<Module>, std::shared_ptr<Module>> Graph::split_modules(const std::string& name) const {
  GraphSplit s = split(name);
  return {s.head, s.tail};
}

// ---- Graph: running ------------------------------------------------------------------------------------------
Tensor Graph::run(const Tensor& x, size_t last) {
  const size_t n = last + 1;
  // the last node (<= last) reading each node's output, so a tensor is dropped once its readers have run
  std::vector<int> last_use(n, -1);
  int input_last_use = -1;
  std::vector<int> readers(n, 0);
  for (size_t j = 0; j < n; ++j)
    for (int p : nodes_[j].inputs) {
      if (p < 0) {
        input_last_use = int(j);
      } else {
        last_use[size_t(p)] = int(j);
        ++readers[size_t(p)];
      }
    }
  // a node whose output only `reader` reads, and which is not the requested output, can be fused into it
  auto only_reader = [&](size_t i, size_t reader) {
    return i != last && readers[i] == 1 && last_use[i] == int(reader) && nodes_[reader].inputs.size() == 1 &&
           nodes_[i].last_reader == int(reader);
  };
  std::vector<Tensor> val(n);
  Tensor input = x;
  for (size_t i = 0; i < n; ++i) {
    const Node& node = nodes_[i];
    auto arg = [&](int p) -> const Tensor& { return p < 0 ? input : val[size_t(p)]; };
    size_t done = i;  // the last node this step computes
    Module* m = node.layer.get();
    const bool relu_next = i + 1 < n && only_reader(i, i + 1) && dynamic_cast<ReLU*>(nodes_[i + 1].layer.get());
    if (relu_next) {
      auto* pool =
          i + 2 < n && only_reader(i + 1, i + 2) ? dynamic_cast<MaxPool2d*>(nodes_[i + 2].layer.get()) : nullptr;
      if (auto* c = dynamic_cast<Conv2d*>(m); c && pool) {
        val[i + 2] = c->forward_relu_pool(arg(node.inputs[0]), pool->kernel, pool->stride);
        done = i + 2;
      } else if (c) {
        val[i + 1] = c->forward_relu(arg(node.inputs[0]));
        done = i + 1;
      } else if (auto* l = dynamic_cast<Linear*>(m)) {
        val[i + 1] = l->forward_relu(arg(node.inputs[0]));
        done = i + 1;
      }
    }
    if (done == i) {
      if (auto* multi = dynamic_cast<MultiInputModule*>(m)) {
        std::vector<Tensor> xs;
        for (int p : node.inputs) xs.push_back(arg(p));
        val[i] = multi->forward_many(xs);
      } else {
        val[i] = m->forward(arg(node.inputs[0]));
      }
    }
    // drop what no later node reads (the fused nodes' inputs are the first node's)
    for (int p : node.inputs) {
      if (p < 0 && input_last_use <= int(done)) input = Tensor();
      if (p >= 0 && last_use[size_t(p)] <= int(done)) val[size_t(p)] = Tensor();
    }
    i = done;
  }
  return val[last];
}

Tensor Graph::forward(const Tensor& x) { return nodes_.empty() ? x : run(x, nodes_.size() - 1); }

Tensor Graph::forward_until(const Tensor& x, const std::string& name) { return run(x, index_of(name)); }

// ---- Graph: shapes and summaries ---------------------------------------------------------------------------
std::vector<std::pair<std::string, Shape>> Graph::output_shapes(const Shape& in) const {
  std::vector<std::pair<std::string, Shape>> out;
  std::vector<Shape> s(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& node = nodes_[i];
    std::vector<Shape> ins;
    for (int p : node.inputs) ins.push_back(p < 0 ? in : s[size_t(p)]);
    if (auto* multi = dynamic_cast<const MultiInputModule*>(node.layer.get()))
      s[i] = multi->output_shape_many(ins);
    else
      s[i] = node.layer->output_shape(ins[0]);
    out.emplace_back(node.name, s[i]);
  }
  return out;
}

Shape Graph::output_shape(const Shape& in) const {
  if (nodes_.empty()) return in;
  return output_shapes(in).back().second;
}

std::string Graph::describe() const {
  return str("Graph(", nodes_.size(), " nodes, ", split_points().size(), " split points)");
}

std::string Graph::summary(const Shape& in) const {
  std::ostringstream os;
  const auto shapes = output_shapes(in);
  size_t w = 8;
  for (const auto& n : nodes_) w = std::max(w, n.name.size() + 2);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    std::string ins;
    for (const auto& s : n.input_names) ins += (ins.empty() ? "" : ", ") + (s == kInput ? std::string("input") : s);
    const bool prev = n.input_names.size() == 1 &&
                      ((i == 0 && n.input_names[0] == kInput) || (i > 0 && n.input_names[0] == nodes_[i - 1].name));
    os << (is_split_point(n.name) ? "* " : "  ") << n.name << std::string(w - n.name.size(), ' ') << n.layer->describe()
       << "  " << shapes[i].second.str() << (prev ? "" : "  <- " + ins) << "\n";
  }
  return os.str();
}

}  // namespace sl
