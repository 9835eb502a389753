// Training metrics accumulated across steps (kernels/backend_api.inc): loss sum, correct predictions, count.
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu.h"

namespace sl::cpu {

void accumulate_metrics(const Tensor& loss, const Tensor& logits, const Tensor& labels, Tensor& totals) {
  SL_CHECK(totals.dtype() == DType::f64 && (totals.numel() == 3 || totals.numel() >= 5), ValueError,
           "accumulate_metrics: totals must be float64 [3] or [4 + L], got ", totals.str());
  SL_CHECK(logits.dim() == 2 && labels.numel() == logits.size(0), ShapeError, "accumulate_metrics: logits ",
           logits.str(), " and labels ", labels.str(), " do not fit");
  dispatch_float(logits, "accumulate_metrics", [&](auto t) {
    using T = decltype(t);
    const T* z = logits.data<T>();
    const int32_t* y = labels.data<int32_t>();
    const int64_t n = logits.size(0), c = logits.size(1);
    double correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      const T* r = z + i * c;
      int64_t best = 0;
      for (int64_t j = 1; j < c; ++j)
        if (r[j] > r[best]) best = j;
      correct += (c > 0 && best == y[i]) ? 1 : 0;
    }
    double* acc = totals.data<double>();
    acc[0] += double(loss.data<T>()[0]) * double(n);
    acc[1] += correct;
    acc[2] += double(n);
    if (totals.numel() >= 5) {
      const int64_t ring = totals.numel() - 4, c = int64_t(acc[3]);
      acc[4 + c % ring] = double(loss.data<T>()[0]);
      acc[3] += 1;
    }
  });
}

}  // namespace sl::cpu
