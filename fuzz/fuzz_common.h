// Shared by the libFuzzer targets: each writes the fuzzer's bytes to real files in a private scratch folder and
// calls the same path-taking reader the CLI calls, so the code under test is the CLI's code, file opening
// included. A reader may refuse its input only with IoError (or, where named, another sl::Error); any other
// exception, a crash, a sanitizer report, a hang or a huge allocation is a finding.
#pragma once
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <typeinfo>

#include "tensor/error.h"

namespace sl::fuzz {

// A folder of this process's own (on /dev/shm when there is one: no disk traffic), removed at exit.
inline const std::string& scratch_dir() {
  static const std::string& dir = *new std::string([] {  // never destroyed: the exit handler below reads it
    std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::filesystem::temp_directory_path().string();
    std::string tmpl = base + "/splitleak-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) {
      std::perror("fuzz: cannot create a scratch folder");
      std::abort();
    }
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return tmpl;
  }());
  return dir;
}

// Writes `n` bytes to scratch_dir()/rel (creating its folders) and returns the full path.
inline std::string write_scratch(const std::string& rel, const uint8_t* data, size_t n) {
  const std::filesystem::path p = std::filesystem::path(scratch_dir()) / rel;
  std::filesystem::create_directories(p.parent_path());
  std::FILE* f = std::fopen(p.c_str(), "wb");
  if (!f || (n && std::fwrite(data, 1, n, f) != n) || std::fclose(f) != 0) {
    std::perror("fuzz: cannot write a scratch file");
    std::abort();
  }
  return p.string();
}

// Runs `f`; returns true when it completed, false when it refused the input with an `Allowed` error. Any other
// exception aborts, so that libFuzzer records the input as a crash.
template <class Allowed = IoError, class F>
bool refuses_only_with(const char* what, F&& f) {
  try {
    f();
    return true;
  } catch (const Allowed& e) {
    for (const char* c = e.what(); *c; ++c)
      if (static_cast<unsigned char>(*c) < 0x20 || *c == 0x7F) {
        std::fprintf(stderr, "fuzz: %s: a control character in the error message: %s\n", what, e.what());
        std::abort();
      }
    return false;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: %s threw %s instead of a clear error: %s\n", what, typeid(e).name(), e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "fuzz: %s threw a non-standard exception\n", what);
    std::abort();
  }
}

// CRC-32 (IEEE, as zlib), for mutators that repair checksums so that mutations reach the code behind them.
inline uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

}  // namespace sl::fuzz
