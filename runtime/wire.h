// The edge-cloud wire format (docs/wire-protocol.md is the full specification): frames of a 24-byte header and a
// payload, every length bounded before anything is allocated, every frame checked by CRC-32.
//
//   offset 0  4  magic "SPLW"
//          4  2  u16 protocol version (1)
//          6  2  u16 frame type
//          8  8  u64 request id
//         16  4  u32 payload length
//         20  4  u32 CRC-32 (IEEE, as zlib) of header bytes 0..19, then of the payload
// Integers are little-endian; strings are a u32 byte count then the bytes; tensors use tensor/serialize.h.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tensor/serialize.h"

namespace sl::wire {

constexpr uint8_t kMagic[4] = {'S', 'P', 'L', 'W'};
constexpr uint16_t kVersion = 1;
constexpr size_t kHeaderBytes = 24;
constexpr uint32_t kMaxHandshakePayload = 64 * 1024;  // any frame before WELCOME, and every control frame
constexpr uint32_t kMaxNameBytes = 256;               // edge/server names, fingerprints, split names
constexpr uint32_t kMaxMessageBytes = 4096;           // error and bye texts
constexpr uint32_t kMaxStatsBytes = 1 << 20;          // the STATS JSON
constexpr uint32_t kMaxSplits = 64;                   // fingerprints in a HELLO, splits in a WELCOME

enum class FrameType : uint16_t {
  Hello = 1,         // edge -> cloud: who I am, which splits I can run
  Welcome = 2,       // cloud -> edge: the splits both sides share, the limits
  Request = 3,       // edge -> cloud: one intermediate tensor (rows = images)
  Response = 4,      // cloud -> edge: the tail's output for a request
  Error = 5,         // either way: code + text (request id 0: about the connection, which then closes)
  StatsRequest = 6,  // edge -> cloud: send me your metrics (allowed before HELLO)
  Stats = 7,         // cloud -> edge: metrics as one JSON object
  Bye = 8,           // either way: no more requests from me / I am closing
};
const char* frame_type_name(FrameType t);  // "HELLO", ...; "type N" for an unknown value

enum class ErrorCode : uint32_t {
  BadFrame = 1,             // wrong magic, CRC mismatch, malformed payload (fatal)
  UnsupportedVersion = 2,   // (fatal)
  TooLarge = 3,             // payload length over the announced limit (fatal)
  Unexpected = 4,           // a frame type not allowed at this point (fatal)
  FingerprintMismatch = 5,  // no split in common (fatal)
  UnknownSplit = 6,         // the request names a split id the WELCOME did not list
  BadTensor = 7,            // dtype or shape does not fit the split
  ShuttingDown = 8,         // the server is draining; this request was not run
  Timeout = 9,              // a read or write deadline passed (fatal)
  Internal = 10,            // the tail failed on this request
  Overloaded = 11,          // too many connections (fatal)
};
const char* error_code_name(ErrorCode c);  // "BAD_FRAME", ...
// Fatal errors close the connection after the ERROR frame.
bool is_fatal(ErrorCode c);

// A protocol violation: what to tell the peer (code) and a one-line message naming the frame and offset.
struct ProtocolError : IoError {
  ErrorCode code;
  ProtocolError(ErrorCode c, const std::string& msg) : IoError(msg), code(c) {}
};

// An ERROR frame received from the peer.
struct RemoteError : Error {
  ErrorCode code;
  RemoteError(ErrorCode c, const std::string& msg) : Error(msg), code(c) {}
};

struct FrameHeader {
  uint16_t version = kVersion;
  FrameType type = FrameType::Error;
  uint64_t request_id = 0;
  uint32_t payload_bytes = 0;
  uint32_t crc = 0;
};

// Validates magic, version, type and `payload_bytes <= max_payload` of the 24 bytes at p; ProtocolError otherwise.
// The CRC can only be checked with the payload (check_crc).
FrameHeader parse_header(const uint8_t* p, uint32_t max_payload);
void check_crc(const FrameHeader& h, const uint8_t* header, const uint8_t* payload);

// A frame under construction: reserve the header, append the payload, then finish() fills length and CRC.
class FrameBuilder {
 public:
  FrameBuilder(FrameType type, uint64_t request_id, size_t payload_hint = 0);
  Bytes& payload() { return b_; }  // append the payload to this (it already holds the 24 header bytes)
  Bytes finish();                  // the complete frame

