// The cloud server: runs the tail of a deployed split for any number of concurrent edges.
//
// Network threads (asio) read frames, check them and queue requests; one compute thread takes what is queued
// (grouped by split, up to a batch size, waiting at most `batch_wait_us` for more), records the batch, runs the
// tail once and hands each edge its rows. Bounded everywhere: connections, requests in flight per connection
// (beyond that the server stops reading and TCP pushes back), bytes held for requests (a global budget), every
// length read from the network, and time (handshake, idle, mid-frame and write deadlines).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/deploy.h"
#include "runtime/tls.h"

namespace sl::runtime {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port (see CloudServer::port)
  TlsConfig tls;      // empty: plain TCP
  std::string name = "splitleak-cloud";
  Device device = Device::cpu();  // where the tail runs (the Deployment must already be there)
  std::string record_path;        // append every received tensor here (empty: no recording)
  double record_sync_s = 1;       // fdatasync the recording at least this often (0: after every batch)
  int io_threads = 1;
  int compute_threads = 0;  // OpenMP threads of the tail (0: OpenMP's default)
  int max_connections = 256;
  int max_inflight = 16;      // requests read per connection before their answers are written
  int max_rows = 64;          // images per request
  int max_batch_rows = 64;    // images per tail batch
  int64_t batch_wait_us = 0;  // after the first request of a batch, wait this long for more (0: take what is queued)
  int64_t memory_budget = 256 << 20;  // bytes of request data held at once (all connections)
  double handshake_timeout_s = 10;    // TLS handshake and HELLO
  double idle_timeout_s = 300;        // no frame at all
  double io_timeout_s = 10;           // a frame started must be complete, a write must finish
  double drain_timeout_s = 10;        // on shutdown, time to finish in-flight requests
  bool log = true;                    // one line per refused or failed connection on stderr (rate-limited)
};

class CloudServer {
 public:
  // Binds and listens (IoError when the address is taken); serves after start() or run().
  CloudServer(Deployment cloud, ServerOptions opt);
  ~CloudServer();
  CloudServer(const CloudServer&) = delete;
  CloudServer& operator=(const CloudServer&) = delete;

  uint16_t port() const;

  // Serves until a graceful stop: SIGINT/SIGTERM (when `signals`) or stop(). SIGUSR1 prints the stats line on
  // stderr. Returns when every connection has closed (or the drain deadline passed).
  void run(bool signals);
  // The same on background threads; stop() drains, wait() joins.
  void start();
  void stop();
  void wait();

  nlohmann::json stats() const;  // metrics: connections, requests, errors, bytes, latency, batches, memory
  std::string stats_line() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sl::runtime
