#include "nn/checkpoint.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <set>

#include "tensor/io.h"

namespace sl {

namespace {

constexpr char kMagic[4] = {'S', 'P', 'L', 'K'};
constexpr size_t kHeaderBytes = 16;  // magic, version, file size
constexpr uint32_t kMaxStringBytes = 1u << 20;
constexpr int kMaxRank = 8;

// ---- little-endian encoding ----------------------------------------------------------------------------
using Bytes = std::vector<uint8_t>;

void put_uint(Bytes& b, uint64_t v, int nbytes) {
  for (int i = 0; i < nbytes; ++i) b.push_back(uint8_t(v >> (8 * i)));
}
void put_string(Bytes& b, const std::string& s) {
  SL_CHECK(s.size() <= kMaxStringBytes, ValueError, "checkpoint string too long (", s.size(), " bytes)");
  put_uint(b, s.size(), 4);
  b.insert(b.end(), s.begin(), s.end());
}
// Copies `count` elements of `elem` bytes each from host order to little-endian (or back: the same swap).
void copy_le(uint8_t* dst, const uint8_t* src, size_t count, size_t elem) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(dst, src, count * elem);
  } else {
    for (size_t i = 0; i < count; ++i)
      for (size_t j = 0; j < elem; ++j) dst[i * elem + j] = src[i * elem + elem - 1 - j];
  }
}

uint8_t dtype_code(DType t) { return t == DType::f32 ? 0 : t == DType::f64 ? 1 : 2; }

// ---- bounds-checked reading ------------------------------------------------------------------------------
// Every read says what it reads, so a failure names the field, the byte offset and the file.
class Reader {
 public:
  Reader(const Bytes& b, size_t end, const std::string& path) : b_(b), end_(end), path_(path) {}
  size_t pos() const { return pos_; }
  size_t left() const { return end_ - pos_; }

  [[noreturn]] void fail(const std::string& msg, size_t at) const {
    throw IoError(str("checkpoint '", path_, "': ", msg, " at byte offset ", at));
  }
  void need(size_t n, const char* what) const {
    if (n > left()) fail(str("truncated: ", what, " needs ", n, " bytes but only ", left(), " remain"), pos_);
  }
  uint64_t uint(int nbytes, const char* what) {
    need(size_t(nbytes), what);
    uint64_t v = 0;
    for (int i = 0; i < nbytes; ++i) v |= uint64_t(b_[pos_ + size_t(i)]) << (8 * i);
    pos_ += size_t(nbytes);
    return v;
  }
  std::string string(const char* what) {
    size_t at = pos_;
    uint64_t n = uint(4, what);
    if (n > kMaxStringBytes) fail(str(what, " claims an absurd length of ", n, " bytes"), at);
    need(size_t(n), what);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }
  const uint8_t* bytes(size_t n, const char* what) {
    need(n, what);
    const uint8_t* p = b_.data() + pos_;
    pos_ += n;
    return p;
  }

 private:
  const Bytes& b_;
  size_t end_;
  size_t pos_ = 0;
  const std::string& path_;
};

Tensor read_tensor(Reader& r, const std::string& name) {
  size_t at = r.pos();
  uint64_t code = r.uint(1, "tensor dtype");
  if (code > 2) r.fail(str("tensor '", name, "' has an unknown dtype code ", code), at);
  DType dtype = code == 0 ? DType::f32 : code == 1 ? DType::f64 : DType::i32;
  at = r.pos();
  uint64_t rank = r.uint(1, "tensor rank");
  if (rank > uint64_t(kMaxRank)) r.fail(str("tensor '", name, "' has an absurd rank ", rank), at);
  // The data must fit in the rest of the file: this bounds every allocation by the file's real size.
  std::vector<int64_t> dims;
  uint64_t bytes = dtype_size(dtype);
  for (uint64_t i = 0; i < rank; ++i) {
    at = r.pos();
    uint64_t d = r.uint(8, "tensor dimension");
    if (d > r.left() || (d > 0 && bytes > r.left() / d))
      r.fail(str("tensor '", name, "' has an absurd dimension ", int64_t(d), " (more data than the file holds)"), at);
    bytes *= d;
    dims.push_back(int64_t(d));
  }
  Tensor t = Tensor::empty(Shape(dims), dtype);
  copy_le(static_cast<uint8_t*>(t.raw_data()), r.bytes(size_t(bytes), "tensor data"), size_t(t.numel()),
          dtype_size(dtype));
  return t;
}

}  // namespace

