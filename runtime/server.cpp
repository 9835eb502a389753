#include "runtime/server.h"

#include <omp.h>

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "autograd/node.h"
#include "runtime/metrics.h"
#include "runtime/net.h"
#include "runtime/observations.h"
#include "runtime/wire.h"

namespace sl::runtime {

using namespace net;
using wire::ErrorCode;
using wire::FrameType;

namespace {

constexpr int64_t kNever = INT64_MAX;
constexpr size_t kMaxQueuedWriteBytes = 1 << 20;  // beyond this a connection is not read until its writes drain
constexpr size_t kMaxFramesPerWrite = 64;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}
int64_t unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
int64_t ns(double seconds) { return int64_t(seconds * 1e9); }

// One line on stderr per event, at most 20 a second (a hostile peer cannot flood the log).
class RateLimitedLog {
 public:
  explicit RateLimitedLog(bool on) : on_(on) {}
  void line(const std::string& s) {
    if (!on_) return;
    std::lock_guard<std::mutex> lk(mu_);
    int64_t t = now_ns();
    if (t - window_ > ns(1)) {
      if (suppressed_) std::fprintf(stderr, "serve: (%d more lines suppressed)\n", suppressed_);
      window_ = t;
      count_ = suppressed_ = 0;
    }
    if (++count_ > 20) {
      ++suppressed_;
      return;
    }
    std::fprintf(stderr, "serve: %s\n", s.c_str());
  }

 private:
  bool on_;
  std::mutex mu_;
  int64_t window_ = 0;
  int count_ = 0, suppressed_ = 0;
};

struct Stats {
  int64_t started_ns = now_ns();
  std::atomic<uint64_t> accepted{0}, active{0}, refused_overload{0}, tls_refused{0}, hellos{0}, timeouts{0},
      dropped_mid_frame{0};
  std::atomic<uint64_t> requests{0}, images{0}, responses{0}, bytes_in{0}, bytes_out{0};
  std::array<std::atomic<uint64_t>, 16> errors{};
  std::atomic<uint64_t> batches{0}, batch_rows{0}, batch_rows_max{0};
  std::atomic<uint64_t> recorded{0}, record_errors{0};
  LatencyHistogram latency, queue, compute;
};

}  // namespace

// ---- the server's shared state ------------------------------------------------------------------------------
class ConnBase;

struct Job {
  std::shared_ptr<ConnBase> conn;
  uint64_t request_id = 0;
  uint16_t split = 0;
  Tensor input;
  int64_t rows = 0;
  int64_t received_ns = 0, received_unix_ns = 0;
  int64_t budget = 0;
};

class ConnBase : public std::enable_shared_from_this<ConnBase> {
 public:
  virtual ~ConnBase() = default;
  virtual void start() = 0;
  // From the compute thread: a response frame for one in-flight request; `budget` is released once written.
  virtual void deliver(Bytes frame, int64_t budget) = 0;
  virtual void begin_drain() = 0;
  virtual void check_deadline(int64_t now) = 0;
  virtual void force_close() = 0;
  virtual void resume() = 0;  // budget freed: try again
  virtual asio::any_io_executor executor() = 0;
  uint64_t id = 0;
  std::string peer;
  std::string edge;  // who: the TLS certificate's name or the HELLO's, and the address
};

struct CloudServer::Impl {
  Deployment dep;
  ServerOptions opt;
  std::vector<SplitPipeline> tails;     // per split (index = split id): the cloud's side, the tail only
  std::vector<uint32_t> split_payload;  // largest REQUEST payload per split
  asio::io_context io;
  std::optional<asio::ssl::context> tls;
  tcp::acceptor acceptor{io};
  asio::steady_timer sweeper{io};
  std::optional<asio::signal_set> signals;
  std::vector<std::thread> io_threads;
  std::thread compute_thread;
  Stats st;
  RateLimitedLog log;
  std::unique_ptr<ObservationWriter> recorder;
  int64_t last_sync_ns = 0;

  // connections
  std::mutex reg_mu;
  std::map<uint64_t, std::weak_ptr<ConnBase>> conns;
  uint64_t next_id = 1;

  // request memory: bytes of request data held, against the budget; connections waiting for room
  std::mutex budget_mu;
  int64_t budget_used = 0, budget_peak = 0;
  std::vector<std::weak_ptr<ConnBase>> budget_waiters;

  // the compute queue
  std::mutex q_mu;
  std::condition_variable q_cv;
  std::deque<Job> queue;
  bool q_stop = false;
  std::atomic<int64_t> pending_jobs{0};

  // shutdown
  std::atomic<bool> draining{false};
  int64_t drain_deadline = kNever;
  bool forced = false;
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  bool started = false;
  uint16_t port = 0;

  Impl(Deployment d, ServerOptions o) : dep(std::move(d)), opt(std::move(o)), log(opt.log) {}

  // budget
  bool take(int64_t n, const std::shared_ptr<ConnBase>& waiter) {
    std::lock_guard<std::mutex> lk(budget_mu);
    if (budget_used > 0 && budget_used + n > opt.memory_budget) {
      if (waiter) budget_waiters.push_back(waiter);
      return false;
    }
    budget_used += n;
    budget_peak = std::max(budget_peak, budget_used);
    return true;
  }
  void give(int64_t n) {
    if (n <= 0) return;
    std::vector<std::weak_ptr<ConnBase>> wake;
    {
      std::lock_guard<std::mutex> lk(budget_mu);
      budget_used -= n;
      wake.swap(budget_waiters);
    }
    for (auto& w : wake)
      if (auto s = w.lock()) s->resume();
  }

