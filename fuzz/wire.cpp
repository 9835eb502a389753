// libFuzzer target: the wire decoder (runtime/wire: the frame assembler, every message decoder and the tensor
// decoder of tensor/serialize) and the observation-file reader (runtime/observations), on the same bytes. A
// decoder may refuse its input only with an sl::Error (ProtocolError, IoError); anything else, a crash, a
// sanitizer report, a hang or a huge allocation is a finding.
//
// Every frame carries a CRC-32, so a plain mutation almost never gets past it: the mutator below re-seals the
// frames it can walk after most mutations (not all: the checks themselves stay fuzzed). The first byte picks the
// size of the pieces the stream is fed in (how the network would cut it).
#include "runtime/wire.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <typeinfo>

#include "runtime/observations.h"
#include "tensor/io.h"  // crc32

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

template <class Fn>
void refuses_only_with_sl_error(const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const sl::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: %s threw %s: %s\n", what, typeid(e).name(), e.what());
    std::abort();
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
  size_t chunk = size_t(data[0]) + 1;
  refuses_only_with_sl_error("decode_stream", [&] { sl::wire::decode_stream(data + 1, size - 1, chunk, 1u << 20); });
  refuses_only_with_sl_error("parse_observations", [&] {
    sl::runtime::parse_observations(data + 1, size - 1, "fuzz", [](sl::runtime::Observation&&) {});
  });
  return 0;
}
