#include "tests/tiny_data.h"

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace sl::test {

namespace {
void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
}
}  // namespace

void write_tiny_mnist(const std::filesystem::path& data_dir, int n_train, int n_test) {
  const std::filesystem::path dir = data_dir / "mnist";
  std::filesystem::create_directories(dir);
  for (auto [name, n] : {std::pair{std::string("train"), n_train}, std::pair{std::string("t10k"), n_test}}) {
    std::vector<uint8_t> img, lab;
    put_be32(img, 0x803);
    put_be32(img, uint32_t(n));
    put_be32(img, 28);
    put_be32(img, 28);
    put_be32(lab, 0x801);
    put_be32(lab, uint32_t(n));
    for (int i = 0; i < n; ++i) {
      int k = i % 10;
      for (int y = 0; y < 28; ++y)
        for (int x = 0; x < 28; ++x) img.push_back((y == 2 + 2 * k || y == 3 + 2 * k) && x > 3 && x < 24 ? 255 : 0);
      lab.push_back(uint8_t(k));
    }
    std::ofstream(dir / (name + "-images-idx3-ubyte"), std::ios::binary)
        .write(reinterpret_cast<char*>(img.data()), std::streamsize(img.size()));
    std::ofstream(dir / (name + "-labels-idx1-ubyte"), std::ios::binary)
        .write(reinterpret_cast<char*>(lab.data()), std::streamsize(lab.size()));
  }
}

}  // namespace sl::test
