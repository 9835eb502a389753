// Training metrics accumulated on the device (kernels/backend_api.inc): one block walks the rows (argmax with
// ties to the first maximum, as the CPU), sums the hits with the deterministic block tree, and one thread adds
// loss * N, the hits and N to the float64 totals. No host sync: a training loop reads the totals now and then.
#include "kernels/cuda/common.cuh"

namespace sl::cuda {

namespace {
template <class T>
__global__ void __launch_bounds__(256) accumulate_metrics_kernel(const T* loss, const T* z, const int32_t* labels,
                                                                 int rows, int cols, double* totals, int ring) {
  double hits = 0;
  for (int i = threadIdx.x; i < rows; i += blockDim.x) {
    const T* r = z + int64_t(i) * cols;
    int best = 0;
    for (int j = 1; j < cols; ++j)
      if (r[j] > r[best]) best = j;
    hits += (cols > 0 && best == labels[i]) ? 1.0 : 0.0;
  }
  hits = block_sum(hits);
  if (threadIdx.x == 0) {
    totals[0] += double(loss[0]) * rows;
    totals[1] += hits;
    totals[2] += rows;
    if (ring > 0) {
      const long long c = (long long)totals[3];
      totals[4 + c % ring] = double(loss[0]);
      totals[3] += 1;
    }
  }
}

template <class T>
void accumulate_metrics_t(const Tensor& loss, const Tensor& logits, const Tensor& labels, Tensor& totals) {
  const int rows = int(logits.size(0)), cols = int(logits.size(1));
  accumulate_metrics_kernel<T>
      <<<1, 256, 0, stream_of(logits)>>>(loss.data<T>(), logits.data<T>(), labels.data<int32_t>(), rows, cols,
                                         totals.data<double>(), totals.numel() >= 5 ? int(totals.numel() - 4) : 0);
  SL_CUDA_LAUNCH("accumulate_metrics");
}
}  // namespace

void accumulate_metrics(const Tensor& loss, const Tensor& logits, const Tensor& labels, Tensor& totals) {
  SL_CHECK(totals.dtype() == DType::f64 && (totals.numel() == 3 || totals.numel() >= 5) &&
               totals.device() == logits.device(),
           ValueError, "accumulate_metrics: totals must be float64 [3] or [4 + L] on ", logits.device().str(), ", got ",
           totals.str());
  SL_CHECK(logits.dim() == 2 && labels.numel() == logits.size(0) && labels.dtype() == DType::i32, ShapeError,
           "accumulate_metrics: logits ", logits.str(), " and labels ", labels.str(), " do not fit");
  check_int32(logits.numel(), "accumulate_metrics");
  SL_CUDA_DISPATCH(logits, "accumulate_metrics", accumulate_metrics_t, loss, logits, labels, totals);
}

}  // namespace sl::cuda