 private:
  Bytes b_;
};

// ---- messages ----------------------------------------------------------------------------------------------
struct Hello {
  std::string edge_name;
  std::vector<std::string> fingerprints;  // the splits this edge can run
};
struct WelcomeSplit {
  uint16_t split_id = 0;
  std::string fingerprint;
  std::string name;      // the layer after which the model is split ("ReLU2"; "input" = cloud-only)
  Shape sample_shape;    // the tail's input for one image, e.g. [16, 8, 8]
  uint32_t outputs = 0;  // the tail's output features per image (classes)
};
struct Welcome {
  std::string server_name;
  uint32_t max_payload = 0;   // largest REQUEST payload the server accepts
  uint32_t max_inflight = 0;  // requests it reads per connection before answering (more wait in TCP)
  uint32_t max_rows = 0;      // images per REQUEST
  std::vector<WelcomeSplit> splits;
  const WelcomeSplit* find(const std::string& fingerprint) const;
};
struct Request {
  uint16_t split_id = 0;
  Tensor input;  // float32 [rows, sample_shape...]
};
struct Response {
  uint16_t split_id = 0;
  uint32_t queue_us = 0;    // from the request's last byte read to the start of its batch
  uint32_t compute_us = 0;  // the batch's tail computation
  uint32_t batch_rows = 0;  // rows of the batch it ran in
  Tensor output;            // float32 [rows, outputs]
};
struct ErrorMsg {
  ErrorCode code = ErrorCode::Internal;
  std::string message;
};

Bytes encode_hello(const Hello& m);
Bytes encode_welcome(const Welcome& m);
Bytes encode_request(uint64_t id, const Request& m);
Bytes encode_response(uint64_t id, const Response& m);
Bytes encode_error(uint64_t id, const ErrorMsg& m);
Bytes encode_stats_request(uint64_t id);
Bytes encode_stats(uint64_t id, const std::string& json);
Bytes encode_bye(const std::string& reason);

// Decoders take the payload of a frame whose header and CRC were checked; ProtocolError(BadFrame) when malformed.
Hello decode_hello(const uint8_t* p, size_t n);
Welcome decode_welcome(const uint8_t* p, size_t n);
// `max_bytes` bounds the tensor's data before it is allocated.
Request decode_request(const uint8_t* p, size_t n, uint64_t max_bytes = UINT64_MAX);
Response decode_response(const uint8_t* p, size_t n);
ErrorMsg decode_error(const uint8_t* p, size_t n);
std::string decode_stats(const uint8_t* p, size_t n);
std::string decode_bye(const uint8_t* p, size_t n);

// ---- a receive buffer that cuts a byte stream into frames ------------------------------------------------
// Bytes are read into space() and commit()ted; next() returns each complete, CRC-checked frame (a view into the
// buffer, valid until the next space/reserve/shrink). The buffer grows only for a frame whose header has been
// validated, and never beyond kHeaderBytes + max_payload. Only space(), reserve() and shrink() move or reallocate
// the buffer: next() may run while a read into space() is in progress, those three may not.
struct FrameView {
  FrameHeader header;
  const uint8_t* payload = nullptr;
};
class FrameAssembler {
 public:
  explicit FrameAssembler(uint32_t max_payload, size_t base_capacity = 16 * 1024);
  void set_max_payload(uint32_t m) { max_payload_ = m; }
  uint32_t max_payload() const { return max_payload_; }

  // Capacity the buffered partial frame needs (its full size once its header is in); reserve() grows to it.
  size_t capacity_needed() const;
  size_t capacity() const { return buf_.size(); }
  void reserve(size_t n);
  // Releases a grown buffer once it holds no frame bytes; returns the capacity freed.
  size_t shrink();

  uint8_t* space();  // where the next read may write
  size_t space_left() const { return buf_.size() - end_; }
  void commit(size_t n) { end_ += n; }

  // The header of the buffered frame once its 24 bytes are in (validated; ProtocolError otherwise).
  std::optional<FrameHeader> peek_header() const;
  // The next complete frame; ProtocolError for a bad header or CRC (the stream is then unusable).
  std::optional<FrameView> next();
  bool frame_complete() const;                        // next() would return a frame (or throw)
  bool has_partial() const { return end_ > begin_; }  // bytes of an unfinished frame are buffered
  size_t buffered() const { return end_ - begin_; }

 private:
  Bytes buf_;
  size_t base_;
  size_t begin_ = 0, end_ = 0;
  uint32_t max_payload_;
};

// Decodes a byte stream as a peer would: cut into frames (fed in pieces of `chunk` bytes, limit `max_payload`),
// each payload decoded by its type. Returns the frames decoded; ProtocolError at the first bad one. For the fuzz
// target and tests: every input must end in a frame count or an sl::Error, nothing else.
size_t decode_stream(const uint8_t* data, size_t size, size_t chunk, uint32_t max_payload);

}  // namespace sl::wire
