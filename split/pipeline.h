// The split as a type: edge head -> defense chain -> cloud tail (He, Zhang & Lee §II, §IV).
//
//   edge(x, q)  = D_intermediate( head( D_input(x) ) )   what the edge sends and the cloud receives (v)
//   cloud(v)    = tail(v)                                 the cloud's logits
//
// Every consumer of a split goes through it: `splitleak eval` (defended accuracy), every attack (the victims'
// observations, the black-box attacker's queries, the query-free attacker's cloud tail), and the network
// runtime (the edge process calls edge(), the cloud process cloud()). Query numbers make the defense's draws
// reproducible (split/defense.h): row r of a batch is query first_query + r, or queries[r].
// With no defense, cloud(edge(x, q)) is tail(head(x)) bit for bit.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/models.h"
#include "split/defense.h"

namespace sl {

class SplitPipeline {
 public:
  SplitPipeline() = default;
  // Splits `model` after the layer named `split` (ValueError listing the names otherwise). The head and tail
  // share the model's layers. Defenses run in chain order, input ones before the head, the others after it.
  SplitPipeline(const Model& model, const std::string& split, DefenseChain defenses = {});
  // One side of a deployed split (runtime/deploy.h): the edge process holds the head only (tail null), the cloud
  // process the tail only (head null); calling the missing side is a ValueError. `model` describes the whole
  // model (architecture, input shape); its net may hold only this side's layers.
  static SplitPipeline from_parts(const Model& model, const std::string& split, std::shared_ptr<Sequential> head,
                                  std::shared_ptr<Sequential> tail, DefenseChain defenses = {});

  const Model& model() const { return model_; }
  const std::string& split() const { return split_; }
  Sequential& edge_head() const { return *head_; }
  Sequential& cloud_tail() const { return *tail_; }
  const std::shared_ptr<Sequential>& edge_head_ptr() const { return head_; }
  const std::shared_ptr<Sequential>& cloud_tail_ptr() const { return tail_; }
  const DefenseChain& defenses() const { return defenses_; }
  bool defended() const { return !defenses_.empty(); }
  // The same split with other defenses (sharing the layers).
  SplitPipeline with_defenses(DefenseChain defenses) const;

  // What the cloud receives for a batch of images (on the model's device). Records a graph only when x
  // requires grad and grad mode is on.
  Tensor edge(const Tensor& x, uint64_t first_query) const;
  Tensor edge(const Tensor& x, const std::vector<uint64_t>& queries) const;
  // The cloud tail on what it received: logits (the identity after the last layer).
  Tensor cloud(const Tensor& v) const;
  Tensor run(const Tensor& x, uint64_t first_query) const { return cloud(edge(x, first_query)); }

  // One sample's intermediate shape, e.g. [16, 8, 8] at LeNet's ReLU2.
  Shape feature_shape() const;
  // Elements per sample at the input and at the split.
  int64_t input_elements() const { return model_.input_shape.numel(); }
  int64_t feature_elements() const { return feature_shape().numel(); }

 private:
  template <class Q>
  Tensor edge_impl(const Tensor& x, const Q& queries) const;

  Model model_;
  std::string split_;
  std::shared_ptr<Sequential> head_, tail_;
  DefenseChain defenses_;
};

}  // namespace sl
