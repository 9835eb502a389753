#include "runtime/wire.h"

#include <algorithm>
#include <cstring>

#include "tensor/io.h"  // crc32

namespace sl::wire {

const char* frame_type_name(FrameType t) {
  switch (t) {
    case FrameType::Hello:
      return "HELLO";
    case FrameType::Welcome:
      return "WELCOME";
    case FrameType::Request:
      return "REQUEST";
    case FrameType::Response:
      return "RESPONSE";
    case FrameType::Error:
      return "ERROR";
    case FrameType::StatsRequest:
      return "STATS_REQUEST";
    case FrameType::Stats:
      return "STATS";
    case FrameType::Bye:
      return "BYE";
  }
  return "unknown";
}

const char* error_code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::BadFrame:
      return "BAD_FRAME";
    case ErrorCode::UnsupportedVersion:
      return "UNSUPPORTED_VERSION";
    case ErrorCode::TooLarge:
      return "TOO_LARGE";
    case ErrorCode::Unexpected:
      return "UNEXPECTED";
    case ErrorCode::FingerprintMismatch:
      return "FINGERPRINT_MISMATCH";
    case ErrorCode::UnknownSplit:
      return "UNKNOWN_SPLIT";
    case ErrorCode::BadTensor:
      return "BAD_TENSOR";
    case ErrorCode::ShuttingDown:
      return "SHUTTING_DOWN";
    case ErrorCode::Timeout:
      return "TIMEOUT";
    case ErrorCode::Internal:
      return "INTERNAL";
    case ErrorCode::Overloaded:
      return "OVERLOADED";
  }
  return "UNKNOWN_ERROR";
}

bool is_fatal(ErrorCode c) {
  switch (c) {
    case ErrorCode::UnknownSplit:
    case ErrorCode::BadTensor:
    case ErrorCode::ShuttingDown:
    case ErrorCode::Internal:
      return false;
    default:
      return true;
  }
}

namespace {

uint32_t rd32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
uint64_t rd64(const uint8_t* p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }

void wr32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}

// Runs a payload decoder, turning its IoError (truncation, bad tensor header, trailing bytes) into BAD_FRAME.
template <class Fn>
auto decoding(const char* what, Fn&& fn) {
  try {
    return fn();
  } catch (const ProtocolError&) {
    throw;
  } catch (const IoError& e) {
    throw ProtocolError(ErrorCode::BadFrame, e.what());
  } catch (const ValueError& e) {
    throw ProtocolError(ErrorCode::BadFrame, str(what, " payload: ", e.what()));
  }
}

void put_shape(Bytes& b, const Shape& s) {
  put_uint(b, s.rank(), 1);
  for (auto d : s.dims()) put_uint(b, uint64_t(d), 8);
}

Shape read_shape(ByteReader& r) {
  size_t at = r.pos();
  uint64_t rank = r.u8("shape rank");
  if (rank > uint64_t(kMaxTensorRank)) r.fail(str("shape rank ", rank, " (at most ", kMaxTensorRank, ")"), at);
  std::vector<int64_t> dims;
  for (uint64_t i = 0; i < rank; ++i) {
    at = r.pos();
    uint64_t d = r.u64("shape dimension");
    if (d == 0 || d > (uint64_t(1) << 31)) r.fail(str("shape dimension ", int64_t(d), " out of range"), at);
    dims.push_back(int64_t(d));
  }
  return Shape(dims);
}

}  // namespace

// ---- header --------------------------------------------------------------------------------------------------
FrameHeader parse_header(const uint8_t* p, uint32_t max_payload) {
  if (std::memcmp(p, kMagic, 4) != 0)
    throw ProtocolError(ErrorCode::BadFrame, str("not a splitleak frame: magic bytes ", int(p[0]), ",", int(p[1]), ",",
                                                 int(p[2]), ",", int(p[3]), " (expected \"SPLW\") at byte offset 0"));
  FrameHeader h;
  h.version = rd16(p + 4);
  if (h.version != kVersion)
    throw ProtocolError(ErrorCode::UnsupportedVersion,
                        str("frame of protocol version ", h.version, "; this build speaks version ", kVersion));
  uint16_t type = rd16(p + 6);
  if (type < 1 || type > 8)
    throw ProtocolError(ErrorCode::BadFrame, str("unknown frame type ", type, " at byte offset 6"));
  h.type = FrameType(type);
  h.request_id = rd64(p + 8);
  h.payload_bytes = rd32(p + 16);
  h.crc = rd32(p + 20);
  if (h.payload_bytes > max_payload)
    throw ProtocolError(ErrorCode::TooLarge, str(frame_type_name(h.type), " frame declares a payload of ",
                                                 h.payload_bytes, " bytes (the limit is ", max_payload, ")"));
  return h;
}