  void submit(Job&& j) {
    pending_jobs.fetch_add(1);
    {
      std::lock_guard<std::mutex> lk(q_mu);
      queue.push_back(std::move(j));
    }
    q_cv.notify_one();
  }

  void unregister(uint64_t id) {
    std::lock_guard<std::mutex> lk(reg_mu);
    conns.erase(id);
    st.active.fetch_sub(1);
  }

  std::vector<std::shared_ptr<ConnBase>> live_conns() {
    std::vector<std::shared_ptr<ConnBase>> v;
    std::lock_guard<std::mutex> lk(reg_mu);
    for (auto& [id, w] : conns)
      if (auto s = w.lock()) v.push_back(s);
    return v;
  }

  void do_accept();
  void on_tick();
  void compute_loop();
  void run_batch(std::vector<Job>& batch);
  void begin_stop();
  void finish();
  nlohmann::json stats_json();
  std::string stats_line();
};

// ---- one connection -------------------------------------------------------------------------------------------
template <class Stream>
class Conn : public ConnBase {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;

  Conn(CloudServer::Impl& srv, Stream stream)
      : srv_(srv), stream_(std::move(stream)), in_(wire::kMaxHandshakePayload) {}

  void start() override {
    hello_deadline_ = now_ns() + ns(srv_.opt.handshake_timeout_s);
    read_deadline_ = hello_deadline_;
    auto self = shared();
    if constexpr (kTls) {
      stream_.async_handshake(asio::ssl::stream_base::server, [self](const asio::error_code& ec) {
        if (self->closed_) return;
        if (ec) {
          self->srv_.st.tls_refused.fetch_add(1);
          std::string why = tls_error_text(ec);
          if (why.find("wrong version number") != std::string::npos || why.find("http request") != std::string::npos)
            why += " (the peer does not speak TLS)";
          self->srv_.log.line(str("connection ", self->id, " from ", self->peer, ": TLS handshake refused: ", why));
          self->close();
          return;
        }
        self->cert_name_ = to_text(peer_common_name(self->stream_.native_handle()), 200);
        self->do_read();
      });
    } else {
      do_read();
    }
  }

  void deliver(Bytes frame, int64_t budget) override {
    auto self = shared();
    asio::post(stream_.get_executor(), [self, f = std::move(frame), budget]() mutable {
      if (self->closed_) {
        --self->inflight_;
        self->srv_.give(budget);
        return;
      }
      self->enqueue(std::move(f), budget, true);
    });
  }

  void begin_drain() override {
    auto self = shared();
    asio::post(stream_.get_executor(), [self] {
      self->draining_ = true;
      self->maybe_finish();
    });
  }

  void check_deadline(int64_t now) override {
    if (now <= read_deadline_.load() && now <= write_deadline_.load()) return;
    auto self = shared();
    asio::post(stream_.get_executor(), [self] {
      int64_t t = now_ns();
      if (self->closed_ || (t <= self->read_deadline_.load() && t <= self->write_deadline_.load())) return;
      if (self->lingering_) return self->close();
      bool writing = t > self->write_deadline_.load();
      self->srv_.st.timeouts.fetch_add(1);
      self->srv_.st.errors[size_t(ErrorCode::Timeout)].fetch_add(1);
      self->srv_.log.line(str("connection ", self->id, " (", self->who(), "): cut off: ",
                              writing                   ? "not reading its responses"
                              : !self->hello_           ? "no HELLO in time"
                              : self->in_.has_partial() ? "frame not completed in time"
                                                        : "idle too long"));
      self->close();
    });
  }

  asio::any_io_executor executor() override { return stream_.get_executor(); }

  void force_close() override {
    auto self = shared();
    asio::post(stream_.get_executor(), [self] { self->close(); });
  }

  void resume() override {
    auto self = shared();
    asio::post(stream_.get_executor(), [self] {
      if (self->closed_ || !self->waiting_budget_) return;
      self->waiting_budget_ = false;
      self->process();
      self->do_read();
    });
  }

 private:
  struct Out {
    Bytes frame;
    int64_t budget = 0;
    bool response = false;
  };

  std::shared_ptr<Conn> shared() { return std::static_pointer_cast<Conn>(shared_from_this()); }
  tcp::socket& sock() {
    if constexpr (kTls)
      return stream_.next_layer();
    else
      return stream_;
  }
  std::string who() const { return edge.empty() ? peer : edge; }

