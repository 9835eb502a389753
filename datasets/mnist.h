// MNIST from the raw IDX files: DIR/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.
//
// IDX layout (all integers big-endian): u32 magic = 0x00000800 | ndims (type byte 0x08 = unsigned byte),
// then ndims u32 extents, then prod(extents) bytes. Images: magic 0x00000803, [N, rows, cols]; labels: 0x00000801, [N].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace sl::data {

constexpr uint32_t kIdxImagesMagic = 0x00000803;
constexpr uint32_t kIdxLabelsMagic = 0x00000801;

// One IDX array of unsigned bytes: its extents (as in the header) and its first `rows_read` rows of dim 0.
struct IdxArray {
  std::vector<int64_t> dims;  // extents from the header; dims[0] is the full count in the file
  int64_t rows_read = 0;      // rows of dim 0 held in bytes (min(limit, dims[0]))
  std::vector<uint8_t> bytes;
};

// Reads an IDX file whose magic must be `magic`; checks the extents against the file size (exact match) and
// reads only the first `limit` rows of dim 0 (limit < 0: all). `what` names the items in messages ("images").
// Throws IoError with the path, the byte offset and expected vs got.
IdxArray read_idx(const std::string& path, uint32_t magic, int64_t limit = -1, const std::string& what = "items");

// Loads an image IDX file and its label IDX file (counts must agree, labels 0..9), normalised for MNIST.
Dataset load_mnist_files(const std::string& images_path, const std::string& labels_path, int64_t limit = -1);

// Loads DIR/mnist/train-* (train) or DIR/mnist/t10k-* (test); limit < 0 loads all.
// Missing files give an IoError that names the fetch command.
Dataset load_mnist(const std::string& data_dir, bool train, int64_t limit = -1);

}  // namespace sl::data