void check_crc(const FrameHeader& h, const uint8_t* header, const uint8_t* payload) {
  uint32_t c = io::crc32(payload, h.payload_bytes, io::crc32(header, 20));
  if (c != h.crc)
    throw ProtocolError(ErrorCode::BadFrame, str(frame_type_name(h.type), " frame (request ", h.request_id,
                                                 "): CRC mismatch (header says ", h.crc, ", computed ", c, ")"));
}

FrameBuilder::FrameBuilder(FrameType type, uint64_t request_id, size_t payload_hint) {
  b_.reserve(kHeaderBytes + payload_hint);
  b_.resize(kHeaderBytes);  // length and CRC (bytes 16..23) are filled by finish()
  uint8_t* h = b_.data();
  for (int i = 0; i < 4; ++i) h[i] = kMagic[i];
  h[4] = uint8_t(kVersion);
  h[5] = uint8_t(kVersion >> 8);
  h[6] = uint8_t(uint16_t(type));
  h[7] = uint8_t(uint16_t(type) >> 8);
  for (int i = 0; i < 8; ++i) h[8 + i] = uint8_t(request_id >> (8 * i));
}

Bytes FrameBuilder::finish() {
  size_t n = b_.size() - kHeaderBytes;
  SL_CHECK(n <= UINT32_MAX, ValueError, "frame payload of ", n, " bytes is too large");
  wr32(b_.data() + 16, uint32_t(n));
  wr32(b_.data() + 20, io::crc32(b_.data() + kHeaderBytes, n, io::crc32(b_.data(), 20)));
  return std::move(b_);
}

// ---- messages -----------------------------------------------------------------------------------------------
const WelcomeSplit* Welcome::find(const std::string& fingerprint) const {
  for (auto& s : splits)
    if (s.fingerprint == fingerprint) return &s;
  return nullptr;
}

Bytes encode_hello(const Hello& m) {
  SL_CHECK(!m.fingerprints.empty() && m.fingerprints.size() <= kMaxSplits, ValueError, "a HELLO carries 1 to ",
           kMaxSplits, " fingerprints, not ", m.fingerprints.size());
  FrameBuilder f(FrameType::Hello, 0);
  put_string(f.payload(), to_text(m.edge_name, kMaxNameBytes), kMaxNameBytes);
  put_uint(f.payload(), m.fingerprints.size(), 4);
  for (auto& fp : m.fingerprints) put_string(f.payload(), fp, kMaxNameBytes);
  return f.finish();
}

Hello decode_hello(const uint8_t* p, size_t n) {
  return decoding("HELLO", [&] {
    ByteReader r(p, n, "HELLO payload");
    Hello m;
    m.edge_name = r.text("edge name", kMaxNameBytes);
    size_t at = r.pos();
    uint32_t count = r.u32("fingerprint count");
    if (count == 0 || count > kMaxSplits) r.fail(str("fingerprint count ", count, " (1 to ", kMaxSplits, ")"), at);
    for (uint32_t i = 0; i < count; ++i) m.fingerprints.push_back(r.text("fingerprint", kMaxNameBytes));
    r.expect_end("the fingerprints");
    return m;
  });
}

Bytes encode_welcome(const Welcome& m) {
  SL_CHECK(m.splits.size() <= kMaxSplits, ValueError, "too many splits for a WELCOME: ", m.splits.size());
  FrameBuilder f(FrameType::Welcome, 0);
  Bytes& b = f.payload();
  put_string(b, to_text(m.server_name, kMaxNameBytes), kMaxNameBytes);
  put_uint(b, m.max_payload, 4);
  put_uint(b, m.max_inflight, 4);
  put_uint(b, m.max_rows, 4);
  put_uint(b, m.splits.size(), 4);
  for (auto& s : m.splits) {
    put_uint(b, s.split_id, 2);
    put_string(b, s.fingerprint, kMaxNameBytes);
    put_string(b, s.name, kMaxNameBytes);
    put_shape(b, s.sample_shape);
    put_uint(b, s.outputs, 4);
  }
  return f.finish();
}