  void do_read() {
    if (closed_ || reading_ || stop_reading_ || waiting_budget_) return;
    if (inflight_ >= srv_.opt.max_inflight || queued_bytes_ > kMaxQueuedWriteBytes) return;  // resumed by on_write
    size_t need = 0;
    try {
      need = in_.capacity_needed();
    } catch (const wire::ProtocolError& e) {
      return fatal(e.code, e.what());
    }
    if (need > in_.capacity()) {  // a large frame: its buffer comes out of the budget
      int64_t extra = int64_t(need - in_.capacity());
      if (!srv_.take(extra, shared())) {
        waiting_budget_ = true;
        return;
      }
      held_buffer_ += extra;
      in_.reserve(need);
    }
    int64_t now = now_ns();
    read_deadline_ = !hello_             ? hello_deadline_
                     : in_.has_partial() ? frame_started_ + ns(srv_.opt.io_timeout_s)
                     : draining_         ? kNever
                                         : now + ns(srv_.opt.idle_timeout_s);
    reading_ = true;
    auto self = shared();
    stream_.async_read_some(asio::buffer(in_.space(), in_.space_left()),
                            [self](const asio::error_code& ec, size_t n) { self->on_read(ec, n); });
  }

  void on_read(const asio::error_code& ec, size_t n) {
    reading_ = false;
    if (closed_) return;
    if (lingering_) {  // after a fatal error or BYE: drop what still arrives until the peer closes
      if (ec) return close();
      return discard();
    }
    if (ec) {
      if (in_.has_partial()) {
        srv_.st.dropped_mid_frame.fetch_add(1);
        srv_.log.line(str("connection ", id, " (", who(), "): closed by the peer in the middle of a frame"));
      }
      close();
      return;
    }
    bool was_empty = !in_.has_partial();
    in_.commit(n);
    srv_.st.bytes_in.fetch_add(n, std::memory_order_relaxed);
    if (was_empty) frame_started_ = now_ns();
    process();
    do_read();
  }

  // Handles every complete frame in the buffer, as far as in-flight and budget limits allow.
  void process() {
    while (!closed_ && !stop_reading_ && !waiting_budget_) {
      if (inflight_ >= srv_.opt.max_inflight || queued_bytes_ > kMaxQueuedWriteBytes) return;
      int64_t cost = 0;
      std::optional<wire::FrameView> f;
      try {
        auto h = in_.peek_header();
        if (h && h->type != FrameType::Request && h->payload_bytes > wire::kMaxHandshakePayload)
          throw wire::ProtocolError(ErrorCode::TooLarge,
                                    str(wire::frame_type_name(h->type), " frame declares a payload of ",
                                        h->payload_bytes, " bytes (the limit is ", wire::kMaxHandshakePayload, ")"));
        if (!in_.frame_complete()) break;
        if (h->type == FrameType::Request && hello_ && !draining_) {
          cost = int64_t(h->payload_bytes);
          if (!srv_.take(cost, shared())) {
            waiting_budget_ = true;
            return;
          }
        }
        f = in_.next();
      } catch (const wire::ProtocolError& e) {
        srv_.give(cost);
        return fatal(e.code, e.what());
      }
      if (in_.has_partial()) frame_started_ = now_ns();
      handle(*f, cost);
    }
    if (held_buffer_ > 0 && !reading_) srv_.give(shrink_buffer());  // never under a read in progress
  }

  int64_t shrink_buffer() {
    int64_t freed = int64_t(in_.shrink());
    held_buffer_ -= freed;
    return freed;
  }

  void handle(const wire::FrameView& f, int64_t cost) {
    const uint8_t* p = f.payload;
    size_t n = f.header.payload_bytes;
    uint64_t rid = f.header.request_id;
    switch (f.header.type) {
      case FrameType::StatsRequest:
        enqueue(wire::encode_stats(rid, srv_.stats_json().dump()), 0, false);
        return;
      case FrameType::Hello:
        return on_hello(p, n);
      case FrameType::Request:
        return on_request(rid, p, n, cost);
      case FrameType::Bye:
        stop_reading_ = true;
        bye_received_ = true;
        maybe_finish();
        return;
      case FrameType::Error: {
        std::string text;
        try {
          auto e = wire::decode_error(p, n);
          text = str(wire::error_code_name(e.code), ": ", e.message);
        } catch (const wire::ProtocolError& e) {
          text = e.what();
        }
        srv_.log.line(str("connection ", id, " (", who(), "): the edge sent an error: ", text));
        close();
        return;
      }
      default:
        return fatal(ErrorCode::Unexpected,
                     str("a ", wire::frame_type_name(f.header.type), " frame is not something an edge sends"));
    }
  }

  void on_hello(const uint8_t* p, size_t n) {
    if (hello_) return fatal(ErrorCode::Unexpected, "a second HELLO on the same connection");
    wire::Hello h;
    try {
      h = wire::decode_hello(p, n);
    } catch (const wire::ProtocolError& e) {
      return fatal(e.code, e.what());
    }
    edge = (cert_name_.empty() ? h.edge_name : "cn=" + cert_name_) + "@" + peer;
    if (draining_) return fatal(ErrorCode::ShuttingDown, "the server is shutting down");
    wire::Welcome w;
    w.server_name = srv_.opt.name;
    w.max_inflight = uint32_t(srv_.opt.max_inflight);
    w.max_rows = uint32_t(srv_.opt.max_rows);
    accepted_.assign(srv_.dep.splits.size(), false);
    for (auto& fp : h.fingerprints)
      for (size_t i = 0; i < srv_.dep.splits.size(); ++i) {
        auto& s = srv_.dep.splits[i];
        if (s.fingerprint != fp || accepted_[i]) continue;
        accepted_[i] = true;
        w.splits.push_back({uint16_t(i), s.fingerprint, s.name, s.sample_shape, uint32_t(srv_.dep.num_classes)});
        w.max_payload = std::max(w.max_payload, srv_.split_payload[i]);
      }
    if (w.splits.empty()) {
      std::string theirs, ours;
      for (auto& fp : h.fingerprints) theirs += (theirs.empty() ? "" : ", ") + fp;
      for (auto& fp : srv_.dep.fingerprints()) ours += (ours.empty() ? "" : ", ") + fp;
      return fatal(ErrorCode::FingerprintMismatch,
                   str("fingerprint mismatch: the edge '", h.edge_name, "' runs ", theirs, "; this cloud serves ", ours,
                       " (edge and cloud must come from the same `splitleak split` of the same model)"));
    }
    hello_ = true;
    srv_.st.hellos.fetch_add(1);
    in_.set_max_payload(w.max_payload);
    enqueue(wire::encode_welcome(w), 0, false);
  }

