#include "split/pipeline.h"

namespace sl {

SplitPipeline::SplitPipeline(const Model& model, const std::string& split, DefenseChain defenses)
    : model_(model), split_(split), defenses_(std::move(defenses)) {
  SL_CHECK(model.net, ValueError, "split pipeline: the model has no network");
  SplitModel sm = model.net->split(split);  // ValueError listing the layer names
  head_ = sm.head;
  tail_ = sm.tail;
  for (auto& d : defenses_) SL_CHECK(d, ValueError, "split pipeline: a null defense");
}

SplitPipeline SplitPipeline::from_parts(const Model& model, const std::string& split, std::shared_ptr<Sequential> head,
                                        std::shared_ptr<Sequential> tail, DefenseChain defenses) {
  SL_CHECK(head || tail, ValueError, "split pipeline: neither a head nor a tail");
  for (auto& d : defenses) SL_CHECK(d, ValueError, "split pipeline: a null defense");
  SplitPipeline p;
  p.model_ = model;
  p.split_ = split;
  p.head_ = std::move(head);
  p.tail_ = std::move(tail);
  p.defenses_ = std::move(defenses);
  return p;
}

SplitPipeline SplitPipeline::with_defenses(DefenseChain defenses) const {
  SplitPipeline p = *this;
  p.defenses_ = std::move(defenses);
  return p;
}

template <class Q>
Tensor SplitPipeline::edge_impl(const Tensor& x, const Q& queries) const {
  SL_CHECK(head_, ValueError, "split pipeline: no edge head here (not set up, or the cloud's side of a split)");
  Tensor h = x;
  for (auto& d : defenses_)
    if (d->place() == Place::input) h = d->apply(h, queries);
  Tensor v = head_->forward(h);
  for (auto& d : defenses_)
    if (d->place() == Place::intermediate) v = d->apply(v, queries);
  return v;
}

Tensor SplitPipeline::edge(const Tensor& x, uint64_t first_query) const { return edge_impl(x, first_query); }
Tensor SplitPipeline::edge(const Tensor& x, const std::vector<uint64_t>& queries) const {
  return edge_impl(x, queries);
}

Tensor SplitPipeline::cloud(const Tensor& v) const {
  SL_CHECK(tail_, ValueError, "split pipeline: no cloud tail here (not set up, or the edge's side of a split)");
  return tail_->forward(v);
}

Shape SplitPipeline::feature_shape() const {
  SL_CHECK(head_, ValueError, "split pipeline: not set up (no model)");
  Shape out = head_->output_shape(model_.batch_shape(1));
  return Shape(std::vector<int64_t>(out.dims().begin() + 1, out.dims().end()));
}

}  // namespace sl
