// libFuzzer target: the checkpoint reader (nn/checkpoint), as `splitleak eval/attack --model FILE` runs it:
// load_checkpoint, then load_into a LeNet. The reader may refuse a file only with IoError, load_into a
// well-formed checkpoint of another model only with ValueError. A deployment's CIS calibration in the metadata
// (`cis_calibration.<split>`, split/defense.h) is parsed as `splitleak edge` parses it: refused only with ValueError.
//
// The file's CRC-32 guards every byte, so a plain mutation almost never gets past it. The mutator below therefore
// repairs the size field and the checksum after most mutations (not all: the checks themselves stay fuzzed).
#include "nn/checkpoint.h"

#include <cstring>

#include "fuzz/fuzz_common.h"
#include "nn/models.h"
#include "split/defense.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

constexpr size_t kSizeAt = 8, kHeader = 16;

void repair(uint8_t* data, size_t size) {
  if (size < kHeader + 4) return;
  for (int i = 0; i < 8; ++i) data[kSizeAt + size_t(i)] = uint8_t(uint64_t(size) >> (8 * i));
  const uint32_t crc = sl::fuzz::crc32(data, size - 4);
  for (int i = 0; i < 4; ++i) data[size - 4 + size_t(i)] = uint8_t(crc >> (8 * i));
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, max_size);
  if (seed % 8 != 0) repair(data, size);
  return size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static sl::Model lenet = [] {
    sl::Generator gen(0);
    return sl::make_model("lenet", gen);
  }();
  const std::string path = sl::fuzz::write_scratch("model.ckpt", data, size);
  sl::Checkpoint ck;
  if (!sl::fuzz::refuses_only_with("load_checkpoint", [&] { ck = sl::load_checkpoint(path); })) return 0;
  for (const auto& kv : ck.meta)
    if (kv.first.rfind("cis_calibration.", 0) == 0)
      sl::fuzz::refuses_only_with<sl::ValueError>("parse_calibration",
                                                  [&] { sl::parse_calibration(kv.second, kv.first); });
  sl::fuzz::refuses_only_with<sl::ValueError>("load_into", [&] { sl::load_into(lenet, ck); });
  return 0;
}
