// Graph: a network that is not a chain — named nodes, each a layer applied to the outputs of earlier nodes (a DAG in
// topological order), one input tensor and one output (the last node). Residual blocks join two paths with Add.
//
// Split points are the cuts where one tensor carries everything the rest of the network needs: after node i, when
// node i's output is the only tensor made so far that a later node (or the output) reads. In a chain that is every
// node; in a residual net, the nodes between blocks. split("name") gives the edge head (the nodes up to that one) and
// the cloud tail (the rest, reading the head's output as its input): two Graphs sharing the original layer objects,
// as Sequential::split does for a chain. Splittable is what a chain and a graph have in common for split inference.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace sl {

class Sequential;

// A network that can be cut at named layers into an edge head and a cloud tail that run separately.
class Splittable {
 public:
  virtual ~Splittable() = default;
  // The layer names at which the network can be cut, in order.
  virtual std::vector<std::string> split_points() const = 0;
  // {head, tail}: the network up to and including `name`, and the rest (the identity after the last layer).
  // ValueError naming the valid split points when `name` is not one.
  virtual std::pair<std::shared_ptr<Module>, std::shared_ptr<Module>> split_modules(const std::string& name) const = 0;
};

// A layer with several inputs (Graph merge nodes); forward(x) of one tensor is an error.
class MultiInputModule : public Module {
 public:
  virtual size_t num_inputs() const = 0;
  virtual Tensor forward_many(const std::vector<Tensor>& xs) = 0;
  virtual Shape output_shape_many(const std::vector<Shape>& in) const = 0;
  Tensor forward(const Tensor& x) override;
  Shape output_shape(const Shape& in) const override;
};

// a + b (NumPy broadcasting): the join of a residual block.
class Add : public MultiInputModule {
 public:
  size_t num_inputs() const override { return 2; }
  Tensor forward_many(const std::vector<Tensor>& xs) override;
  Shape output_shape_many(const std::vector<Shape>& in) const override;
  std::string describe() const override { return "Add"; }
};

class Graph;
struct GraphSplit {
  std::shared_ptr<Graph> head;  // runs on the edge; its output is the named node's
  std::shared_ptr<Graph> tail;  // runs in the cloud on the head's output; empty (the identity) after the last node
};

class Graph : public Module, public Splittable {
 public:
  // The name by which a node reads the graph's input.
  static constexpr const char* kInput = "<input>";

  Graph() = default;

  // Appends node `name` = layer(inputs...). `inputs` name earlier nodes or kInput; empty means the previous node
  // (the graph's input for the first node). A MultiInputModule takes exactly its num_inputs(), any other layer one.
  // Names are unique, non-empty, contain no '.', and are not kInput. Returns *this for chaining.
  Graph& add(std::string name, std::shared_ptr<Module> layer, std::vector<std::string> inputs = {});

  // Runs every node; the output is the last node's. Conv2d or Linear followed by its only reader, a ReLU, runs as one
  // op with the ReLU fused (and Conv2d + ReLU + MaxPool2d as conv2d_relu_pool), as Sequential does: same values.
  Tensor forward(const Tensor& x) override;
  // Runs the nodes up to and including `name` and returns that node's output.
  Tensor forward_until(const Tensor& x, const std::string& name);

  size_t size() const { return nodes_.size(); }
  std::vector<std::string> node_names() const;
  std::shared_ptr<Module> layer(const std::string& name) const;              // ValueError if absent
  size_t index_of(const std::string& name) const;                            // ValueError listing the names
  const std::vector<std::string>& inputs_of(const std::string& name) const;  // the node's input names
  // The nodes reading `name`'s output (kInput: the graph input's readers).
  std::vector<std::string> readers_of(const std::string& name) const;

  std::vector<std::string> split_points() const override;
  bool is_split_point(const std::string& name) const;
  GraphSplit split(const std::string& name) const;
  std::pair<std::shared_ptr<Module>, std::shared_ptr<Module>> split_modules(const std::string& name) const override;

  Shape output_shape(const Shape& in) const override;
  // Every node's output shape, in order, for an input of shape `in`.
  std::vector<std::pair<std::string, Shape>> output_shapes(const Shape& in) const;
  std::string describe() const override;  // "Graph(14 nodes, 3 split points)"
  // One line per node: "conv1  Conv2d(1->8, k5)  [1, 8, 24, 24]  <- input", marking split points with '*'.
  std::string summary(const Shape& in) const;

  // The chain of a Sequential as a graph (sharing its layer objects): every layer a node and a split point.
  static std::shared_ptr<Graph> from_sequential(const Sequential& s);

 private:
  struct Node {
    std::string name;
    std::shared_ptr<Module> layer;
    std::vector<std::string> input_names;
    std::vector<int> inputs;  // node indices; -1: the graph's input
    int last_reader = -1;     // the last node that reads this one's output (-1: none yet)
  };
  std::vector<Node> nodes_;

  Tensor run(const Tensor& x, size_t last);  // nodes 0..last; returns node last's output
  int find(const std::string& name) const;   // -1 when absent
};

}  // namespace sl
