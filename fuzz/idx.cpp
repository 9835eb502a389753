// libFuzzer target: the MNIST IDX reader (datasets/mnist), as `splitleak train/eval --dataset mnist` runs it:
// load_mnist on a folder holding an images file and a labels file, with and without --limit.
//
// Input: the images file, then the labels file. They are split where the images header says the images file
// ends (header + N x rows x cols bytes); when that is not inside the input, all of it is the images file and
// the labels file is empty. Each may be refused only with IoError.
#include "datasets/mnist.h"
#include "fuzz/fuzz_common.h"

namespace {

size_t images_file_size(const uint8_t* d, size_t n) {
  if (n < 16) return n;
  uint64_t payload = 1;  // stays below n * 2^32: no overflow
  for (int i = 0; i < 3; ++i) {
    const uint8_t* p = d + 4 + 4 * i;
    payload *= uint64_t(p[0]) << 24 | uint64_t(p[1]) << 16 | uint64_t(p[2]) << 8 | p[3];
    if (payload > n) return n;
  }
  return 16 + payload <= n ? size_t(16 + payload) : n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const size_t split = images_file_size(data, size);
  sl::fuzz::write_scratch("mnist/t10k-images-idx3-ubyte", data, split);
  sl::fuzz::write_scratch("mnist/t10k-labels-idx1-ubyte", data + split, size - split);
  for (int64_t limit : {int64_t(-1), int64_t(1)})
    sl::fuzz::refuses_only_with("load_mnist", [&] { sl::data::load_mnist(sl::fuzz::scratch_dir(), false, limit); });
  return 0;
}
