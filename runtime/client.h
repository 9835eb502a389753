// A connection from an edge to a cloud server: connect (TCP, or mutual TLS 1.3), HELLO/WELCOME, then frames.
// Every operation has a deadline; a peer that does not answer in time is an IoError, never a hang.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/tls.h"
#include "runtime/wire.h"

namespace sl::runtime {

struct ClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  TlsConfig tls;                 // empty: plain TCP
  double connect_timeout_s = 5;  // TCP connect + TLS handshake + HELLO/WELCOME
  double io_timeout_s = 30;      // any one send, and the wait for any one answer
};

// Thrown when a deadline passes.
struct TimeoutError : IoError {
  using IoError::IoError;
};

class CloudClient {
 public:
  // Connects (and completes the TLS handshake): IoError naming the address and the reason when it fails.
  explicit CloudClient(const ClientOptions& opt);
  ~CloudClient();
  CloudClient(const CloudClient&) = delete;
  CloudClient& operator=(const CloudClient&) = delete;
  CloudClient(CloudClient&&) noexcept;
  CloudClient& operator=(CloudClient&&) noexcept;

  // HELLO with the fingerprints of the splits this edge runs; WELCOME back, or RemoteError (e.g.
  // FINGERPRINT_MISMATCH, with the cloud's explanation).
  wire::Welcome hello(const std::string& edge_name, const std::vector<std::string>& fingerprints);

  void send(const Bytes& frame);

  struct Incoming {
    wire::FrameType type = wire::FrameType::Error;
    uint64_t request_id = 0;
    size_t bytes = 0;         // the frame's size on the wire
    wire::Response response;  // RESPONSE
    wire::ErrorMsg error;     // ERROR
    std::string text;         // STATS (JSON) or BYE (reason)
  };
  // The next frame from the cloud; TimeoutError after io_timeout_s; IoError when the connection closes.
  Incoming receive();
  // Sends `frame` and waits for the answer to `request_id` (other frames in between are an error).
  Incoming call(const Bytes& frame, uint64_t request_id);

  // STATS_REQUEST -> the server's metrics (JSON text); allowed before hello().
  std::string stats();
  void bye();  // tells the cloud no more requests follow (best effort)

  uint64_t bytes_sent() const;
  uint64_t bytes_received() const;
  std::string server_identity() const;  // the server certificate's common name (TLS), else ""
  std::string address() const;          // "host:port"
  const wire::Welcome& welcome() const;

  struct Impl;
  Impl& impl() { return *impl_; }  // for the asynchronous edge runner (runtime/edge.cpp)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sl::runtime
