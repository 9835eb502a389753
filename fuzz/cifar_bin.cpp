// libFuzzer target: the CIFAR-10 binary-batch reader (datasets/cifar10), as `splitleak ... --dataset cifar10`
// runs it on the official layout: load_cifar10 on a folder whose cifar-10-batches-bin/test_batch.bin is the
// input, with batches of 2 records (the official 10000 need 30 MB files). Refusals only with IoError.
#include "datasets/cifar10.h"
#include "fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sl::fuzz::write_scratch("cifar10/cifar-10-batches-bin/test_batch.bin", data, size);
  sl::data::CifarOptions opt;
  opt.format = sl::data::CifarFormat::bin;
  opt.images_per_batch = 2;
  opt.announce_subset = false;
  for (int64_t limit : {int64_t(-1), int64_t(1)}) {
    opt.limit = limit;
    sl::fuzz::refuses_only_with("load_cifar10", [&] { sl::data::load_cifar10(sl::fuzz::scratch_dir(), false, opt); });
  }
  return 0;
}
