// File I/O that every reader and writer shares: CRC-32, reads of regular files only, atomic writes that only
// ever replace a regular file, and the checks of output locations that run before any work starts.
//
// Policy:
//   inputs   must be regular files (symbolic links to regular files are fine). A FIFO, device, socket or folder
//            is refused before it is opened (and checked again on the open descriptor, which is opened
//            non-blocking, so a FIFO swapped in between can never hang a read).
//   outputs  are written to a temporary sibling "NAME.partial-PID-N" in the same folder, flushed to disk, then
//            renamed over NAME: a reader sees the old file or the new one, never half of one. The target may be
//            absent or a regular file; a folder, FIFO, device, socket or symbolic link at the target is refused
//            (a link is not written through: the error names its target so the user can pass that instead).
//            A failed write removes its temporary file and any folder it created; temporary files left by a
//            killed process (its PID no longer running) are removed by the next write into the same folder.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace sl::io {

// CRC-32 (IEEE 802.3 polynomial, reflected, as zlib's crc32 and PNG's chunk CRC) of a byte range; `crc`
// chains calls: crc32(b, n2, crc32(a, n1)) == crc32(a ++ b).
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);

// --- inputs ---------------------------------------------------------------------------------------------------
// Throws IoError "WHAT PATH: ..." unless `path` names an existing regular file. Never opens it. `what` names the
// file for the user ("checkpoint", "MNIST images file").
void check_input_file(const std::string& path, const std::string& what);

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// Opens a regular file for reading (check_input_file, then a non-blocking open and a check of the descriptor);
// `size` receives its size in bytes when not null. Throws IoError naming `what` and the path.
File open_input(const std::string& path, const std::string& what, uint64_t* size = nullptr);

// The whole of a regular file.
std::vector<uint8_t> read_file(const std::string& path, const std::string& what);

// --- outputs --------------------------------------------------------------------------------------------------
// Throws IoError unless `path` can be written by write_file_atomic: the target is absent or a regular file and
// its folder passes check_output_dir. Creates nothing. `what` names the file ("--out", "checkpoint").
void check_output_file(const std::string& path, const std::string& what);

// Throws IoError unless `dir` is an existing writable folder, or could be created: its nearest existing ancestor
// is a writable folder (not a regular file, FIFO, ...). Creates nothing.
void check_output_dir(const std::string& dir, const std::string& what);

// Creates the missing folders down to `dir` (IoError naming `what` when it cannot) and, unless keep() is called,
// removes on destruction those it created that are still empty: a run that fails leaves no empty folder behind.
class CreatedDirs {
 public:
  CreatedDirs(const std::string& dir, const std::string& what);
  ~CreatedDirs();
  CreatedDirs(const CreatedDirs&) = delete;
  CreatedDirs& operator=(const CreatedDirs&) = delete;
  void keep() { created_.clear(); }

 private:
  std::vector<std::string> created_;  // outermost first
};

// Writes n bytes to `path` atomically (see the policy above), creating missing parent folders. `what` names the
// file in errors. Throws IoError, leaving `path` as it was, no temporary file and no folder it created.
void write_file_atomic(const std::string& path, const void* bytes, size_t n, const std::string& what = "file");
inline void write_file_atomic(const std::string& path, const std::string& text, const std::string& what = "file") {
  write_file_atomic(path, text.data(), text.size(), what);
}

// Removes temporary files "NAME.partial-PID-N" of processes no longer running from `dir` (all names when
// `name` is empty); returns how many. Called by write_file_atomic for its target; never throws.
int remove_stale_temps(const std::string& dir, const std::string& name = "");

// "a folder", "a FIFO", "a character device", ... for the file at `path` (without following a final symbolic
// link), or "absent"; for messages.
std::string file_kind(const std::string& path);

}  // namespace sl::io
