// libFuzzer target: the ONNX importer (onnx/import), as `splitleak eval/info/attack --model FILE.onnx` runs it. The
// entry is onnx/fuzz_import.h: the bytes are imported (a refusal must be an sl::Error with a one-line message), and a
// model that imports is run once on zeros. Built only with the ONNX component (SPLITLEAK_ONNX).
#include "onnx/fuzz_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return sl::onnxio::fuzz_import(data, size); }
