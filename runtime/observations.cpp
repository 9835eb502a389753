#include "runtime/observations.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "tensor/io.h"  // crc32

namespace sl::runtime {

namespace {

constexpr uint8_t kFileMagic[4] = {'S', 'L', 'O', 'B'};
constexpr uint8_t kRecordMagic[4] = {'S', 'L', 'R', 'C'};
constexpr size_t kFileHeader = 16;
constexpr size_t kRecordOverhead = 12;  // magic, length, CRC

uint32_t rd32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

std::string errno_text() { return std::strerror(errno); }

bool pread_all(int fd, uint8_t* dst, size_t n, uint64_t at) {
  while (n > 0) {
    ssize_t r = ::pread(fd, dst, n, off_t(at));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    dst += r;
    n -= size_t(r);
    at += uint64_t(r);
  }
  return true;
}

bool pwrite_all(int fd, const uint8_t* src, size_t n, uint64_t at) {
  while (n > 0) {
    ssize_t r = ::pwrite(fd, src, n, off_t(at));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    src += r;
    n -= size_t(r);
    at += uint64_t(r);
  }
  return true;
}

void check_file_header(const uint8_t* p, size_t n, const std::string& source) {
  if (n < kFileHeader || std::memcmp(p, kFileMagic, 4) != 0)
    throw IoError(str(source, ": not a splitleak observation file (expected \"SLOB\" at byte offset 0)"));
  uint32_t v = rd32(p + 4);
  if (v != kObservationVersion)
    throw IoError(
        str(source, ": observation file version ", v, " (this build reads version ", kObservationVersion, ")"));
}

}  // namespace

void encode_observation(Bytes& out, const Observation& o) {
  size_t start = out.size();
  out.insert(out.end(), kRecordMagic, kRecordMagic + 4);
  put_uint(out, 0, 4);  // body length, patched below
  put_uint(out, uint64_t(o.time_unix_ns), 8);
  put_uint(out, o.edge_id, 8);
  put_string(out, o.edge, 1024);
  put_uint(out, o.request_id, 8);
  put_string(out, o.split, 256);
  put_string(out, o.fingerprint, 256);
  put_tensor(out, o.tensor);
  size_t body = out.size() - start - 8;
  SL_CHECK(body <= kMaxObservationBody, ValueError, "observation of ", body, " bytes is too large to record");
  for (int i = 0; i < 4; ++i) out[start + 4 + size_t(i)] = uint8_t(body >> (8 * i));
  put_uint(out, io::crc32(out.data() + start + 8, body), 4);
}

// ---- writer ---------------------------------------------------------------------------------------------------
ObservationWriter::ObservationWriter(const std::string& path) : path_(path) {
  io::check_output_file(path, "--record");  // absent or a regular file (no link, folder, FIFO, device)
  io::CreatedDirs dirs(std::filesystem::path(path).parent_path().string(), "--record");
  struct stat st {};
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK, 0644);
  SL_CHECK(fd_ >= 0, IoError, "cannot open '", path, "' for recording: ", errno_text());
  try {
    SL_CHECK(::flock(fd_, LOCK_EX | LOCK_NB) == 0, IoError, "'", path, "' is being recorded by another process");
    SL_CHECK(::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode), IoError, "'", path, "' is not a regular file");
    dirs.keep();
    size_ = uint64_t(st.st_size);
    if (size_ == 0) {
      Bytes h(kFileMagic, kFileMagic + 4);
      put_uint(h, kObservationVersion, 4);
      put_uint(h,
               uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count()),
               8);
      SL_CHECK(pwrite_all(fd_, h.data(), h.size(), 0), IoError, "cannot write '", path, "': ", errno_text());
      size_ = h.size();
      return;
    }
    uint8_t head[kFileHeader] = {0};
    SL_CHECK(size_ >= kFileHeader && pread_all(fd_, head, kFileHeader, 0), IoError, "'", path,
             "' is not a splitleak observation file (too short); choose another --record file");
    check_file_header(head, kFileHeader, "'" + path + "'");
    // Walk the records by their lengths; only the last one can be torn (a crash during its write).
    uint64_t pos = kFileHeader, last = 0;
    bool torn = false;
    while (pos < size_) {
      uint8_t rh[8];
      if (size_ - pos < 8 || !pread_all(fd_, rh, 8, pos)) {
        torn = true;
        break;
      }
      SL_CHECK(std::memcmp(rh, kRecordMagic, 4) == 0, IoError, "'", path, "' is damaged: no record at byte offset ",
               pos);
      uint64_t len = rd32(rh + 4);
      SL_CHECK(len <= kMaxObservationBody, IoError, "'", path, "' is damaged: record length ", len, " at byte offset ",
               pos);
      if (pos + kRecordOverhead + len > size_) {
        torn = true;
        break;
      }
      last = pos;
      pos += kRecordOverhead + len;
    }
    if (!torn && last != 0) {  // the last complete-looking record must also pass its CRC
      uint8_t rh[8];
      SL_CHECK(pread_all(fd_, rh, 8, last), IoError, "cannot read '", path, "'");
      uint64_t len = rd32(rh + 4);
      Bytes body(len + 4);
      SL_CHECK(pread_all(fd_, body.data(), body.size(), last + 8), IoError, "cannot read '", path, "'");
      if (io::crc32(body.data(), len) != rd32(body.data() + len)) {
        torn = true;
        pos = last;
      }
    }
    if (torn) {
      uint64_t cut = size_ - pos;
      SL_CHECK(::ftruncate(fd_, off_t(pos)) == 0, IoError, "cannot repair '", path, "': ", errno_text());
      note_ = str("cut off a torn last record (", cut, " bytes at byte offset ", pos, ") left by an interrupted write");
      size_ = pos;
    }
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

