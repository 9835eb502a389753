// Template part of experiment/common.h.
#pragma once
#include <chrono>
#include <cmath>
#include <type_traits>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "experiment/ui.h"

namespace sl::experiment {

template <class Fn>
EvalResult evaluate_with(Fn&& fn, const data::Dataset& d, Device device, int64_t batch, const char* label) {
  NoGradGuard ng;
  EvalResult r;
  auto t0 = std::chrono::steady_clock::now();
  int64_t n = d.size();
  SL_CHECK(n > 0, ValueError, "no images to evaluate: the data set '", d.name, "' is empty");
  int64_t correct = 0;
  double loss_sum = 0;
  r.predictions.resize(size_t(n));
  std::unique_ptr<ui::Progress> prog;
  if (label) prog = std::make_unique<ui::Progress>(label, n, "img");
  for (int64_t b = 0; b < n; b += batch) {
    int64_t e = std::min(n, b + batch);
    Tensor x = d.images.slice(b, e).to(device);
    std::vector<int32_t> lab(d.labels.begin() + b, d.labels.begin() + e);
    Tensor y = Tensor::from_labels(lab).to(device);
    Tensor logits;
    if constexpr (std::is_invocable_v<Fn, const Tensor&, int64_t>)
      logits = fn(x, b);  // also told the index of the batch's first image (its query number)
    else
      logits = fn(x);
    loss_sum += cross_entropy(logits, y).item() * double(e - b);
    SL_CHECK(std::isfinite(loss_sum), ValueError, "the model's outputs on images ", b, "..", e - 1,
             " are not finite (NaN or inf): its weights or inputs are broken, so no accuracy is reported");
    auto pred = argmax_rows(logits).to(Device::cpu());
    const int32_t* p = pred.data<int32_t>();
    for (int64_t i = 0; i < e - b; ++i) {
      r.predictions[size_t(b + i)] = p[i];
      correct += p[i] == lab[size_t(i)];
    }
    if (prog) prog->update(e, "acc " + ui::percent(double(correct) / double(e)));
  }
  if (prog) prog->finish("acc " + ui::percent(n ? double(correct) / double(n) : 0));
  r.count = n;
  r.accuracy = n ? double(correct) / double(n) : 0;
  r.loss = n ? loss_sum / double(n) : 0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace sl::experiment