Welcome decode_welcome(const uint8_t* p, size_t n) {
  return decoding("WELCOME", [&] {
    ByteReader r(p, n, "WELCOME payload");
    Welcome m;
    m.server_name = r.text("server name", kMaxNameBytes);
    m.max_payload = r.u32("max payload");
    m.max_inflight = r.u32("max in flight");
    m.max_rows = r.u32("max rows");
    size_t at = r.pos();
    uint32_t count = r.u32("split count");
    if (count > kMaxSplits) r.fail(str("split count ", count, " (at most ", kMaxSplits, ")"), at);
    for (uint32_t i = 0; i < count; ++i) {
      WelcomeSplit s;
      s.split_id = r.u16("split id");
      s.fingerprint = r.text("fingerprint", kMaxNameBytes);
      s.name = r.text("split name", kMaxNameBytes);
      s.sample_shape = read_shape(r);
      s.outputs = r.u32("outputs");
      m.splits.push_back(std::move(s));
    }
    r.expect_end("the splits");
    return m;
  });
}

Bytes encode_request(uint64_t id, const Request& m) {
  FrameBuilder f(FrameType::Request, id, 4 + encoded_tensor_size(m.input));
  put_uint(f.payload(), m.split_id, 2);
  put_uint(f.payload(), 0, 2);  // flags
  put_tensor(f.payload(), m.input);
  return f.finish();
}

Request decode_request(const uint8_t* p, size_t n, uint64_t max_bytes) {
  return decoding("REQUEST", [&] {
    ByteReader r(p, n, "REQUEST payload");
    Request m;
    m.split_id = r.u16("split id");
    size_t at = r.pos();
    if (uint16_t flags = r.u16("flags"); flags != 0) r.fail(str("unknown flags ", flags), at);
    TensorLimits lim;
    lim.max_bytes = max_bytes;
    m.input = r.tensor("input", lim);
    r.expect_end("the tensor");
    return m;
  });
}

Bytes encode_response(uint64_t id, const Response& m) {
  FrameBuilder f(FrameType::Response, id, 16 + encoded_tensor_size(m.output));
  Bytes& b = f.payload();
  put_uint(b, m.split_id, 2);
  put_uint(b, 0, 2);
  put_uint(b, m.queue_us, 4);
  put_uint(b, m.compute_us, 4);
  put_uint(b, m.batch_rows, 4);
  put_tensor(b, m.output);
  return f.finish();
}

Response decode_response(const uint8_t* p, size_t n) {
  return decoding("RESPONSE", [&] {
    ByteReader r(p, n, "RESPONSE payload");
    Response m;
    m.split_id = r.u16("split id");
    size_t at = r.pos();
    if (uint16_t flags = r.u16("flags"); flags != 0) r.fail(str("unknown flags ", flags), at);
    m.queue_us = r.u32("queue time");
    m.compute_us = r.u32("compute time");
    m.batch_rows = r.u32("batch rows");
    m.output = r.tensor("output");
    r.expect_end("the tensor");
    return m;
  });
}

Bytes encode_error(uint64_t id, const ErrorMsg& m) {
  FrameBuilder f(FrameType::Error, id);
  put_uint(f.payload(), uint32_t(m.code), 4);
  put_string(f.payload(), to_text(m.message, kMaxMessageBytes), kMaxMessageBytes);
  return f.finish();
}

ErrorMsg decode_error(const uint8_t* p, size_t n) {
  return decoding("ERROR", [&] {
    ByteReader r(p, n, "ERROR payload");
    ErrorMsg m;
    m.code = ErrorCode(r.u32("error code"));
    m.message = r.text("error text", kMaxMessageBytes);
    r.expect_end("the text");
    return m;
  });
}

Bytes encode_stats_request(uint64_t id) { return FrameBuilder(FrameType::StatsRequest, id).finish(); }

Bytes encode_stats(uint64_t id, const std::string& json) {
  FrameBuilder f(FrameType::Stats, id, 4 + json.size());
  put_string(f.payload(), json, kMaxStatsBytes);
  return f.finish();
}

std::string decode_stats(const uint8_t* p, size_t n) {
  return decoding("STATS", [&] {
    ByteReader r(p, n, "STATS payload");
    std::string s = r.text("stats JSON", kMaxStatsBytes);
    r.expect_end("the JSON");
    return s;
  });
}