ObservationWriter::~ObservationWriter() {
  if (fd_ >= 0) {
    ::fdatasync(fd_);
    ::close(fd_);
  }
}

void ObservationWriter::append(const Bytes& records, uint64_t count) {
  if (records.empty()) return;
  if (!pwrite_all(fd_, records.data(), records.size(), size_)) {
    int err = errno;
    if (::ftruncate(fd_, off_t(size_)) != 0) {
      // The torn tail stays; the next open cuts it off.
    }
    throw IoError(str("cannot append to '", path_, "': ", std::strerror(err)));
  }
  size_ += records.size();
  records_ += count;
}

void ObservationWriter::sync() {
  if (fd_ >= 0) ::fdatasync(fd_);
}

// ---- reader ---------------------------------------------------------------------------------------------------
ObservationScan parse_observations(const uint8_t* data, size_t size, const std::string& source,
                                   const std::function<void(Observation&&)>& visit) {
  check_file_header(data, size, source);
  ObservationScan scan;
  size_t pos = kFileHeader;
  while (pos < size) {
    size_t left = size - pos;
    if (left < 8) {
      scan.torn_bytes = left;
      break;
    }
    if (std::memcmp(data + pos, kRecordMagic, 4) != 0)
      throw IoError(str(source, ": damaged: no record (\"SLRC\") at byte offset ", pos));
    uint64_t len = rd32(data + pos + 4);
    if (len > kMaxObservationBody)
      throw IoError(str(source, ": damaged: record length ", len, " at byte offset ", pos));
    if (left < kRecordOverhead + len) {
      scan.torn_bytes = left;
      break;
    }
    const uint8_t* body = data + pos + 8;
    if (io::crc32(body, len) != rd32(body + len)) {
      if (pos + kRecordOverhead + len == size) {  // the last record: an interrupted write
        scan.torn_bytes = left;
        break;
      }
      throw IoError(str(source, ": damaged: CRC mismatch in the record at byte offset ", pos));
    }
    ByteReader r(body, len, str(source, " (record ", scan.records, ")"), pos + 8);
    Observation o;
    o.time_unix_ns = int64_t(r.u64("time"));
    o.edge_id = r.u64("edge id");
    o.edge = r.text("edge", 1024);
    o.request_id = r.u64("request id");
    o.split = r.text("split", 256);
    o.fingerprint = r.text("fingerprint", 256);
    o.tensor = r.tensor("observed tensor");
    r.expect_end("the tensor");
    ++scan.records;
    visit(std::move(o));
    pos += kRecordOverhead + len;
  }
  return scan;
}

std::vector<Observation> read_observations(const std::string& path, std::string* note) {
  io::check_input_file(path, "observation file");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  SL_CHECK(fd >= 0, IoError, "cannot open observation file '", path, "': ", errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(str("observation file '", path, "' is not a regular file"));
  }
  size_t size = size_t(st.st_size);
  void* map = size ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  ::close(fd);
  SL_CHECK(size == 0 || map != MAP_FAILED, IoError, "cannot map '", path, "': ", errno_text());
  std::vector<Observation> out;
  try {
    static const uint8_t empty[1] = {0};
    ObservationScan s = parse_observations(size ? static_cast<const uint8_t*>(map) : empty, size, "'" + path + "'",
                                           [&](Observation&& o) { out.push_back(std::move(o)); });
    if (note && s.torn_bytes)
      *note = str("'", path, "': skipped a torn last record (", s.torn_bytes, " bytes) left by an interrupted write");
  } catch (...) {
    if (size) ::munmap(map, size);
    throw;
  }
  if (size) ::munmap(map, size);
  return out;
}

std::map<int64_t, Tensor> observed_images(const std::vector<Observation>& obs, const std::string& fingerprint) {
  std::map<int64_t, Tensor> out;
  for (auto& o : obs) {
    if (o.fingerprint != fingerprint || o.request_id >= (uint64_t(1) << 62) || o.tensor.dim() < 1) continue;
    for (int64_t r = 0; r < o.tensor.size(0); ++r) out.emplace(int64_t(o.request_id) + r, o.tensor.slice(r, r + 1));
  }
  return out;
}

}  // namespace sl::runtime