std::string Checkpoint::get(const std::string& key, const std::string& fallback) const {
  auto it = meta.find(key);
  return it == meta.end() ? fallback : it->second;
}

Checkpoint make_checkpoint(const Module& model, const std::string& arch,
                           const std::map<std::string, std::string>& meta) {
  Checkpoint c{arch, meta, {}};
  for (auto& [name, t] : model.named_parameters())
    c.tensors.emplace_back(name, t.device().is_cpu() ? t.clone() : t.to(Device::cpu()));
  return c;
}

// ---- save ----------------------------------------------------------------------------------------------
void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  Bytes b(kMagic, kMagic + 4);
  put_uint(b, kCheckpointVersion, 4);
  put_uint(b, 0, 8);  // file size, patched below
  put_string(b, ckpt.arch);
  put_uint(b, ckpt.meta.size(), 4);
  for (auto& [k, v] : ckpt.meta) {
    put_string(b, k);
    put_string(b, v);
  }
  put_uint(b, ckpt.tensors.size(), 4);
  for (auto& [name, tensor] : ckpt.tensors) {
    Tensor t = tensor.to(Device::cpu()).contiguous();
    SL_CHECK(t.dim() <= size_t(kMaxRank), ValueError, "tensor '", name, "' has rank ", t.dim(), " > ", kMaxRank);
    put_string(b, name);
    put_uint(b, dtype_code(t.dtype()), 1);
    put_uint(b, t.dim(), 1);
    for (auto d : t.shape().dims()) put_uint(b, uint64_t(d), 8);
    size_t at = b.size();
    b.resize(at + t.nbytes());
    copy_le(b.data() + at, static_cast<const uint8_t*>(t.raw_data()), size_t(t.numel()), dtype_size(t.dtype()));
  }
  uint64_t total = b.size() + 4;
  for (int i = 0; i < 8; ++i) b[8 + size_t(i)] = uint8_t(total >> (8 * i));
  put_uint(b, io::crc32(b.data(), b.size()), 4);

  io::write_file_atomic(path, b.data(), b.size(), "checkpoint");
}

void save_checkpoint(const std::string& path, const Module& model, const std::string& arch,
                     const std::map<std::string, std::string>& meta) {
  save_checkpoint(path, make_checkpoint(model, arch, meta));
}

// ---- load ----------------------------------------------------------------------------------------------
std::vector<std::string> nonfinite_tensors(const Checkpoint& ckpt) {
  std::vector<std::string> out;
  for (auto& [name, t] : ckpt.tensors) {
    if (t.dtype() == DType::i32) continue;
    int64_t bad = 0;
    if (t.dtype() == DType::f32) {
      const float* p = t.data<float>();
      for (int64_t i = 0; i < t.numel(); ++i) bad += !std::isfinite(p[i]);
    } else {
      const double* p = t.data<double>();
      for (int64_t i = 0; i < t.numel(); ++i) bad += !std::isfinite(p[i]);
    }
    if (bad) out.push_back(str("'", name, "' (", bad, " of ", t.numel(), " values)"));
  }
  return out;
}

