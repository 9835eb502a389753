// Checkpoints: a model's named tensors plus its architecture name and free-form metadata, in a small
// versioned binary file that is written atomically and validated completely on load.
//
// Format (version 1). Integers are little-endian; a "string" is a u32 byte count then the bytes.
//   offset 0   "SPLK"                magic
//          4   u32  format version   (1)
//          8   u64  file size        (total bytes, checksum included: detects truncation up front)
//         16   string architecture   ("lenet")
//              u32  metadata count, then per entry: string key, string value
//              u32  tensor count, then per tensor:
//                     string name, u8 dtype (0 float32, 1 float64, 2 int32), u8 rank, i64 dims[rank],
//                     raw element data, row-major, little-endian
//   size-4     u32  CRC-32 (IEEE, as zlib) of every byte before it
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "nn/models.h"
#include "nn/module.h"

namespace sl {

struct Checkpoint {
  std::string arch;
  std::map<std::string, std::string> meta;              // dataset, epochs, accuracy, seed, ...
  std::vector<std::pair<std::string, Tensor>> tensors;  // CPU tensors, in the order they were saved

  // The value of a metadata key, or `fallback` when absent.
  std::string get(const std::string& key, const std::string& fallback = "") const;
};

constexpr uint32_t kCheckpointVersion = 1;

// Snapshot of a module's parameters (copied to the CPU).
Checkpoint make_checkpoint(const Module& model, const std::string& arch,
                           const std::map<std::string, std::string>& meta = {});

// Writes atomically through io::write_file_atomic (tensor/io.h): a temporary file in the same folder, fsync, then
// rename over `path`, which must be absent or a regular file. On any error `path` is untouched, no temporary file
// is left, and IoError says what failed.
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);
void save_checkpoint(const std::string& path, const Module& model, const std::string& arch,
                     const std::map<std::string, std::string>& meta = {});
inline void save_checkpoint(const std::string& path, const Model& model,
                            const std::map<std::string, std::string>& meta = {}) {
  save_checkpoint(path, *model.net, model.arch, meta);
}

// Reads and validates a checkpoint; IoError (with the path and the byte offset) for a missing, truncated or
// corrupt file (wrong magic, unsupported version, size or checksum mismatch, absurd header values) or one that is
// not a regular file (tensor/io.h); IoError too, naming the tensor, when a weight is NaN or inf, unless
// allow_nonfinite (the caller should then warn: every output of such a model is suspect).
Checkpoint load_checkpoint(const std::string& path, bool allow_nonfinite = false);

// The floating-point tensors holding NaN or inf, each as "'name' (k of n values)"; empty when all are finite.
std::vector<std::string> nonfinite_tensors(const Checkpoint& ckpt);

// Copies the checkpoint's tensors into the model's parameters (keeping their device, dtype and identity).
// ValueError when the architectures differ or when tensors are missing, extra or of another shape
// (all of them named). Nothing is copied unless everything matches.
void load_into(Module& model, const std::string& model_arch, const Checkpoint& ckpt);
inline void load_into(Model& model, const Checkpoint& ckpt) { load_into(*model.net, model.arch, ckpt); }

}  // namespace sl
