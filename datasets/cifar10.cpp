#include "datasets/cifar10.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tensor/io.h"

namespace sl::data {

namespace fs = std::filesystem;

namespace {

std::string batch_name(int b) { return b == 0 ? "test_batch" : str("data_batch_", b); }

std::string json_type(const nlohmann::json& j) {
  if (j.is_number_float()) return str("the number ", j.dump());
  if (j.is_string()) return str("the string ", j.dump());
  return j.type_name();
}

std::string list_batches(const std::vector<int>& b) {
  std::string s;
  for (size_t i = 0; i < b.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(b[i]);
  }
  return s;
}

}  // namespace

std::vector<int32_t> read_cifar_labels_json(const std::string& path, int64_t count) {
  const std::vector<uint8_t> bytes = io::read_file(path, "CIFAR-10 label file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw IoError(str(path, ": malformed JSON at byte ", e.byte, " (", e.what(), ")"));
  }
  if (!j.is_array())
    throw IoError(str(path, ": expected a JSON list of ", count, " integer labels 0..9, got ", json_type(j)));
  if (int64_t(j.size()) != count) throw IoError(str(path, ": holds ", j.size(), " labels, expected ", count));
  std::vector<int32_t> out(static_cast<size_t>(count));
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& v = j[i];
    if (!v.is_number_integer())
      throw IoError(str(path, ": element ", i, " is ", json_type(v), ", expected an integer label 0..9"));
    const int64_t x = v.get<int64_t>();
    if (x < 0 || x > 9) throw IoError(str(path, ": label ", x, " at index ", i, " is out of range, expected 0..9"));
    out[i] = int32_t(x);
  }
  return out;
}

Image8 read_cifar_sprite(const std::string& path, int64_t images) {
  const std::vector<uint8_t> bytes = io::read_file(path, "CIFAR-10 PNG sprite");
  const Image8 info = png_info(bytes, path);  // check the size before decoding 30 MB of pixels
  if (info.width != 1024 || info.height != images || info.channels != 3 || info.bit_depth != 8)
    throw IoError(str(path, ": PNG is ", info.width, "x", info.height, " with ", info.channels, " channel",
                      info.channels == 1 ? "" : "s", " of ", info.bit_depth, " bits, expected 1024x", images,
                      " 8-bit RGB (one 32x32 image per row)"));
  return decode_png(bytes, path);
}

std::vector<uint8_t> cifar_sprite_to_records(const Image8& sprite, const int32_t* labels) {
  SL_CHECK(sprite.width == 1024 && sprite.channels == 3, ValueError, "cifar_sprite_to_records: sprite is ",
           sprite.width, "x", sprite.height, "x", sprite.channels, ", expected 1024 wide RGB");
  const int64_t n = sprite.height;
  std::vector<uint8_t> rec(size_t(n * kCifarRecordBytes));
  for (int64_t k = 0; k < n; ++k) {
    uint8_t* r = &rec[size_t(k * kCifarRecordBytes)];
    const uint8_t* px = &sprite.pixels[size_t(k) * 1024 * 3];
    r[0] = uint8_t(labels[k]);
    for (int c = 0; c < 3; ++c)
      for (int j = 0; j < 1024; ++j) r[1 + c * 1024 + j] = px[j * 3 + c];
  }
  return rec;
}

int64_t check_cifar_records(const std::vector<uint8_t>& records, int64_t images, const std::string& path) {
  const uint64_t want = uint64_t(images) * kCifarRecordBytes;
  if (records.size() < want)
    throw IoError(str(path, ": truncated at byte ", records.size(), ", expected ", want, " bytes for ", images,
                      " records of ", kCifarRecordBytes, " bytes"));
  if (records.size() > want)
    throw IoError(str(path, ": ", records.size() - want, " unexpected trailing bytes at byte ", want,
                      ", expected exactly ", want, " bytes for ", images, " records of ", kCifarRecordBytes, " bytes"));
  for (int64_t k = 0; k < images; ++k) {
    const uint8_t label = records[size_t(k * kCifarRecordBytes)];
    if (label > 9)
      throw IoError(str(path, ": label ", int(label), " at byte ", k * kCifarRecordBytes, " (record ", k,
                        ") is out of range, expected 0..9"));
  }
  return images;
}