  void on_request(uint64_t rid, const uint8_t* p, size_t n, int64_t cost) {
    if (!hello_) return fatal(ErrorCode::Unexpected, "a REQUEST before HELLO");
    auto reject = [&](ErrorCode c, const std::string& msg) {
      srv_.give(cost);
      srv_.st.errors[size_t(c)].fetch_add(1);
      enqueue(wire::encode_error(rid, {c, msg}), 0, false);
    };
    if (draining_) return reject(ErrorCode::ShuttingDown, "the server is shutting down; this request was not run");
    wire::Request r;
    try {
      r = wire::decode_request(p, n, uint64_t(cost));
    } catch (const wire::ProtocolError& e) {
      srv_.give(cost);
      return fatal(e.code, str("request ", rid, ": ", e.what()));
    }
    if (r.split_id >= accepted_.size() || !accepted_[r.split_id])
      return reject(ErrorCode::UnknownSplit,
                    str("request ", rid, ": split id ", r.split_id, " was not in the WELCOME"));
    const SplitPoint& sp = srv_.dep.splits[r.split_id];
    const Shape& got = r.input.shape();
    bool ok = r.input.dtype() == DType::f32 && got.rank() == sp.sample_shape.rank() + 1 && got[0] >= 1 &&
              got[0] <= srv_.opt.max_rows;
    for (size_t i = 0; ok && i < sp.sample_shape.rank(); ++i) ok = got[i + 1] == sp.sample_shape[i];
    if (!ok)
      return reject(ErrorCode::BadTensor,
                    str("request ", rid, ": got ", dtype_name(r.input.dtype()), got.str(), "; split ", sp.name,
                        " takes float32 [1..", srv_.opt.max_rows, ", ", shape_csv(sp.sample_shape), "]"));
    ++inflight_;
    srv_.st.requests.fetch_add(1, std::memory_order_relaxed);
    Job j;
    j.conn = shared();
    j.request_id = rid;
    j.split = r.split_id;
    j.rows = got[0];
    j.input = std::move(r.input);
    j.received_ns = frame_done_ns();
    j.received_unix_ns = unix_ns();
    j.budget = cost;
    srv_.submit(std::move(j));
  }

  int64_t frame_done_ns() { return now_ns(); }

  void fatal(ErrorCode c, const std::string& msg) {
    srv_.st.errors[size_t(c)].fetch_add(1);
    srv_.log.line(str("connection ", id, " (", who(), "): ", wire::error_code_name(c), ": ", msg));
    stop_reading_ = true;
    close_after_write_ = true;
    enqueue(wire::encode_error(0, {c, msg}), 0, false);
  }

  void enqueue(Bytes frame, int64_t budget, bool response) {
    queued_bytes_ += frame.size();
    out_.push_back({std::move(frame), budget, response});
    if (!writing_) start_write();
  }

  void start_write() {
    if (closed_ || out_.empty()) return;
    std::vector<asio::const_buffer> bufs;
    size_t count = std::min(out_.size(), kMaxFramesPerWrite);
    for (size_t i = 0; i < count; ++i) bufs.push_back(asio::buffer(out_[i].frame));
    writing_ = true;
    write_deadline_ = now_ns() + ns(srv_.opt.io_timeout_s);
    auto self = shared();
    asio::async_write(stream_, bufs,
                      [self, count](const asio::error_code& ec, size_t n) { self->on_write(ec, n, count); });
  }

  void on_write(const asio::error_code& ec, size_t n, size_t count) {
    writing_ = false;
    write_deadline_ = kNever;
    if (closed_) return;
    if (ec) {
      close();
      return;
    }
    srv_.st.bytes_out.fetch_add(n, std::memory_order_relaxed);
    int64_t freed = 0;
    for (size_t i = 0; i < count; ++i) {
      Out& o = out_.front();
      queued_bytes_ -= o.frame.size();
      freed += o.budget;
      if (o.response) {
        --inflight_;
        srv_.st.responses.fetch_add(1, std::memory_order_relaxed);
      }
      out_.pop_front();
    }
    srv_.give(freed);
    if (!out_.empty()) {
      start_write();
    } else if (close_after_write_) {
      linger();
      return;
    }
    maybe_finish();
    process();
    do_read();
  }

