// libFuzzer target: what a splitleak peer reads from the network and from a recording — the frame assembler and
// every message decoder of runtime/wire (with the tensor decoder of tensor/serialize), fed the bytes in pieces
// whose size the first byte picks (as the network would cut them), then the observation-file reader
// (runtime/observations, through a real file as `splitleak attack --observed` reads it) on the same bytes.
// A decoder may refuse its input only with IoError (the wire's ProtocolError is one) whose message is one line.
//
// Every frame and record carries a CRC-32, so a plain mutation almost never gets past it: the mutator re-seals the
// frames it can walk after 7 of 8 mutations (the checks themselves stay fuzzed).
#include "runtime/wire.h"

#include <cstring>

#include "fuzz/fuzz_common.h"
#include "runtime/observations.h"
#include "tensor/io.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

void reseal(uint8_t* data, size_t size) {
  size_t pos = 1;  // byte 0 is the piece size
  while (pos + sl::wire::kHeaderBytes <= size && std::memcmp(data + pos, sl::wire::kMagic, 4) == 0) {
    uint8_t* h = data + pos;
    uint32_t len = uint32_t(h[16]) | uint32_t(h[17]) << 8 | uint32_t(h[18]) << 16 | uint32_t(h[19]) << 24;
    if (len > size - pos - sl::wire::kHeaderBytes) return;
    uint32_t c = sl::io::crc32(h + sl::wire::kHeaderBytes, len, sl::io::crc32(h, 20));
    for (int i = 0; i < 4; ++i) h[20 + i] = uint8_t(c >> (8 * i));
    pos += sl::wire::kHeaderBytes + len;
  }
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, max_size);
  if (seed % 8 != 0) reseal(data, size);
  return size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = size_t(data[0]) + 1;
  sl::fuzz::refuses_only_with("decode_stream", [&] { sl::wire::decode_stream(data + 1, size - 1, piece, 1u << 20); });
  const std::string path = sl::fuzz::write_scratch("observed.slob", data + 1, size - 1);
  sl::fuzz::refuses_only_with("read_observations", [&] { sl::runtime::read_observations(path); });
  return 0;
}
