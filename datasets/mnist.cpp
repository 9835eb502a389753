#include "datasets/mnist.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "tensor/io.h"

namespace sl::data {

namespace fs = std::filesystem;

namespace {

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

std::string hex32(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08X", v);
  return b;
}

// "10000 images of 28x28" / "10000 labels"
std::string describe(const std::vector<int64_t>& dims, const std::string& what) {
  std::string s = str(dims.empty() ? 0 : dims[0], " ", what);
  for (size_t i = 1; i < dims.size(); ++i) s += str(i == 1 ? " of " : "x", dims[i]);
  return s;
}

}  // namespace

IdxArray read_idx(const std::string& path, uint32_t magic, int64_t limit, const std::string& what) {
  uint64_t file_size = 0;
  io::File f = io::open_input(path, str("MNIST ", what, " file"), &file_size);

  const int want_dims = int(magic & 0xFF);
  const uint64_t header = 4 + 4 * uint64_t(want_dims);
  uint8_t head[4 + 4 * 255];
  if (file_size < 4)
    throw IoError(str(path, ": truncated at byte ", file_size, ", expected at least ", header, " bytes of IDX header"));
  if (std::fread(head, 1, 4, f.get()) != 4) throw IoError(str(path, ": read error at byte 0"));
  const uint32_t got_magic = be32(head);
  if (got_magic != magic)
    throw IoError(str(path, ": wrong magic number ", hex32(got_magic), " at byte 0, expected ", hex32(magic),
                      " (IDX unsigned bytes, ", want_dims, " dimension", want_dims == 1 ? "" : "s", ")"));
  if (file_size < header)
    throw IoError(str(path, ": truncated at byte ", file_size, ", expected at least ", header, " bytes of IDX header"));
  if (std::fread(head + 4, 1, header - 4, f.get()) != header - 4) throw IoError(str(path, ": read error at byte 4"));

  IdxArray a;
  uint64_t payload = 1;
  for (int d = 0; d < want_dims; ++d) {
    const uint32_t n = be32(head + 4 + 4 * d);
    if (d > 0 && n == 0)
      throw IoError(str(path, ": dimension ", d, " is 0 at byte ", 4 + 4 * d, ", expected a positive extent"));
    a.dims.push_back(int64_t(n));
    payload *= n;  // a hostile header could overflow 64 bits over three u32 extents; stop well before that
    if (payload > (uint64_t(1) << 40))
      throw IoError(str(path, ": extents ", describe(a.dims, what), " at byte ", 4 + 4 * d,
                        " are implausibly large for this file of ", file_size, " bytes"));
  }
  const uint64_t expected = header + payload;
  if (file_size < expected)
    throw IoError(
        str(path, ": truncated at byte ", file_size, ", expected ", expected, " bytes for ", describe(a.dims, what)));
  if (file_size > expected)
    throw IoError(str(path, ": ", file_size - expected, " unexpected trailing bytes at byte ", expected,
                      ", expected exactly ", expected, " bytes for ", describe(a.dims, what)));

  const int64_t count = a.dims.empty() ? 0 : a.dims[0];
  a.rows_read = limit < 0 ? count : std::min<int64_t>(limit, count);
  const uint64_t row = count ? payload / uint64_t(count) : 0;
  a.bytes.resize(size_t(a.rows_read) * row);
  if (!a.bytes.empty() && std::fread(a.bytes.data(), 1, a.bytes.size(), f.get()) != a.bytes.size())
    throw IoError(str(path, ": read error in the data after byte ", header));
  return a;
}

Dataset load_mnist_files(const std::string& images_path, const std::string& labels_path, int64_t limit) {
  IdxArray img = read_idx(images_path, kIdxImagesMagic, limit, "images");
  IdxArray lab = read_idx(labels_path, kIdxLabelsMagic, limit, "labels");
  if (img.dims[0] != lab.dims[0])
    throw IoError(str(labels_path, ": holds ", lab.dims[0], " labels (count at byte 4), but ", images_path, " holds ",
                      img.dims[0], " images"));
  const int64_t n = img.rows_read, H = img.dims[1], W = img.dims[2];
  for (int64_t i = 0; i < n; ++i)
    if (lab.bytes[i] > 9)
      throw IoError(str(labels_path, ": label ", int(lab.bytes[i]), " at byte ", 8 + i, " (sample ", i,
                        ") is out of range, expected 0..9"));

  Dataset d;
  d.name = "mnist";
  d.classes = 10;
  d.norm = mnist_normalization();
  d.images = Tensor::empty(Shape{n, 1, H, W}, DType::f32);
  // (p/255 - 0.5)/0.5 = p*(2/255) - 1, through a 256-entry table so every value is bit-identical.
  float table[256];
  for (int p = 0; p < 256; ++p) table[p] = (float(p) / 255.0f - d.norm.mean[0]) / d.norm.std[0];
  float* dst = d.images.data<float>();
  const size_t total = img.bytes.size();
  for (size_t i = 0; i < total; ++i) dst[i] = table[img.bytes[i]];
  d.labels.assign(lab.bytes.begin(), lab.bytes.begin() + n);
  d.source = str(images_path, " (", n, " of ", img.dims[0], " images)");
  return d;
}

Dataset load_mnist(const std::string& data_dir, bool train, int64_t limit) {
  const std::string dir = (fs::path(data_dir) / "mnist").string();
  const std::string prefix = train ? "train" : "t10k";
  const std::string images = (fs::path(dir) / (prefix + "-images-idx3-ubyte")).string();
  const std::string labels = (fs::path(dir) / (prefix + "-labels-idx1-ubyte")).string();
  std::error_code ec;
  for (const auto& p : {images, labels})
    if (!fs::exists(p, ec))
      throw IoError(str(p, ": not found; the MNIST data set is missing from ", data_dir, " (",
                        fetch_hint("mnist", data_dir), ")"));
  Dataset d = load_mnist_files(images, labels, limit);
  d.split = train ? "train" : "test";
  return d;
}

}  // namespace sl::data