  // Draining (server shutdown) or BYE from the edge: once nothing is in flight, say BYE and close.
  void maybe_finish() {
    if (closed_ || bye_sent_ || !(draining_ || bye_received_) || inflight_ > 0 || !out_.empty()) return;
    bye_sent_ = true;
    close_after_write_ = true;
    stop_reading_ = true;
    enqueue(wire::encode_bye(draining_ ? "the server is shutting down; requests not answered were not run" : "goodbye"),
            0, false);
  }

  // The last frame (an ERROR or BYE) is written: stop sending, and read and drop whatever the peer still sends
  // until it closes (at most a second). Closing at once would reset the connection while the peer's unread bytes
  // sit in our buffer, and the reset can destroy the last frame before the peer reads it.
  void linger() {
    if (lingering_ || closed_) return;
    lingering_ = true;
    asio::error_code ignored;
    sock().shutdown(tcp::socket::shutdown_send, ignored);
    read_deadline_ = now_ns() + std::min(ns(1), ns(srv_.opt.io_timeout_s));
    write_deadline_ = kNever;
    if (!reading_) discard();
  }

  void discard() {
    if (closed_ || reading_) return;
    reading_ = true;
    auto self = shared();
    stream_.async_read_some(asio::buffer(scratch_),
                            [self](const asio::error_code& ec, size_t n) { self->on_read(ec, n); });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    read_deadline_ = kNever;
    write_deadline_ = kNever;
    asio::error_code ignored;
    sock().shutdown(tcp::socket::shutdown_both, ignored);
    sock().close(ignored);
    int64_t freed = held_buffer_;
    held_buffer_ = 0;
    for (auto& o : out_) {
      freed += o.budget;
      if (o.response) --inflight_;
    }
    out_.clear();
    queued_bytes_ = 0;
    srv_.give(freed);
    srv_.unregister(id);
  }

  CloudServer::Impl& srv_;
  Stream stream_;
  wire::FrameAssembler in_;
  std::deque<Out> out_;
  size_t queued_bytes_ = 0;
  int64_t held_buffer_ = 0;  // budget held by a grown receive buffer
  int inflight_ = 0;         // requests read and not yet answered (written)
  bool hello_ = false, reading_ = false, writing_ = false, closed_ = false, stop_reading_ = false;
  bool close_after_write_ = false, draining_ = false, bye_received_ = false, bye_sent_ = false;
  bool waiting_budget_ = false, lingering_ = false;
  std::array<uint8_t, 4096> scratch_{};
  std::vector<bool> accepted_;  // per split id
  std::string cert_name_;
  int64_t hello_deadline_ = kNever, frame_started_ = 0;
  std::atomic<int64_t> read_deadline_{kNever}, write_deadline_{kNever};
};

// ---- accepting, deadlines, shutdown ---------------------------------------------------------------------------
void CloudServer::Impl::do_accept() {
  acceptor.async_accept(asio::make_strand(io), [this](const asio::error_code& ec, tcp::socket s) {
    if (!acceptor.is_open()) return;
    if (ec) {
      log.line(str("accept failed: ", ec.message()));
      // Out of descriptors or similar: try again a little later rather than spinning.
      auto t = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(50));
      t->async_wait([this, t](const asio::error_code&) { do_accept(); });
      return;
    }
    asio::error_code ignored;
    s.set_option(tcp::no_delay(true), ignored);
    std::string peer = "?";
    auto ep = s.remote_endpoint(ignored);
    if (!ignored) peer = endpoint_str(ep);
    st.accepted.fetch_add(1);
    std::shared_ptr<ConnBase> fresh;
    {
      std::lock_guard<std::mutex> lk(reg_mu);
      if (int(conns.size()) >= opt.max_connections || draining) {
        st.refused_overload.fetch_add(1);
        st.errors[size_t(ErrorCode::Overloaded)].fetch_add(1);
        if (!tls) {  // best effort: tell a plain-TCP peer why (non-blocking, it fits in the socket buffer)
          Bytes e = wire::encode_error(
              0, {ErrorCode::Overloaded, str("the server has ", opt.max_connections, " connections; try again later")});
          s.non_blocking(true, ignored);
          s.write_some(asio::buffer(e), ignored);
        }
        s.close(ignored);
        log.line(str("refused connection from ", peer, ": ", opt.max_connections, " connections open"));
        do_accept();
        return;
      }
      if (tls)
        fresh = std::make_shared<Conn<asio::ssl::stream<tcp::socket>>>(
            *this, asio::ssl::stream<tcp::socket>(std::move(s), *tls));
      else
        fresh = std::make_shared<Conn<tcp::socket>>(*this, std::move(s));
      fresh->id = next_id++;
      fresh->peer = peer;
      conns[fresh->id] = fresh;
      st.active.fetch_add(1);
    }
    asio::post(fresh->executor(), [fresh] { fresh->start(); });
    do_accept();
  });
}

