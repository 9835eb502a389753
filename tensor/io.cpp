#include "tensor/io.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "tensor/error.h"

namespace sl::io {

// ---- CRC-32 --------------------------------------------------------------------------------------------------
uint32_t crc32(const void* data, size_t n, uint32_t crc) {
  // Slicing by 8: t[0] is the table of the reflected polynomial 0xEDB88320, one entry per byte value; t[k][b] is
  // the CRC of byte b followed by k zero bytes, so eight table lookups advance the CRC by eight bytes at once
  // (about 5x the speed of one byte at a time; the same values).
  static const auto t = [] {
    std::array<std::array<uint32_t, 256>, 8> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (size_t k = 1; k < 8; ++k)
      for (uint32_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
    return t;
  }();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (; n >= 8; p += 8, n -= 8) {
    const uint32_t lo = crc ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
    const uint32_t hi = uint32_t(p[4]) | uint32_t(p[5]) << 8 | uint32_t(p[6]) << 16 | uint32_t(p[7]) << 24;
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][hi & 0xFF] ^
          t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  for (; n > 0; ++p, --n) crc = t[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

namespace {

std::string kind_of(mode_t m) {
  if (S_ISREG(m)) return "a regular file";
  if (S_ISDIR(m)) return "a folder";
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

std::string parent_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string link_target(const std::string& path) {
  std::vector<char> buf(4096);
  ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size() - 1);
  return n < 0 ? std::string("?") : std::string(buf.data(), size_t(n));
}

// Why a folder cannot be written into (or created), or "" when it can: the nearest existing ancestor must be a
// folder this process may write to.
std::string dir_problem(const std::string& dir) {
  std::string p = dir.empty() ? "." : dir;
  for (int depth = 0; depth < 4096; ++depth) {
    struct stat st;
    if (::stat(p.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return str(p, " is ", kind_of(st.st_mode), ", not a folder");
      if (::faccessat(AT_FDCWD, p.c_str(), W_OK | X_OK, AT_EACCESS) != 0)
        return str("the folder ", p, " is not writable (", std::strerror(errno), ")");
      // The permission bits do not tell everything (root passes them; a read-only or special file system
      // does not): create and remove an entry to be sure.
      static std::atomic<uint64_t> probes{0};
      const std::string probe = str(p, "/.splitleak-probe-", ::getpid(), "-", probes++);
      if (::mkdir(probe.c_str(), 0700) != 0 && errno != EEXIST)
        return str("the folder ", p, " is not writable (", std::strerror(errno), ")");
      ::rmdir(probe.c_str());
      return "";
    }
    if (errno != ENOENT && errno != ENOTDIR) return str("cannot use ", p, " (", std::strerror(errno), ")");
    std::string up = parent_of(p);
    if (up == p) return str("cannot use ", p, " (", std::strerror(errno), ")");
    p = up;
  }
  return str("cannot use ", dir, " (path too deep)");
}

// Why `path` cannot be replaced by a regular file, or "" when it is absent or a regular file.
std::string target_problem(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return "";
    return str("cannot inspect it (", std::strerror(errno), ")");
  }
  if (S_ISREG(st.st_mode)) return "";
  if (S_ISLNK(st.st_mode))
    return str("is a symbolic link (to ", link_target(path),
               "); splitleak replaces only regular files: pass the link's target or another path");
  if (S_ISDIR(st.st_mode)) return "is a folder; splitleak writes only over regular files: pass a file name";
  return str("is ", kind_of(st.st_mode), "; splitleak writes only over regular files: pass another path");
}

// Creates the missing folders down to `dir` (outermost first); returns the ones created, innermost last.
std::vector<std::string> make_dirs(const std::string& dir, const std::string& what, const std::string& target) {
  std::vector<std::string> missing;
  std::string p = dir;
  struct stat st;
  while (::stat(p.c_str(), &st) != 0 && errno == ENOENT) {
    missing.push_back(p);
    std::string up = parent_of(p);
    if (up == p) break;
    p = up;
  }
  std::vector<std::string> created;
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0777) != 0 && errno != EEXIST) {
      int err = errno;
      for (auto c = created.rbegin(); c != created.rend(); ++c) ::rmdir(c->c_str());
      throw IoError(str(what, " ", target, ": cannot create the folder ", *it, " (", std::strerror(err), ")"));
    }
    created.push_back(*it);
  }
  return created;
}

bool write_all(int fd, const void* data, size_t n, size_t& done) {
  const auto* p = static_cast<const uint8_t*>(data);
  done = 0;
  while (done < n) {
    ssize_t k = ::write(fd, p + done, n - done);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      if (k == 0) errno = EIO;
      return false;
    }
    done += size_t(k);
  }
  return true;
}

constexpr const char* kTempTag = ".partial-";

}  // namespace

std::string file_kind(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return "absent";
  return kind_of(st.st_mode);
}

// ---- inputs --------------------------------------------------------------------------------------------------
void check_input_file(const std::string& path, const std::string& what) {
  SL_CHECK(!path.empty(), IoError, what, ": the path is empty");
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) throw IoError(str(what, " ", path, ": not found"));
    throw IoError(str(what, " ", path, ": cannot open (", std::strerror(errno), ")"));
  }
  if (S_ISDIR(st.st_mode)) throw IoError(str(what, " ", path, ": is a folder, expected a file"));
  if (!S_ISREG(st.st_mode))
    throw IoError(str(what, " ", path, ": is ", kind_of(st.st_mode), "; splitleak reads only regular files"));
}

