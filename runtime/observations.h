// The cloud's record of what it received (the untrusted operator's view, which the attacks read): an append-only
// file of every request tensor with its metadata. docs/wire-protocol.md ("Recorded observations") specifies it.
//
//   file header (16 bytes): "SLOB", u32 version (1), u64 creation time (Unix ns)
//   record: "SLRC", u32 body length, body, u32 CRC-32 of the body
//   body: u64 receive time (Unix ns), u64 edge id (the cloud's connection number), string edge (TLS certificate
//         name or the name the edge gave, and its address), u64 request id, string split, string fingerprint,
//         tensor (as tensor/serialize.h: dtype, rank, dims, little-endian data)
//
// Every batch of records goes to the file in one write() before the requests are answered, so a crash of the
// server loses at most the record being written; a torn last record is detected (length or CRC) and cut off
// when the file is opened again for appending, and skipped with a note by the reader.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tensor/serialize.h"

namespace sl::runtime {

struct Observation {
  int64_t time_unix_ns = 0;
  uint64_t edge_id = 0;
  std::string edge;
  uint64_t request_id = 0;
  std::string split;
  std::string fingerprint;
  Tensor tensor;  // float32 [rows, ...] as received
};

constexpr uint32_t kObservationVersion = 1;
constexpr uint32_t kMaxObservationBody = 1u << 30;

// Appends to `body` the encoding of one record (magic, length, body, CRC).
void encode_observation(Bytes& out, const Observation& o);

class ObservationWriter {
 public:
  // Creates the file, or opens an existing one for appending after checking its header and cutting off a torn
  // last record (`note()` then says so). IoError when the path is not a regular file or not an observation file.
  explicit ObservationWriter(const std::string& path);
  ~ObservationWriter();
  ObservationWriter(const ObservationWriter&) = delete;
  ObservationWriter& operator=(const ObservationWriter&) = delete;

  // Writes the encoded records (one or more, from encode_observation) with one write(); IoError on failure,
  // after which the file is cut back to its last complete record.
  void append(const Bytes& records, uint64_t count);
  void sync();                                   // fdatasync: the records so far survive a power cut
  uint64_t records() const { return records_; }  // written by this writer
  uint64_t bytes() const { return size_; }       // file size
  const std::string& note() const { return note_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_, note_;
  int fd_ = -1;
  uint64_t size_ = 0, records_ = 0;
};

// Parses an observation file's bytes, calling `visit` for each complete record (in file order). A torn last
// record is not an error: its size is returned in `torn_bytes`. Anything else malformed throws IoError naming
// the source and byte offset.
struct ObservationScan {
  uint64_t records = 0;
  uint64_t torn_bytes = 0;
};
ObservationScan parse_observations(const uint8_t* data, size_t size, const std::string& source,
                                   const std::function<void(Observation&&)>& visit);

// Reads a whole observation file (memory-mapped). `note`, if given, receives a line about a torn tail.
std::vector<Observation> read_observations(const std::string& path, std::string* note = nullptr);

// The recorded tensors of one split (by fingerprint), one row per image, keyed by the image's index in the edge's
// test set: `splitleak edge` numbers each request by the index of its first image, so row r of request id i is
// image i + r. Warm-up requests (ids from 2^62 on) are left out; an image recorded more than once keeps its first
// record. Each value is [1, ...] (one image).
std::map<int64_t, Tensor> observed_images(const std::vector<Observation>& obs, const std::string& fingerprint);

}  // namespace sl::runtime