void CloudServer::Impl::on_tick() {
  int64_t t = now_ns();
  for (auto& s : live_conns()) s->check_deadline(t);
  if (recorder && opt.record_sync_s > 0 && t - last_sync_ns > ns(opt.record_sync_s)) {
    recorder->sync();
    last_sync_ns = t;
  }
  if (draining) {
    bool empty;
    {
      std::lock_guard<std::mutex> lk(reg_mu);
      empty = conns.empty();
    }
    if (empty && pending_jobs.load() == 0) return finish();
    if (t > drain_deadline) {
      if (forced) return finish();  // a second past the forced close: stop whatever is left
      log.line("drain deadline passed: closing the remaining connections");
      for (auto& s : live_conns()) s->force_close();
      forced = true;
      drain_deadline = t + ns(1);  // one more second for the closes and the compute queue
    }
  }
  sweeper.expires_after(std::chrono::milliseconds(20));
  sweeper.async_wait([this](const asio::error_code& ec) {
    if (!ec) on_tick();
  });
}

void CloudServer::Impl::begin_stop() {
  if (draining.exchange(true)) return;
  drain_deadline = now_ns() + ns(opt.drain_timeout_s);
  asio::error_code ignored;
  acceptor.close(ignored);
  for (auto& s : live_conns()) s->begin_drain();
}

void CloudServer::Impl::finish() {
  {
    std::lock_guard<std::mutex> lk(q_mu);
    q_stop = true;
  }
  q_cv.notify_all();
  if (signals) {
    asio::error_code ignored;
    signals->cancel(ignored);
  }
  sweeper.cancel();
  io.stop();
}

// ---- the compute thread -----------------------------------------------------------------------------------------
void CloudServer::Impl::compute_loop() {
  if (opt.compute_threads > 0) omp_set_num_threads(opt.compute_threads);  // a thread's own setting
  std::vector<Job> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(q_mu);
      q_cv.wait(lk, [&] { return !queue.empty() || q_stop; });
      if (queue.empty()) return;
      uint16_t split = queue.front().split;
      int64_t rows = 0;
      auto gather = [&] {
        for (auto it = queue.begin(); it != queue.end() && rows < opt.max_batch_rows;) {
          if (it->split == split && rows + it->rows <= opt.max_batch_rows) {
            rows += it->rows;
            batch.push_back(std::move(*it));
            it = queue.erase(it);
          } else {
            ++it;
          }
        }
      };
      gather();
      if (opt.batch_wait_us > 0 && rows < opt.max_batch_rows) {
        auto until = Clock::now() + std::chrono::microseconds(opt.batch_wait_us);
        while (rows < opt.max_batch_rows && !q_stop &&
               q_cv.wait_until(lk, until, [&] { return !queue.empty() || q_stop; })) {
          size_t before = batch.size();
          gather();
          if (batch.size() == before) break;  // only other splits are waiting: run this batch now
        }
      }
    }
    run_batch(batch);
    batch.clear();
  }
}

void CloudServer::Impl::run_batch(std::vector<Job>& batch) {
  int64_t start = now_ns();
  uint16_t split = batch.front().split;
  int64_t rows = 0;
  for (auto& j : batch) rows += j.rows;

  if (recorder) {
    Bytes rec;
    for (auto& j : batch)
      encode_observation(rec, Observation{j.received_unix_ns, j.conn->id, j.conn->edge, j.request_id,
                                          dep.splits[split].name, dep.splits[split].fingerprint, j.input});
    try {
      recorder->append(rec, batch.size());
      st.recorded.fetch_add(batch.size());
      if (opt.record_sync_s <= 0) recorder->sync();
    } catch (const Error& e) {
      st.record_errors.fetch_add(batch.size());
      log.line(str("recording failed: ", e.what()));
    }
  }

  Tensor x;
  if (batch.size() == 1) {
    x = batch.front().input;
  } else {
    std::vector<int64_t> dims = batch.front().input.shape().dims();
    dims[0] = rows;
    x = Tensor::empty(Shape(dims));
    auto* dst = static_cast<uint8_t*>(x.raw_data());
    for (auto& j : batch) {
      std::memcpy(dst, j.input.raw_data(), j.input.nbytes());
      dst += j.input.nbytes();
    }
  }
  Tensor y;
  std::string failure;
  try {
    NoGradGuard ng;
    y = tails[split].cloud(x.to(opt.device)).to(Device::cpu()).contiguous();
    SL_CHECK(y.dim() == 2 && y.size(0) == rows && y.dtype() == DType::f32, ValueError, "the tail returned ", y.str(),
             " for ", rows, " rows");
  } catch (const std::exception& e) {
    failure = e.what();
    log.line(str("the tail of split ", dep.splits[split].name, " failed: ", failure));
  }
  int64_t done = now_ns();
  st.batches.fetch_add(1, std::memory_order_relaxed);
  st.batch_rows.fetch_add(uint64_t(rows), std::memory_order_relaxed);
  uint64_t m = st.batch_rows_max.load();
  while (uint64_t(rows) > m && !st.batch_rows_max.compare_exchange_weak(m, uint64_t(rows))) {
  }
  st.compute.add(double(done - start) * 1e-9);
  int64_t off = 0;
  for (auto& j : batch) {
    Bytes f;
    if (failure.empty()) {
      wire::Response r;
      r.split_id = split;
      r.queue_us = uint32_t(std::clamp<int64_t>((start - j.received_ns) / 1000, 0, UINT32_MAX));
      r.compute_us = uint32_t(std::clamp<int64_t>((done - start) / 1000, 0, UINT32_MAX));
      r.batch_rows = uint32_t(rows);
      r.output = y.slice(off, off + j.rows);
      f = wire::encode_response(j.request_id, r);
      st.images.fetch_add(uint64_t(j.rows), std::memory_order_relaxed);
      st.queue.add(double(start - j.received_ns) * 1e-9);
      st.latency.add(double(now_ns() - j.received_ns) * 1e-9);
    } else {
      st.errors[size_t(ErrorCode::Internal)].fetch_add(1);
      f = wire::encode_error(j.request_id, {ErrorCode::Internal, "the tail failed: " + failure});
    }
    off += j.rows;
    j.conn->deliver(std::move(f), j.budget);
    j.conn.reset();
    pending_jobs.fetch_sub(1);
  }
}

