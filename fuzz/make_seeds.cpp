// Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): small valid files made by the project's
// own writers, plus a few edge cases. Run from the fuzz build: make_fuzz_seeds fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "datasets/image_io.h"
#include "nn/checkpoint.h"
#include "runtime/observations.h"
#include "runtime/wire.h"

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

fs::path g_root;

void put(const std::string& target, const std::string& name, const Bytes& b) {
  fs::create_directories(g_root / target);
  const fs::path p = g_root / target / name;
  std::FILE* f = std::fopen(p.c_str(), "wb");
  if (!f || (b.size() && std::fwrite(b.data(), 1, b.size(), f) != b.size()) || std::fclose(f) != 0) {
    std::perror(p.c_str());
    std::exit(1);
  }
  std::printf("%-48s %6zu bytes\n", p.c_str(), b.size());
}

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes file_bytes(const fs::path& p) {
  std::FILE* f = std::fopen(p.c_str(), "rb");
  Bytes b;
  for (int c; f && (c = std::fgetc(f)) != EOF;) b.push_back(uint8_t(c));
  if (f) std::fclose(f);
  return b;
}

// ---- checkpoints: written by save_checkpoint itself -------------------------------------------------------
Bytes checkpoint_bytes(const sl::Checkpoint& ck) {
  const fs::path tmp = g_root / "seed.ckpt";
  sl::save_checkpoint(tmp.string(), ck);
  Bytes b = file_bytes(tmp);
  fs::remove(tmp);
  return b;
}

void checkpoints() {
  using sl::Tensor;
  sl::Checkpoint empty{"lenet", {}, {}};
  put("checkpoint", "empty-lenet.ckpt", checkpoint_bytes(empty));

  sl::Checkpoint small{"lenet", {{"dataset", "mnist"}, {"epochs", "3"}}, {}};
  small.tensors.emplace_back("fc3.bias", Tensor::full(sl::Shape{10}, 0.25));
  small.tensors.emplace_back("fc3.weight", Tensor::full(sl::Shape{10, 2}, -1.0));  // wrong shape for LeNet
  put("checkpoint", "lenet-partial.ckpt", checkpoint_bytes(small));

  sl::Checkpoint kinds{"other", {{"k", ""}}, {}};
  kinds.tensors.emplace_back("scalar64", Tensor::scalar(3.5, sl::DType::f64));
  kinds.tensors.emplace_back("ints", Tensor::from_labels({1, 2, 3}));
  kinds.tensors.emplace_back("empty", Tensor::empty(sl::Shape{0, 4}));
  kinds.tensors.emplace_back("rank8", Tensor::full(sl::Shape{1, 1, 1, 1, 1, 1, 1, 2}, 1.0));
  const Bytes all = checkpoint_bytes(kinds);
  put("checkpoint", "dtypes-ranks.ckpt", all);
  put("checkpoint", "truncated.ckpt", Bytes(all.begin(), all.begin() + long(all.size() / 2)));
  put("checkpoint", "magic-only", Bytes{'S', 'P', 'L', 'K'});

  // The edge side of a deployment with CIS calibrations (split/defense.h: parse_calibration), one of them bad.
  sl::Checkpoint edge{"lenet",
                      {{"role", "edge"},
                       {"cis_calibration.conv1", "images=8 ranks=6.5,7.25,8,5.875,6,7,6.125,7.5"},
                       {"cis_calibration.ReLU1", "images=8 ranks=1,,nan"}},
                      {}};
  edge.tensors.emplace_back("conv1.bias", Tensor::full(sl::Shape{8}, 0.5));
  put("checkpoint", "edge-cis-calibration.ckpt", checkpoint_bytes(edge));
}

// ---- MNIST IDX: images file then labels file ------------------------------------------------------------
Bytes be32(uint32_t v) { return {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}; }

Bytes idx_images(uint32_t n, uint32_t h, uint32_t w) {
  Bytes b = cat(cat(cat(be32(0x803), be32(n)), be32(h)), be32(w));
  for (uint32_t i = 0; i < n * h * w; ++i) b.push_back(uint8_t(i * 37));
  return b;
}
Bytes idx_labels(const Bytes& labels) { return cat(cat(be32(0x801), be32(uint32_t(labels.size()))), labels); }

void idx() {
  put("idx", "two-3x2.idx", cat(idx_images(2, 3, 2), idx_labels({7, 0})));
  put("idx", "one-28x28.idx", cat(idx_images(1, 28, 28), idx_labels({9})));
  put("idx", "label-out-of-range.idx", cat(idx_images(2, 2, 2), idx_labels({1, 10})));
  put("idx", "count-mismatch.idx", cat(idx_images(2, 2, 2), idx_labels({1, 2, 3})));
  put("idx", "zero-images.idx", cat(idx_images(0, 28, 28), idx_labels({})));
  put("idx", "huge-extents.idx", cat(cat(cat(be32(0x803), be32(0xFFFFFFFF)), be32(0xFFFFFFFF)), be32(0xFFFFFFFF)));
}