File open_input(const std::string& path, const std::string& what, uint64_t* size) {
  check_input_file(path, what);
  // Non-blocking, so that a FIFO put in place after the check cannot block the open; the descriptor is then
  // checked again and made blocking (reads of regular files never block anyway).
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw IoError(str(what, " ", path, ": cannot open (", std::strerror(errno), ")"));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(str(what, " ", path, ": is not a regular file; splitleak reads only regular files"));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::FILE* f = ::fdopen(fd, "rb");
  if (!f) {
    int err = errno;
    ::close(fd);
    throw IoError(str(what, " ", path, ": cannot open (", std::strerror(err), ")"));
  }
  if (size) *size = uint64_t(st.st_size);
  return File(f);
}

std::vector<uint8_t> read_file(const std::string& path, const std::string& what) {
  uint64_t size = 0;
  File f = open_input(path, what, &size);
  std::vector<uint8_t> out;
  out.reserve(size_t(size));
  uint8_t buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f.get())) > 0) out.insert(out.end(), buf, buf + got);
  if (std::ferror(f.get())) throw IoError(str(what, " ", path, ": read error at byte ", out.size()));
  return out;
}

// ---- outputs -------------------------------------------------------------------------------------------------
void check_output_dir(const std::string& dir, const std::string& what) {
  SL_CHECK(!dir.empty(), IoError, what, ": the folder name is empty");
  std::string why = dir_problem(dir);
  if (why.rfind(dir + " is ", 0) == 0) throw IoError(str(what, " ", dir, ": ", why.substr(dir.size() + 1)));
  if (!why.empty()) throw IoError(str(what, " ", dir, ": cannot write there: ", why));
}

void check_output_file(const std::string& path, const std::string& what) {
  SL_CHECK(!path.empty(), IoError, what, ": the file name is empty");
  SL_CHECK(path.back() != '/', IoError, what, " ", path, ": names a folder; pass a file name");
  std::string why = target_problem(path);
  if (why.empty()) {
    why = dir_problem(parent_of(path));
    if (!why.empty()) why = "cannot write there: " + why;
  }
  if (!why.empty()) throw IoError(str(what, " ", path, ": ", why));
}

CreatedDirs::CreatedDirs(const std::string& dir, const std::string& what) {
  check_output_dir(dir, what);
  created_ = make_dirs(dir, what, dir);
}

CreatedDirs::~CreatedDirs() {
  for (auto c = created_.rbegin(); c != created_.rend(); ++c) ::rmdir(c->c_str());
}

int remove_stale_temps(const std::string& dir, const std::string& name) {
  DIR* d = ::opendir(dir.empty() ? "." : dir.c_str());
  if (!d) return 0;
  int removed = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string entry = e->d_name;
    const size_t tag = entry.rfind(kTempTag);
    if (tag == std::string::npos || tag == 0) continue;
    if (!name.empty() && entry.compare(0, tag, name) != 0) continue;
    if (!name.empty() && tag != name.size()) continue;
    // The rest must be PID-N, both decimal.
    const std::string rest = entry.substr(tag + std::strlen(kTempTag));
    const size_t dash = rest.find('-');
    if (dash == 0 || dash == std::string::npos || dash + 1 == rest.size() || dash > 9) continue;
    if (rest.find_first_not_of("0123456789-") != std::string::npos || rest.find('-', dash + 1) != std::string::npos)
      continue;
    const pid_t pid = pid_t(std::stol(rest.substr(0, dash)));
    if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // running (or not ours to judge)
    const std::string full = (dir.empty() ? std::string(".") : dir) + "/" + entry;
    struct stat st;
    if (::lstat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::unlink(full.c_str()) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

void write_file_atomic(const std::string& path, const void* bytes, size_t n, const std::string& what) {
  SL_CHECK(!path.empty(), IoError, what, ": the file name is empty");
  std::string why = target_problem(path);
  if (!why.empty()) throw IoError(str(what, " ", path, ": ", why));
  const std::vector<std::string> created = make_dirs(parent_of(path), what, path);
  auto undo_folders = [&] {
    for (auto c = created.rbegin(); c != created.rend(); ++c) ::rmdir(c->c_str());
  };
  const std::string dir = parent_of(path);
  remove_stale_temps(dir, base_of(path));

  static std::atomic<uint64_t> serial{0};
  const std::string tmp = str(path, kTempTag, ::getpid(), "-", serial++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    int err = errno;
    undo_folders();
    throw IoError(str(what, " ", path, ": cannot create a temporary file in ", dir, " (", std::strerror(err), ")"));
  }
  size_t done = 0;
  bool ok = write_all(fd, bytes, n, done) && ::fsync(fd) == 0;
  int err = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (ok) {
    why = target_problem(path);  // again, just before the rename: only ever replace a regular file
    if (!why.empty()) {
      ::unlink(tmp.c_str());
      undo_folders();
      throw IoError(str(what, " ", path, ": ", why));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      ok = false;
      err = errno;
    }
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    undo_folders();
    throw IoError(str(what, " ", path, ": write failed after ", done, " of ", n, " bytes (", std::strerror(err), ")"));
  }
  // Make the rename itself durable (best effort: the file is already complete and in place).
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace sl::io