Bytes encode_bye(const std::string& reason) {
  FrameBuilder f(FrameType::Bye, 0);
  put_string(f.payload(), to_text(reason, kMaxMessageBytes), kMaxMessageBytes);
  return f.finish();
}

std::string decode_bye(const uint8_t* p, size_t n) {
  return decoding("BYE", [&] {
    ByteReader r(p, n, "BYE payload");
    std::string s = r.text("reason", kMaxMessageBytes);
    r.expect_end("the reason");
    return s;
  });
}

// ---- FrameAssembler -------------------------------------------------------------------------------------------
FrameAssembler::FrameAssembler(uint32_t max_payload, size_t base_capacity)
    : buf_(std::max(base_capacity, kHeaderBytes)), base_(buf_.size()), max_payload_(max_payload) {}

size_t FrameAssembler::capacity_needed() const {
  if (buffered() < kHeaderBytes) return base_;
  FrameHeader h = parse_header(buf_.data() + begin_, max_payload_);
  return std::max(base_, kHeaderBytes + size_t(h.payload_bytes));
}

void FrameAssembler::reserve(size_t n) {
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, buffered());
    end_ -= begin_;
    begin_ = 0;
  }
  if (n > buf_.size()) buf_.resize(n);
}

size_t FrameAssembler::shrink() {
  if (buf_.size() <= base_ || buffered() > base_ || capacity_needed() > base_) return 0;
  size_t freed = buf_.size() - base_;
  Bytes small(base_);
  std::memcpy(small.data(), buf_.data() + begin_, buffered());
  end_ = buffered();
  begin_ = 0;
  buf_.swap(small);
  return freed;
}

uint8_t* FrameAssembler::space() {
  // Move a partial frame to the front when the room behind it is too small for the rest of it.
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (begin_ > 0 && (buf_.size() - begin_ < capacity_needed() || space_left() < kHeaderBytes)) {
    std::memmove(buf_.data(), buf_.data() + begin_, buffered());
    end_ -= begin_;
    begin_ = 0;
  }
  return buf_.data() + end_;
}

std::optional<FrameHeader> FrameAssembler::peek_header() const {
  if (buffered() < kHeaderBytes) return std::nullopt;
  return parse_header(buf_.data() + begin_, max_payload_);
}

bool FrameAssembler::frame_complete() const {
  auto h = peek_header();
  return h && buffered() >= kHeaderBytes + h->payload_bytes;
}

std::optional<FrameView> FrameAssembler::next() {
  if (buffered() < kHeaderBytes) return std::nullopt;
  const uint8_t* p = buf_.data() + begin_;
  FrameHeader h = parse_header(p, max_payload_);
  size_t total = kHeaderBytes + h.payload_bytes;
  if (buffered() < total) return std::nullopt;
  check_crc(h, p, p + kHeaderBytes);
  begin_ += total;  // nothing moves here: a read may be in progress behind end_
  return FrameView{h, p + kHeaderBytes};
}

size_t decode_stream(const uint8_t* data, size_t size, size_t chunk, uint32_t max_payload) {
  FrameAssembler in(max_payload, 64);
  size_t fed = 0, frames = 0;
  chunk = std::max<size_t>(chunk, 1);
  while (fed < size) {
    size_t need = in.capacity_needed();
    if (need > in.capacity()) in.reserve(need);
    uint8_t* dst = in.space();
    size_t n = std::min({chunk, size - fed, in.space_left()});
    std::memcpy(dst, data + fed, n);
    in.commit(n);
    fed += n;
    while (auto f = in.next()) {
      const uint8_t* p = f->payload;
      size_t len = f->header.payload_bytes;
      switch (f->header.type) {
        case FrameType::Hello:
          decode_hello(p, len);
          break;
        case FrameType::Welcome:
          decode_welcome(p, len);
          break;
        case FrameType::Request:
          decode_request(p, len, len);
          break;
        case FrameType::Response:
          decode_response(p, len);
          break;
        case FrameType::Error:
          decode_error(p, len);
          break;
        case FrameType::StatsRequest:
          break;
        case FrameType::Stats:
          decode_stats(p, len);
          break;
        case FrameType::Bye:
          decode_bye(p, len);
          break;
      }
      ++frames;
    }
    in.shrink();
  }
  return frames;
}

}  // namespace sl::wire