Dataset load_cifar10(const std::string& data_dir, bool train, const CifarOptions& opt) {
  SL_CHECK(opt.images_per_batch > 0, ValueError, "load_cifar10: images_per_batch must be positive");
  const fs::path dir = fs::path(data_dir) / "cifar10";
  const fs::path bindir = dir / "cifar-10-batches-bin";
  const int64_t per = opt.images_per_batch;
  const std::string hint = fetch_hint("cifar10", data_dir);

  // Which batches, and from which file each.
  const bool explicit_list = train && !opt.train_batches.empty();
  std::vector<int> wanted;
  if (!train) {
    wanted = {0};
  } else if (explicit_list) {
    for (int b : opt.train_batches) {
      SL_CHECK(b >= 1 && b <= kCifarTrainBatches, ValueError, "CIFAR-10 training batch ", b,
               " does not exist (batches are 1..5)");
      SL_CHECK(std::count(opt.train_batches.begin(), opt.train_batches.end(), b) == 1, ValueError,
               "CIFAR-10 training batch ", b, " asked for twice");
      wanted.push_back(b);
    }
  } else {
    for (int b = 1; b <= kCifarTrainBatches; ++b) wanted.push_back(b);
  }
  struct Pick {
    int batch;
    bool png;
    std::string path;
  };
  std::vector<Pick> picks;
  for (int b : wanted) {
    const std::string png = (dir / (batch_name(b) + ".png")).string();
    const std::string bin = (bindir / (batch_name(b) + ".bin")).string();
    std::error_code ec;
    const bool has_png = fs::exists(png, ec), has_bin = fs::exists(bin, ec);
    if (opt.format != CifarFormat::png && has_bin) {
      picks.push_back({b, false, bin});
    } else if (opt.format != CifarFormat::bin && has_png) {
      picks.push_back({b, true, png});
    } else if (explicit_list || !train) {
      const std::string looked = opt.format == CifarFormat::png   ? png
                                 : opt.format == CifarFormat::bin ? bin
                                                                  : png + " or " + bin;
      throw IoError(str(looked, ": not found; CIFAR-10 ", train ? str("training batch ", b) : "test batch",
                        " is missing (", hint, ")"));
    }
  }
  if (picks.empty())
    throw IoError(str(dir.string(), ": no CIFAR-10 training batches found (looked for data_batch_1..5.png and ",
                      "cifar-10-batches-bin/data_batch_1..5.bin) (", hint, ")"));

  std::vector<int32_t> json_labels;  // read once, only when a PNG batch is used
  const std::string json_path = (dir / (train ? "train_lables.json" : "test_lables.json")).string();
  const int64_t json_count = train ? kCifarTrainBatches * per : per;

  const int64_t available = int64_t(picks.size()) * per;
  const int64_t n = opt.limit < 0 ? available : std::min(opt.limit, available);
  Dataset d;
  d.name = "cifar10";
  d.split = train ? "train" : "test";
  d.classes = 10;
  d.norm = cifar10_normalization();
  d.images = Tensor::empty(Shape{n, 3, 32, 32}, DType::f32);
  d.labels.resize(size_t(n));
  float table[3][256];
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 256; ++p) table[c][p] = (float(p) / 255.0f - d.norm.mean[c]) / d.norm.std[c];

  float* dst = d.images.data<float>();
  int64_t filled = 0;
  std::vector<int> used;
  std::string formats;
  for (const Pick& pk : picks) {
    if (filled >= n) break;
    std::vector<uint8_t> records;
    if (pk.png) {
      if (json_labels.empty()) {
        std::error_code ec;
        if (!fs::exists(json_path, ec))
          throw IoError(str(json_path, ": not found; the labels of the CIFAR-10 PNG sprites are missing (", hint, ")"));
        json_labels = read_cifar_labels_json(json_path, json_count);
      }
      const Image8 sprite = read_cifar_sprite(pk.path, per);
      const int32_t* lab = json_labels.data() + (train ? (pk.batch - 1) * per : 0);
      records = cifar_sprite_to_records(sprite, lab);
    } else {
      records = io::read_file(pk.path, "CIFAR-10 batch");
    }
    check_cifar_records(records, per, pk.path);
    const int64_t take = std::min(per, n - filled);
    for (int64_t k = 0; k < take; ++k) {
      const uint8_t* r = &records[size_t(k * kCifarRecordBytes)];
      d.labels[size_t(filled + k)] = r[0];
      float* o = dst + (filled + k) * kCifarImageBytes;
      for (int c = 0; c < 3; ++c)
        for (int j = 0; j < 1024; ++j) o[c * 1024 + j] = table[c][r[1 + c * 1024 + j]];
    }
    filled += take;
    used.push_back(pk.batch);
    formats += str(formats.empty() ? "" : ", ", train ? str("batch ", pk.batch, " ") : "", pk.png ? "PNG" : "bin");
  }

  if (train) {
    d.source = str(dir.string(), ": training batches ", list_batches(used), " of 1..5 (", formats, "), ", n, " images");
    if (!explicit_list && picks.size() < size_t(kCifarTrainBatches) && opt.announce_subset) {
      std::vector<int> present;
      for (const auto& pk : picks) present.push_back(pk.batch);
      std::fprintf(stderr, "cifar10: only training batches %s of 1..5 are in %s; using %lld images\n",
                   list_batches(present).c_str(), dir.string().c_str(), static_cast<long long>(n));
    }
  } else {
    d.source = str(dir.string(), ": test batch (", formats, "), ", n, " images");
  }
  return d;
}

}  // namespace sl::data