// ---- stats ------------------------------------------------------------------------------------------------------
nlohmann::json CloudServer::Impl::stats_json() {
  double up = double(now_ns() - st.started_ns) * 1e-9;
  nlohmann::json errors = nlohmann::json::object();
  uint64_t nerr = 0;
  for (size_t c = 1; c < st.errors.size(); ++c)
    if (uint64_t v = st.errors[c].load()) {
      errors[wire::error_code_name(ErrorCode(c))] = v;
      nerr += v;
    }
  int64_t used, peak;
  {
    std::lock_guard<std::mutex> lk(budget_mu);
    used = budget_used;
    peak = budget_peak;
  }
  MemoryUse mem = memory_use();
  uint64_t batches = st.batches.load();
  auto ms = [](double s) { return s * 1e3; };
  nlohmann::json splits = nlohmann::json::array();
  for (auto& s : dep.splits) splits.push_back({{"name", s.name}, {"fingerprint", s.fingerprint}});
  return {
      {"server", opt.name},
      {"uptime_s", up},
      {"draining", draining.load()},
      {"splits", splits},
      {"connections",
       {{"active", st.active.load()},
        {"accepted", st.accepted.load()},
        {"refused_overload", st.refused_overload.load()},
        {"tls_refused", st.tls_refused.load()},
        {"hellos", st.hellos.load()},
        {"timeouts", st.timeouts.load()},
        {"dropped_mid_frame", st.dropped_mid_frame.load()}}},
      {"requests", {{"received", st.requests.load()}, {"answered", st.responses.load()}, {"images", st.images.load()}}},
      {"errors", errors},
      {"errors_total", nerr},
      {"bytes", {{"in", st.bytes_in.load()}, {"out", st.bytes_out.load()}}},
      {"latency_ms",
       {{"p50", ms(st.latency.percentile(50))},
        {"p95", ms(st.latency.percentile(95))},
        {"p99", ms(st.latency.percentile(99))},
        {"max", ms(st.latency.max())},
        {"queue_p50", ms(st.queue.percentile(50))},
        {"compute_p50", ms(st.compute.percentile(50))}}},
      {"batches",
       {{"count", batches},
        {"mean_rows", batches ? double(st.batch_rows.load()) / double(batches) : 0.0},
        {"max_rows", st.batch_rows_max.load()}}},
      {"memory",
       {{"request_bytes_held", used},
        {"request_bytes_peak", peak},
        {"request_bytes_budget", opt.memory_budget},
        {"rss_bytes", mem.rss},
        {"rss_peak_bytes", mem.peak}}},
      {"recording", {{"path", opt.record_path}, {"records", st.recorded.load()}, {"errors", st.record_errors.load()}}}};
}

std::string CloudServer::Impl::stats_line() {
  nlohmann::json j = stats_json();
  auto f = [](double v, int d) {
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", d, v);
    return std::string(b);
  };
  return str("stats: up ", f(j["uptime_s"], 1), " s, connections ", j["connections"]["active"].get<uint64_t>(),
             " open / ", j["connections"]["accepted"].get<uint64_t>(), " accepted, requests ",
             j["requests"]["answered"].get<uint64_t>(), " answered, errors ", j["errors_total"].get<uint64_t>(),
             ", latency p50 ", f(j["latency_ms"]["p50"], 3), " ms p99 ", f(j["latency_ms"]["p99"], 3),
             " ms, batch mean ", f(j["batches"]["mean_rows"], 2), " rows, in ", j["bytes"]["in"].get<uint64_t>(),
             " B, out ", j["bytes"]["out"].get<uint64_t>(), " B, held ",
             j["memory"]["request_bytes_held"].get<int64_t>(), " B (peak ",
             j["memory"]["request_bytes_peak"].get<int64_t>(), "), RSS ", j["memory"]["rss_bytes"].get<int64_t>() >> 20,
             " MiB, recorded ", j["recording"]["records"].get<uint64_t>());
}

