#include "tensor/serialize.h"

#include <bit>
#include <cstring>

namespace sl {

void put_uint(Bytes& b, uint64_t v, int nbytes) {
  for (int i = 0; i < nbytes; ++i) b.push_back(uint8_t(v >> (8 * i)));
}

void put_string(Bytes& b, const std::string& s, uint32_t max_bytes) {
  SL_CHECK(s.size() <= max_bytes, ValueError, "string too long to encode (", s.size(), " bytes, at most ", max_bytes,
           ")");
  put_uint(b, s.size(), 4);
  b.insert(b.end(), s.begin(), s.end());
}

void copy_le(uint8_t* dst, const uint8_t* src, size_t count, size_t elem) {
  if constexpr (std::endian::native == std::endian::little) {
    if (count) std::memcpy(dst, src, count * elem);
  } else {
    for (size_t i = 0; i < count; ++i)
      for (size_t j = 0; j < elem; ++j) dst[i * elem + j] = src[i * elem + elem - 1 - j];
  }
}

uint8_t dtype_code(DType t) { return t == DType::f32 ? 0 : t == DType::f64 ? 1 : 2; }

size_t first_non_text(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7F) return i;
      ++i;
      continue;
    }
    // Lead byte: the count of continuation bytes and the range of the first one (no overlong forms, no
    // surrogates, nothing above U+10FFFF, no C1 controls U+0080..U+009F).
    int more = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c == 0xC2)
      more = 1, lo = 0xA0;
    else if (c > 0xC2 && c <= 0xDF)
      more = 1;
    else if (c == 0xE0)
      more = 2, lo = 0xA0;
    else if (c == 0xED)
      more = 2, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF)
      more = 2;
    else if (c == 0xF0)
      more = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
      more = 3;
    else if (c == 0xF4)
      more = 3, hi = 0x8F;
    else
      return i;
    if (i + size_t(more) >= s.size()) return i;  // cut short
    for (int k = 1; k <= more; ++k) {
      const auto t = static_cast<unsigned char>(s[i + size_t(k)]);
      if (t < (k == 1 ? lo : 0x80) || t > (k == 1 ? hi : 0xBF)) return i;
    }
    i += size_t(more) + 1;
  }
  return std::string::npos;
}

std::string to_text(const std::string& s, size_t max_bytes) {
  std::string out = s;
  for (size_t at = first_non_text(out); at != std::string::npos; at = first_non_text(out)) out[at] = '?';
  if (out.size() > max_bytes) {
    size_t n = max_bytes;
    while (n > 0 && (static_cast<unsigned char>(out[n]) & 0xC0) == 0x80) --n;  // not inside a character
    out.resize(n);
  }
  return out;
}

size_t encoded_tensor_size(const Tensor& t) { return 2 + 8 * t.dim() + t.nbytes(); }

void put_tensor(Bytes& b, const Tensor& tensor) {
  SL_CHECK(tensor.dim() <= size_t(kMaxTensorRank), ValueError, "cannot encode a tensor of rank ", tensor.dim(),
           " (at most ", kMaxTensorRank, ")");
  Tensor t = tensor.device().is_cpu() ? tensor : tensor.to(Device::cpu());
  if (!t.is_contiguous()) t = t.contiguous();
  b.reserve(b.size() + encoded_tensor_size(t));
  put_uint(b, dtype_code(t.dtype()), 1);
  put_uint(b, t.dim(), 1);
  for (auto d : t.shape().dims()) put_uint(b, uint64_t(d), 8);
  size_t at = b.size();
  b.resize(at + t.nbytes());
  copy_le(b.data() + at, static_cast<const uint8_t*>(t.raw_data()), size_t(t.numel()), dtype_size(t.dtype()));
}

// ---- ByteReader ------------------------------------------------------------------------------------------
void ByteReader::fail(const std::string& msg, size_t at) const {
  throw IoError(str(source_, ": ", msg, " at byte offset ", base_ + at));
}

void ByteReader::need(size_t n, const char* what) const {
  if (n > left()) fail(str("truncated: ", what, " needs ", n, " bytes but only ", left(), " remain"));
}

uint64_t ByteReader::uint(int nbytes, const char* what) {
  need(size_t(nbytes), what);
  uint64_t v = 0;
  for (int i = 0; i < nbytes; ++i) v |= uint64_t(p_[pos_ + size_t(i)]) << (8 * i);
  pos_ += size_t(nbytes);
  return v;
}

std::string ByteReader::string(const char* what, uint32_t max_bytes) {
  size_t at = pos_;
  uint64_t n = uint(4, what);
  if (n > max_bytes) fail(str(what, " claims a length of ", n, " bytes (at most ", max_bytes, ")"), at);
  need(size_t(n), what);
  std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
  pos_ += size_t(n);
  return s;
}

std::string ByteReader::text(const char* what, uint32_t max_bytes) {
  size_t start = pos_ + 4;
  std::string s = string(what, max_bytes);
  if (size_t bad = first_non_text(s); bad != std::string::npos)
    fail(str(what, " is not text (a control character or malformed UTF-8)"), start + bad);
  return s;
}

const uint8_t* ByteReader::bytes(size_t n, const char* what) {
  need(n, what);
  const uint8_t* p = p_ + pos_;
  pos_ += n;
  return p;
}

Tensor ByteReader::tensor(const std::string& name, const TensorLimits& limits) {
  size_t at = pos_;
  uint64_t code = uint(1, "tensor dtype");
  if (code > 2) fail(str("tensor '", name, "' has an unknown dtype code ", code), at);
  DType dtype = code == 0 ? DType::f32 : code == 1 ? DType::f64 : DType::i32;
  at = pos_;
  uint64_t rank = uint(1, "tensor rank");
  if (rank > uint64_t(limits.max_rank))
    fail(str("tensor '", name, "' has rank ", rank, " (at most ", limits.max_rank, ")"), at);
  // The data must fit in what is left of the input (and under the limit): this bounds the allocation below
  // by the size of the input actually received, whatever the dimensions claim.
  uint64_t cap = std::min<uint64_t>(left(), limits.max_bytes);
  std::vector<int64_t> dims;
  uint64_t nbytes = dtype_size(dtype);
  for (uint64_t i = 0; i < rank; ++i) {
    at = pos_;
    uint64_t d = uint(8, "tensor dimension");
    if (d > cap || (d > 0 && nbytes > cap / d))
      fail(str("tensor '", name, "' has an absurd dimension ", int64_t(d), " (more data than the ",
               cap == limits.max_bytes ? "limit allows" : "input holds", ")"),
           at);
    nbytes *= d;
    dims.push_back(int64_t(d));
  }
  if (nbytes > limits.max_bytes)
    fail(str("tensor '", name, "' holds ", nbytes, " bytes (at most ", limits.max_bytes, ")"), at);
  Tensor t = Tensor::empty(Shape(dims), dtype);
  copy_le(static_cast<uint8_t*>(t.raw_data()), this->bytes(size_t(nbytes), "tensor data"), size_t(t.numel()),
          dtype_size(dtype));
  return t;
}

void ByteReader::expect_end(const char* what) const {
  if (left() != 0) fail(str(left(), " unexpected bytes after ", what));
}

}  // namespace sl
