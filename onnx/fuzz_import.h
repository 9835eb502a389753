// The importer's fuzz entry (a libFuzzer target is one line: LLVMFuzzerTestOneInput(d, n) { return fuzz_import(d, n);
// }). The bytes are imported; a refusal must be an sl::Error. A model that imports is run once on zeros when its cost
// is small: an error or crash there is a finding too (a graph the importer accepted must run).
#pragma once
#include <cstddef>
#include <cstdint>

namespace sl::onnxio {
int fuzz_import(const uint8_t* data, size_t size);
}  // namespace sl::onnxio