// ---- CIFAR-10: binary records; JSON labels then a 1024 x 2 sprite ------------------------------------------
void cifar() {
  Bytes rec;
  for (int k = 0; k < 2; ++k) {
    rec.push_back(uint8_t(k == 0 ? 3 : 8));
    for (int i = 0; i < 3 * 1024; ++i) rec.push_back(uint8_t(i * (k + 1)));
  }
  put("cifar_bin", "two-records.bin", rec);
  Bytes bad = rec;
  bad[3073] = 10;
  put("cifar_bin", "label-out-of-range.bin", bad);
  put("cifar_bin", "one-record.bin", Bytes(rec.begin(), rec.begin() + 3073));

  auto sprite = [](int w, int h, int channels) {
    sl::data::Image8 img;
    img.width = w;
    img.height = h;
    img.channels = channels;
    img.pixels.resize(size_t(w) * h * channels);
    for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t((i / 97) * 13);
    return sl::data::encode_png(img);
  };
  auto text = [](const std::string& s) { return Bytes(s.begin(), s.end()); };
  const Bytes good = sprite(1024, 2, 3);
  put("cifar_png", "two-images.json+png", cat(text("[3, 8]"), good));
  put("cifar_png", "labels-float.json+png", cat(text("[3.0, 8]"), good));
  put("cifar_png", "labels-object.json+png", cat(text("{\"labels\": [3, 8]}\n"), good));
  put("cifar_png", "grey-sprite.json+png", cat(text("[0,9]"), sprite(1024, 2, 1)));
  put("cifar_png", "rgba-sprite.json+png", cat(text("[0,9]"), sprite(1024, 2, 4)));
  put("cifar_png", "wrong-size.json+png", cat(text("[1,1]"), sprite(32, 2, 3)));
}

// The wire target: byte 0 is the size of the pieces the stream is fed in, then frames (or an observation file).
void wire() {
  using namespace sl;
  auto t = [](Shape s) {
    std::vector<float> v(size_t(s.numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = float(i % 7) * 0.5f;
    return Tensor::from_vector(v, s);
  };
  auto stream = [](uint8_t piece, const std::vector<Bytes>& frames) {
    Bytes all{piece};
    for (auto& f : frames) all.insert(all.end(), f.begin(), f.end());
    return all;
  };
  const std::string fp = "lenet/ReLU2/s1947ca9e/wfa73ed39";
  wire::Welcome w{"cloud", 5000, 8, 4, {{0, fp, "ReLU2", Shape{16, 8, 8}, 10}}};
  put("wire", "edge-exchange",
      stream(255, {wire::encode_hello({"edge-1", {fp}}), wire::encode_stats_request(1),
                   wire::encode_request(0, {0, t(Shape{1, 16, 2, 2})}), wire::encode_request(1, {0, t(Shape{2, 4})}),
                   wire::encode_bye("done")}));
  put("wire", "cloud-exchange",
      stream(7, {wire::encode_welcome(w), wire::encode_response(0, {0, 5, 9, 3, t(Shape{1, 10})}),
                 wire::encode_error(1, {wire::ErrorCode::BadTensor, "bad shape"}),
                 wire::encode_stats(1, "{\"requests\":1}"), wire::encode_bye("shutting down")}));
  put("wire", "request-f64-rank1", stream(0, {wire::encode_request(2, {0, t(Shape{3}).to(DType::f64)})}));
  Bytes big = wire::encode_request(3, {0, t(Shape{1, 2})});
  for (int i = 16; i < 20; ++i) big[size_t(i)] = 0xff;
  put("wire", "oversize-length", stream(3, {big}));
  // An observation file: its header, two records, the last one torn.
  Bytes obs = {'S', 'L', 'O', 'B', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  runtime::encode_observation(obs, {1, 2, "edge@127.0.0.1:1", 3, "ReLU2", "lenet/ReLU2/s1/w2", t(Shape{1, 2, 2})});
  runtime::encode_observation(obs, {4, 5, "edge", 6, "pool2", "fp", t(Shape{2, 3})});
  obs.resize(obs.size() - 5);
  put("wire", "observations-torn", cat(Bytes{9}, obs));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds CORPUS_DIR (e.g. fuzz/corpus)\n");
    return 2;
  }
  g_root = argv[1];
  checkpoints();
  idx();
  cifar();
  wire();
  return 0;
}