// ---- CloudServer ------------------------------------------------------------------------------------------------
CloudServer::CloudServer(Deployment cloud, ServerOptions opt) {
  SL_CHECK(cloud.role == "cloud", ValueError, "the server runs the cloud side of a split");
  SL_CHECK(opt.io_threads >= 1 && opt.io_threads <= 64, ValueError, "--io-threads ", opt.io_threads, " (1 to 64)");
  SL_CHECK(opt.max_connections >= 1 && opt.max_connections <= 100000, ValueError, "--max-connections ",
           opt.max_connections, " (1 to 100000)");
  SL_CHECK(opt.max_inflight >= 1 && opt.max_inflight <= 4096, ValueError, "--max-inflight ", opt.max_inflight,
           " (1 to 4096)");
  SL_CHECK(opt.max_rows >= 1 && opt.max_rows <= 65536, ValueError, "--max-rows ", opt.max_rows, " (1 to 65536)");
  SL_CHECK(opt.max_batch_rows >= opt.max_rows && opt.max_batch_rows <= 65536, ValueError, "--max-batch ",
           opt.max_batch_rows, " (from --max-rows ", opt.max_rows, " to 65536)");
  SL_CHECK(opt.batch_wait_us >= 0 && opt.batch_wait_us <= 1000000, ValueError, "--batch-wait-us ", opt.batch_wait_us,
           " (0 to 1000000)");
  for (double t : {opt.handshake_timeout_s, opt.idle_timeout_s, opt.io_timeout_s, opt.drain_timeout_s})
    SL_CHECK(t > 0 && t <= 86400, ValueError, "timeouts must be in (0, 86400] seconds, got ", t);
  impl_ = std::make_unique<Impl>(std::move(cloud), std::move(opt));
  Impl& m = *impl_;
  for (auto& s : m.dep.splits) {
    m.tails.push_back(m.dep.pipeline(s));
    uint64_t payload =
        4 + 2 + 8 * (s.sample_shape.rank() + 1) + uint64_t(m.opt.max_rows) * uint64_t(s.sample_shape.numel()) * 4;
    SL_CHECK(payload <= (1u << 30), ValueError, "a request of ", m.opt.max_rows, " rows at split ", s.name,
             " would be ", payload, " bytes (over 1 GiB): lower --max-rows");
    m.split_payload.push_back(uint32_t(payload));
    m.opt.memory_budget = std::max<int64_t>(m.opt.memory_budget, int64_t(payload));
  }
  if (m.opt.tls.enabled()) m.tls.emplace(server_context(m.opt.tls));
  if (!m.opt.record_path.empty()) {
    m.recorder = std::make_unique<ObservationWriter>(m.opt.record_path);
    if (!m.recorder->note().empty()) m.log.line(str("--record: ", m.recorder->note()));
  }
  // Listen.
  asio::error_code ec;
  auto addr = asio::ip::make_address(m.opt.host == "localhost" ? "127.0.0.1" : m.opt.host, ec);
  SL_CHECK(!ec, ValueError, "cannot listen on '", m.opt.host, "': not an IP address (", ec.message(), ")");
  tcp::endpoint ep(addr, m.opt.port);
  m.acceptor.open(ep.protocol(), ec);
  if (!ec) m.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) m.acceptor.bind(ep, ec);
  if (!ec) m.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  SL_CHECK(!ec, IoError, "cannot listen on ", endpoint_str(ep), ": ", ec.message());
  m.port = m.acceptor.local_endpoint().port();
}

CloudServer::~CloudServer() {
  if (impl_ && impl_->started) {
    stop();
    wait();
  }
}

uint16_t CloudServer::port() const { return impl_->port; }

void CloudServer::start() {
  Impl& m = *impl_;
  SL_CHECK(!m.started, Error, "server already started");
  m.started = true;
  m.do_accept();
  m.on_tick();
  m.compute_thread = std::thread([&m] { m.compute_loop(); });
  for (int i = 0; i < m.opt.io_threads; ++i) m.io_threads.emplace_back([&m] { m.io.run(); });
}

void CloudServer::run(bool signals) {
  Impl& m = *impl_;
  if (signals) {
    m.signals.emplace(m.io, SIGINT, SIGTERM, SIGUSR1);
    std::function<void(const asio::error_code&, int)> on_signal = [&m, &on_signal](const asio::error_code& ec,
                                                                                   int sig) {
      if (ec) return;
      if (sig == SIGUSR1) {
        std::fprintf(stderr, "serve: %s\n", m.stats_line().c_str());
      } else if (m.draining) {
        std::fprintf(stderr, "serve: second signal: closing every connection now\n");
        for (auto& s : m.live_conns()) s->force_close();
      } else {
        std::fprintf(stderr, "serve: %s: finishing the requests in flight, then stopping\n",
                     sig == SIGINT ? "SIGINT" : "SIGTERM");
        m.begin_stop();
      }
      m.signals->async_wait(on_signal);
    };
    m.signals->async_wait(on_signal);
    start();
    wait();
    return;
  }
  start();
  wait();
}

void CloudServer::stop() {
  Impl& m = *impl_;
  asio::post(m.io, [&m] { m.begin_stop(); });
}

void CloudServer::wait() {
  Impl& m = *impl_;
  for (auto& t : m.io_threads) t.join();
  m.io_threads.clear();
  {
    std::lock_guard<std::mutex> lk(m.q_mu);
    m.q_stop = true;
  }
  m.q_cv.notify_all();
  if (m.compute_thread.joinable()) m.compute_thread.join();
  if (m.recorder) m.recorder->sync();
  m.started = false;
}

nlohmann::json CloudServer::stats() const { return impl_->stats_json(); }
std::string CloudServer::stats_line() const { return impl_->stats_line(); }

}  // namespace sl::runtime
