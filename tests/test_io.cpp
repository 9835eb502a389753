// tensor/io: CRC-32, reads of regular files only, atomic writes only over regular files, output checks that create
// nothing, and the clean-up of temporary files left by killed writers.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "tensor/io.h"

namespace fs = std::filesystem;
using namespace sl;

namespace {

struct Temp {
  fs::path path;
  Temp() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("splitleak_io_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Temp() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& rel) const { return (path / rel).string(); }
};

template <class F>
std::string io_error(F&& f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

size_t entries(const fs::path& p) { return size_t(std::distance(fs::directory_iterator(p), fs::directory_iterator())); }

}  // namespace

TEST_CASE("io::crc32: eight bytes at a time equals one byte at a time, at every length and alignment", "[io]") {
  // The definition, one bit at a time.
  auto bitwise = [](const uint8_t* p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
      c ^= p[i];
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
  };
  std::vector<uint8_t> b(300);
  for (size_t i = 0; i < b.size(); ++i) b[i] = uint8_t(i * 131 + 7);
  for (size_t at = 0; at < 9; ++at)
    for (size_t n = 0; at + n <= b.size(); n += (n < 40 ? 1 : 37))
      CHECK(io::crc32(b.data() + at, n) == bitwise(b.data() + at, n));
  CHECK(io::crc32(b.data() + 100, 200, io::crc32(b.data(), 100)) == bitwise(b.data(), 300));
}

TEST_CASE("io::crc32: the IEEE check value, chaining, empty input", "[io]") {
  const std::string s = "123456789";
  CHECK(io::crc32(s.data(), s.size()) == 0xCBF43926u);
  CHECK(io::crc32(s.data() + 4, 5, io::crc32(s.data(), 4)) == 0xCBF43926u);
  CHECK(io::crc32(nullptr, 0) == 0u);
}

TEST_CASE("io inputs: only regular files are read; folders, FIFOs and missing files are named", "[io]") {
  Temp t;
  std::ofstream(t / "a.bin") << "abc";
  fs::create_symlink("a.bin", t / "link.bin");
  fs::create_directories(t / "dir");
  REQUIRE(::mkfifo((t / "fifo").c_str(), 0644) == 0);

  CHECK(io::read_file(t / "a.bin", "data") == std::vector<uint8_t>{'a', 'b', 'c'});
  CHECK(io::read_file(t / "link.bin", "data").size() == 3);  // a link to a regular file is read through
  uint64_t size = 0;
  io::File f = io::open_input(t / "a.bin", "data", &size);
  CHECK(size == 3);
  CHECK_THAT(io_error([&] { io::read_file(t / "nope", "data"); }),
             Catch::Contains("data ") && Catch::Contains("nope: not found"));
  CHECK_THAT(io_error([&] { io::read_file(t / "dir", "checkpoint"); }), Catch::Contains("is a folder"));
  // A FIFO is refused without being opened (opening it for reading would block until a writer comes).
  CHECK_THAT(io_error([&] { io::read_file(t / "fifo", "checkpoint"); }), Catch::Contains("is a FIFO"));
  CHECK_THAT(io_error([&] { io::check_input_file(t / "a.bin/x", "data"); }), Catch::Contains("not found"));
  CHECK(io_error([&] { io::check_input_file(t / "a.bin", "data"); }).empty());
}

TEST_CASE("io outputs: checks that create nothing; only regular files are replaced", "[io]") {
  Temp t;
  std::ofstream(t / "keep.txt") << "old";
  fs::create_symlink("keep.txt", t / "link.txt");
  fs::create_directories(t / "dir");
  REQUIRE(::mkfifo((t / "fifo").c_str(), 0644) == 0);
  const size_t before = entries(t.path);

  CHECK(io_error([&] { io::check_output_file(t / "keep.txt", "--out"); }).empty());
  CHECK(io_error([&] { io::check_output_file(t / "new/sub/x.bin", "--out"); }).empty());
  CHECK(io_error([&] { io::check_output_dir(t / "new/sub", "--out"); }).empty());
  CHECK(io_error([&] { io::check_output_dir(t / "dir", "--out"); }).empty());
  CHECK_THAT(io_error([&] { io::check_output_file(t / "link.txt", "--out"); }),
             Catch::Contains("is a symbolic link (to keep.txt)"));
  CHECK_THAT(io_error([&] { io::check_output_file(t / "dir", "--out"); }), Catch::Contains("is a folder"));
  CHECK_THAT(io_error([&] { io::check_output_file(t / "fifo", "--out"); }), Catch::Contains("is a FIFO"));
  CHECK_THAT(io_error([&] { io::check_output_file(t / "keep.txt/x", "--out"); }),
             Catch::Contains("keep.txt is a regular file, not a folder"));
  CHECK_THAT(io_error([&] { io::check_output_dir(t / "keep.txt", "--out"); }),
             Catch::Contains("--out ") && Catch::Contains("keep.txt: is a regular file, not a folder"));
  CHECK_THAT(io_error([&] { io::check_output_dir(t / "fifo/a/b", "--out"); }), Catch::Contains("is a FIFO"));
  CHECK(entries(t.path) == before);  // the checks created nothing

  // The writer enforces the same: the link, its target, the folder and the FIFO are left as they were.
  CHECK_THAT(io_error([&] { io::write_file_atomic(t / "link.txt", "new", "--out"); }),
             Catch::Contains("symbolic link"));
  CHECK_THAT(io_error([&] { io::write_file_atomic(t / "dir", "new", "--out"); }), Catch::Contains("is a folder"));
  CHECK_THAT(io_error([&] { io::write_file_atomic(t / "fifo", "new", "--out"); }), Catch::Contains("is a FIFO"));
  CHECK_THAT(io_error([&] { io::write_file_atomic(t / "keep.txt/a/b", "new", "--out"); }), Catch::Contains("keep.txt"));
  CHECK(fs::is_symlink(t / "link.txt"));
  CHECK(slurp(t / "keep.txt") == "old");
  CHECK(entries(t.path) == before);

  // A regular file is replaced; missing folders are created.
  io::write_file_atomic(t / "keep.txt", "new");
  CHECK(slurp(t / "keep.txt") == "new");
  io::write_file_atomic(t / "a/b/c.txt", std::string("deep"));
  CHECK(slurp(t / "a/b/c.txt") == "deep");
  CHECK(entries(t.path / "a" / "b") == 1);  // no temporary file left
}

TEST_CASE("io: unwritable folders are found by the check; a failed write leaves no folder or temp file", "[io]") {
  Temp t;
  fs::create_directories(t / "ro");
  fs::permissions(t / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  // Permission bits do not stop root, so the read-only case is checked only for other users; the case of a path
  // under a regular file (above) holds for everyone.
  if (::geteuid() != 0) {
    CHECK_THAT(io_error([&] { io::check_output_dir(t / "ro/new/sub", "--out"); }), Catch::Contains("not writable"));
    CHECK_THAT(io_error([&] { io::check_output_file(t / "ro/x.bin", "--out"); }), Catch::Contains("not writable"));
    CHECK_THAT(io_error([&] { io::write_file_atomic(t / "ro/x.bin", "x"); }), Catch::Contains("ro/x.bin"));
    CHECK(fs::is_empty(t / "ro"));
  }
  fs::permissions(t / "ro", fs::perms::owner_all);

  // CreatedDirs: folders it made are removed unless kept, and only while empty.
  {
    io::CreatedDirs made(t / "x/y/z", "--out");
    CHECK(fs::is_directory(t / "x/y/z"));
  }
  CHECK_FALSE(fs::exists(t / "x"));
  {
    io::CreatedDirs made(t / "x/y", "--out");
    made.keep();
  }
  CHECK(fs::is_directory(t / "x/y"));
  {
    io::CreatedDirs made(t / "p/q", "--out");
    std::ofstream(t / "p/q/file") << "1";
  }
  CHECK(fs::exists(t / "p/q/file"));  // not empty: kept
}

TEST_CASE("io: temporary files of killed writers are removed by the next write, others are kept", "[io]") {
  Temp t;
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  int st = 0;
  ::waitpid(child, &st, 0);  // the child's PID now names no running process
  const std::string dead = t / ("out.bin.partial-" + std::to_string(child) + "-0");
  const std::string alive = t / ("out.bin.partial-" + std::to_string(::getpid()) + "-7");
  const std::string other = t / ("other.bin.partial-" + std::to_string(child) + "-0");
  for (const auto& p : {dead, alive, other}) std::ofstream(p) << "partial";
  io::write_file_atomic(t / "out.bin", "done");
  CHECK_FALSE(fs::exists(dead));
  CHECK(fs::exists(alive));  // a running writer's file
  CHECK(fs::exists(other));  // another target's: removed by a write of that target, or by a sweep of the folder
  CHECK(io::remove_stale_temps(t.path.string()) == 1);
  CHECK_FALSE(fs::exists(other));
  CHECK(slurp(t / "out.bin") == "done");
}
