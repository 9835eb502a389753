// Tensor <-> bytes: the little-endian encoding shared by checkpoint files and the network wire format, and a
// bounds-checked reader that names the field, the byte offset and the source of every failure.
//
// A tensor is encoded as
//   u8   dtype    0 float32, 1 float64, 2 int32
//   u8   rank     0..kMaxTensorRank
//   i64  dims[rank]
//   raw element data, row-major (C order), each element little-endian
// Integers elsewhere are little-endian; a "string" is a u32 byte count then the bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace sl {

using Bytes = std::vector<uint8_t>;

constexpr int kMaxTensorRank = 8;

// ---- writing ---------------------------------------------------------------------------------------------
// Appends the low `nbytes` bytes of v, little-endian.
void put_uint(Bytes& b, uint64_t v, int nbytes);
// Appends a u32 length then the bytes; ValueError when longer than max_bytes.
void put_string(Bytes& b, const std::string& s, uint32_t max_bytes = 1u << 20);
// Appends a tensor (copied to the CPU and made contiguous if needed); ValueError above kMaxTensorRank.
void put_tensor(Bytes& b, const Tensor& t);
// The number of bytes put_tensor appends for t.
size_t encoded_tensor_size(const Tensor& t);

// Copies `count` elements of `elem` bytes from host order to little-endian (or back: the same swap).
void copy_le(uint8_t* dst, const uint8_t* src, size_t count, size_t elem);

uint8_t dtype_code(DType t);

// Text is well-formed UTF-8 without control characters (C0, DEL, C1): safe to print in a one-line message, on a
// terminal, in JSON. The offset of the first byte of `s` that breaks this, or std::string::npos.
size_t first_non_text(const std::string& s);
// `s` made text: every byte that breaks it becomes '?'; cut to at most `max_bytes` without splitting a character.
std::string to_text(const std::string& s, size_t max_bytes = std::string::npos);

// ---- reading ---------------------------------------------------------------------------------------------
// What a decoded tensor may be; checked before anything is allocated.
struct TensorLimits {
  int max_rank = kMaxTensorRank;
  uint64_t max_bytes = UINT64_MAX;  // data bytes, in addition to "no more than the input holds"
};

// Reads fields from [data, data + size). Every read says what it reads; a failure throws IoError
// "<source>: <what went wrong> at byte offset N", where N counts from `base_offset`.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, std::string source, size_t base_offset = 0)
      : p_(data), size_(size), base_(base_offset), source_(std::move(source)) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  size_t offset() const { return base_ + pos_; }  // position in the whole input, for messages

  [[noreturn]] void fail(const std::string& msg, size_t at) const;
  [[noreturn]] void fail(const std::string& msg) const { fail(msg, pos_); }
  void need(size_t n, const char* what) const;

  uint64_t uint(int nbytes, const char* what);
  uint8_t u8(const char* what) { return uint8_t(uint(1, what)); }
  uint16_t u16(const char* what) { return uint16_t(uint(2, what)); }
  uint32_t u32(const char* what) { return uint32_t(uint(4, what)); }
  uint64_t u64(const char* what) { return uint(8, what); }
  std::string string(const char* what, uint32_t max_bytes = 1u << 20);
  // A string that must be text (first_non_text); the failure names the offending byte's offset.
  std::string text(const char* what, uint32_t max_bytes = 1u << 20);
  const uint8_t* bytes(size_t n, const char* what);
  void skip(size_t n, const char* what) { bytes(n, what); }
  // A tensor as put_tensor writes it; `name` appears in messages.
  Tensor tensor(const std::string& name, const TensorLimits& limits = {});
  // Fails unless every byte has been read.
  void expect_end(const char* what) const;

 private:
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  size_t base_;
  std::string source_;
};

}  // namespace sl
