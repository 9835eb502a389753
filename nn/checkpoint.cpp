#include "nn/checkpoint.h"

#include <cmath>
#include <cstring>
#include <set>

#include "tensor/io.h"
#include "tensor/serialize.h"

namespace sl {

namespace {

constexpr char kMagic[4] = {'S', 'P', 'L', 'K'};
constexpr size_t kHeaderBytes = 16;  // magic, version, file size
constexpr uint32_t kMaxStringBytes = 1u << 20;

// Names and metadata are text (tensor/serialize.h: no control characters, well-formed UTF-8), so that they can
// be printed in one-line messages, on a terminal and in JSON.
void put_text(Bytes& b, const std::string& s) {
  size_t bad = first_non_text(s);
  SL_CHECK(bad == std::string::npos, ValueError, "checkpoint string is not text (a control character",
           " or malformed UTF-8 at its byte ", bad, ")");
  put_string(b, s, kMaxStringBytes);
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
  put_text(b, ckpt.arch);
  put_uint(b, ckpt.meta.size(), 4);
  for (auto& [k, v] : ckpt.meta) {
    put_text(b, k);
    put_text(b, v);
  }
  put_uint(b, ckpt.tensors.size(), 4);
  for (auto& [name, t] : ckpt.tensors) {
    SL_CHECK(t.dim() <= size_t(kMaxTensorRank), ValueError, "tensor '", name, "' has rank ", t.dim(), " > ",
             kMaxTensorRank);
    put_text(b, name);
    put_tensor(b, t);  // dtype, rank, dims, little-endian data (tensor/serialize.h)
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
  const std::string source = str("checkpoint '", path, "'");
  ByteReader r(b.data(), b.size(), source);
  // Header first, so that a truncated file or one of another kind is named as such.
  const uint8_t* magic = r.bytes(4, "magic");
  if (std::memcmp(magic, kMagic, 4) != 0) r.fail("not a splitleak checkpoint (wrong magic, expected \"SPLK\")", 0);
  uint64_t version = r.u32("format version");
  if (version != kCheckpointVersion)
    r.fail(str("unsupported format version ", version, " (this build reads version ", kCheckpointVersion, ")"), 4);
  uint64_t declared = r.u64("file size");
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
  ByteReader c(b.data(), body, source);
  c.skip(kHeaderBytes, "header");
  Checkpoint ck;
  ck.arch = c.text("architecture name", kMaxStringBytes);
  uint64_t nmeta = c.u32("metadata count");
  for (uint64_t i = 0; i < nmeta; ++i) {
    std::string k = c.text("metadata key", kMaxStringBytes);
    ck.meta[k] = c.text("metadata value", kMaxStringBytes);
  }
  uint64_t ntensors = c.u32("tensor count");
  std::set<std::string> seen;
  for (uint64_t i = 0; i < ntensors; ++i) {
    size_t at = c.pos();
    std::string name = c.text("tensor name", kMaxStringBytes);
    if (!seen.insert(name).second) c.fail(str("tensor '", name, "' appears twice"), at);
    ck.tensors.emplace_back(name, c.tensor(name));  // its data must fit in the rest of the file
  }
  if (c.left() != 0) c.fail(str(c.left(), " unexpected bytes after the last tensor"), c.pos());
  if (!allow_nonfinite) {
    std::vector<std::string> bad = nonfinite_tensors(ck);
    if (!bad.empty())
      throw IoError(str("checkpoint '", path, "': tensor ", bad[0],
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