Checkpoint load_checkpoint(const std::string& path, bool allow_nonfinite) {
  Bytes b = io::read_file(path, "checkpoint");
  Reader r(b, b.size(), path);
  // Header first, so that a truncated file or one of another kind is named as such.
  const uint8_t* magic = r.bytes(4, "magic");
  if (std::memcmp(magic, kMagic, 4) != 0) r.fail("not a splitleak checkpoint (wrong magic, expected \"SPLK\")", 0);
  uint64_t version = r.uint(4, "format version");
  if (version != kCheckpointVersion)
    r.fail(str("unsupported format version ", version, " (this build reads version ", kCheckpointVersion, ")"), 4);
  uint64_t declared = r.uint(8, "file size");
  if (declared != b.size())
    r.fail(str(declared > b.size() ? "truncated: " : "trailing bytes: ", "the header says ", declared,
               " bytes, the file has ", b.size()),
           8);
  if (b.size() < kHeaderBytes + 4) r.fail("file too small to hold a checksum", b.size());
  // Then the checksum over everything, so a flipped bit anywhere is caught before it is interpreted.
  size_t body = b.size() - 4;
  uint32_t stored =
      uint32_t(b[body]) | uint32_t(b[body + 1]) << 8 | uint32_t(b[body + 2]) << 16 | uint32_t(b[body + 3]) << 24;
  uint32_t actual = io::crc32(b.data(), body);
  if (stored != actual) r.fail(str("checksum mismatch (stored ", stored, ", computed ", actual, ")"), body);

  // Then the content; still fully bounds-checked, in case of a file crafted with a valid checksum.
  Reader c(b, body, path);
  c.bytes(kHeaderBytes, "header");
  Checkpoint ck;
  ck.arch = c.string("architecture name");
  uint64_t nmeta = c.uint(4, "metadata count");
  for (uint64_t i = 0; i < nmeta; ++i) {
    std::string k = c.string("metadata key");
    ck.meta[k] = c.string("metadata value");
  }
  uint64_t ntensors = c.uint(4, "tensor count");
  std::set<std::string> seen;
  for (uint64_t i = 0; i < ntensors; ++i) {
    size_t at = c.pos();
    std::string name = c.string("tensor name");
    if (!seen.insert(name).second) c.fail(str("tensor '", name, "' appears twice"), at);
    ck.tensors.emplace_back(name, read_tensor(c, name));
  }
  if (c.left() != 0) c.fail(str(c.left(), " unexpected bytes after the last tensor"), c.pos());
  if (!allow_nonfinite) {
    std::vector<std::string> bad = nonfinite_tensors(ck);
    if (!bad.empty())
      throw ValueError(str("checkpoint '", path, "': tensor ", bad[0],
                           bad.size() > 1 ? str(" and ", bad.size() - 1, " more hold") : " holds",
                           " NaN or inf, so nothing the model computes can be trusted (retrain it; ",
                           "--allow-nonfinite loads it anyway)"));
  }
  return ck;
}

void load_into(Module& model, const std::string& model_arch, const Checkpoint& ckpt) {
  SL_CHECK(ckpt.arch == model_arch, ValueError, "checkpoint is '", ckpt.arch, "' but the model is '", model_arch, "'");
  std::map<std::string, Tensor> params;
  for (auto& [name, t] : model.named_parameters()) params[name] = t;

  std::string missing, extra, mismatched;
  auto append = [](std::string& list, const std::string& item) { list += (list.empty() ? "" : ", ") + item; };
  std::set<std::string> in_ckpt;
  for (auto& [name, t] : ckpt.tensors) {
    in_ckpt.insert(name);
    auto it = params.find(name);
    if (it == params.end())
      append(extra, name);
    else if (t.shape() != it->second.shape() || t.dtype() == DType::i32)
      append(mismatched, str(name, " (checkpoint ", t.str(), ", model ", it->second.str(), ")"));
  }
  for (auto& [name, t] : params)
    if (!in_ckpt.count(name)) append(missing, name);
  if (!missing.empty() || !extra.empty() || !mismatched.empty()) {
    std::string msg = str("checkpoint '", ckpt.arch, "' does not fit the model:");
    if (!missing.empty()) msg += " missing tensors: " + missing + ";";
    if (!extra.empty()) msg += " unexpected tensors: " + extra + ";";
    if (!mismatched.empty()) msg += " mismatched tensors: " + mismatched + ";";
    msg.pop_back();
    throw ValueError(msg);
  }
  for (auto& [name, t] : ckpt.tensors) params[name].copy_(t);
}

}  // namespace sl
