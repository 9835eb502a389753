#include "runtime/edge.h"

#include <cmath>
#include <deque>
#include <map>

#include "autograd/node.h"
#include "runtime/client_impl.h"

namespace sl::runtime {

using namespace net;

namespace {

constexpr uint64_t kWarmupIdBase = uint64_t(1) << 62;  // warm-up requests' ids (left out of the results)

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
Clock::duration dur(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

// One run's state machine; every handler runs on the client's io_context in the calling thread.
class Runner {
 public:
  Runner(CloudClient::Impl& m, const SplitPolicy& policy, const Tensor& images, const std::vector<int32_t>& labels,
         const EdgeRunOptions& opt, const EdgeProgress& progress)
      : m_(m),
        policy_(policy),
        images_(images),
        labels_(labels),
        opt_(opt),
        progress_(progress),
        send_timer_(m.io),
        up_timer_(m.io),
        down_timer_(m.io),
        watchdog_(m.io),
        link_(opt.link, Clock::now()) {
    n_ = images.size(0);
    counted_ = (n_ + opt.batch - 1) / opt.batch;
    total_ = counted_ + opt.warmup;
    r_.predictions.assign(size_t(n_), -1);
  }

  void abort() {
    stopped_ = true;
    cancel_timers();
  }

  EdgeRunResult run() {
    t0_ = Clock::now();
    uint64_t sent0 = m_.sent, recv0 = m_.received;
    pump();
    m_.io.restart();
    m_.io.run();
    SL_CHECK(answered_ == total_, IoError, "cloud ", m_.addr, ": the run stopped with ", total_ - answered_,
             " requests unanswered");
    r_.wall_s = seconds(t_last_ - t_first_);
    r_.bytes_sent = m_.sent - sent0;
    r_.bytes_received = m_.received - recv0;
    return std::move(r_);
  }

 private:
  struct Pending {
    int64_t seq = 0, first = 0, rows = 0;
    bool warm = false;
    Clock::time_point start;
    double edge_s = 0;
    size_t up = 0;
    uint16_t split_id = 0;
  };

  // Sends requests while the window and the rate allow.
  void pump() {
    while (sent_ < total_ && int(inflight_.size()) < opt_.window) {
      Clock::time_point now = Clock::now();
      Clock::time_point start = now;
      if (opt_.rate > 0 && sent_ >= opt_.warmup) {
        if (sent_ == opt_.warmup) t_rate_ = now;
        Clock::time_point due = t_rate_ + dur(double(sent_ - opt_.warmup) / opt_.rate);
        if (now < due) {
          send_timer_.expires_at(due);
          send_timer_.async_wait([this](const asio::error_code& ec) {
            if (!ec && !stopped_) pump();
          });
          return;
        }
        start = due;  // open loop: latency counts from when the request was due
      }
      send_one(start);
    }
  }

  void send_one(Clock::time_point start) {
    Pending p;
    p.seq = sent_++;
    p.warm = p.seq < opt_.warmup;
    int64_t k = p.warm ? 0 : p.seq - opt_.warmup;
    p.first = k * opt_.batch;
    p.rows = std::min(opt_.batch, n_ - p.first);
    p.start = start;
    if (!p.warm && !started_counted_) {
      started_counted_ = true;
      t_first_ = start;
    }
    size_t which = policy_.choose ? policy_.choose() : 0;
    SL_CHECK(which < policy_.splits.size(), ValueError, "split policy chose split ", which, " of ",
             policy_.splits.size());
    const EdgeSplit& split = policy_.splits[which];
    p.split_id = split.split_id;
    auto c0 = Clock::now();
    Tensor v;
    {
      NoGradGuard ng;
      v = split.compute(images_.slice(p.first, p.first + p.rows), p.first);
    }
    if (v.device().is_cuda()) v = v.to(Device::cpu());  // waits for the device: its time is edge time
    p.edge_s = seconds(Clock::now() - c0);
    wire::Request req;
    req.split_id = split.split_id;
    req.input = v;
    uint64_t id = p.warm ? kWarmupIdBase + uint64_t(p.seq) : uint64_t(p.first);
    Bytes frame = wire::encode_request(id, req);
    p.up = frame.size();
    Clock::time_point at = opt_.link.enabled() ? link_.uplink(frame.size(), Clock::now(), p.seq) : Clock::time_point{};
    SL_CHECK(inflight_.emplace(id, p).second, ValueError, "request id ", id, " used twice");
    ++awaiting_;
    uplink_.emplace_back(at, std::move(frame));
    release_uplink();
    arm_watchdog();
    ensure_reading();
  }

  // Frames whose emulated arrival time has come go to the socket.
  void release_uplink() {
    Clock::time_point now = Clock::now();
    while (!uplink_.empty() && uplink_.front().first <= now) {
      ready_.push_back(std::move(uplink_.front().second));
      uplink_.pop_front();
    }
    if (!uplink_.empty() && !up_armed_) {
      up_armed_ = true;
      up_timer_.expires_at(uplink_.front().first);
      up_timer_.async_wait([this](const asio::error_code& ec) {
        up_armed_ = false;
        if (!ec && !stopped_) release_uplink();
      });
    }
    start_write();
  }

  void start_write() {
    if (writing_ || ready_.empty()) return;
    writing_frames_.clear();
    while (!ready_.empty()) {
      writing_frames_.push_back(std::move(ready_.front()));
      ready_.pop_front();
    }
    std::vector<asio::const_buffer> bufs;
    for (auto& f : writing_frames_) bufs.push_back(asio::buffer(f));
    writing_ = true;
    m_.write(bufs, [this](const asio::error_code& ec, size_t n) {
      writing_ = false;
      if (stopped_) return;
      if (ec) throw IoError(str("cloud ", m_.addr, ": sending failed: ", ec.message()));
      m_.sent += n;
      start_write();
    });
  }

  // A read is outstanding exactly while answers are still to come over the socket (none is left behind when the
  // run ends: the connection can serve the next run).
  void ensure_reading() {
    if (reading_ || draining_buffer_ || awaiting_ == 0) return;
    m_.make_room();
    reading_ = true;
    m_.read_some([this](const asio::error_code& ec, size_t n) {
      reading_ = false;
      if (stopped_) return;
      if (ec) {
        m_.close();
        throw IoError(
            str("cloud ", m_.addr, ": ",
                ec == asio::error::eof ? "the cloud closed the connection" : "receiving failed: " + ec.message(),
                " with ", inflight_.size(), " requests unanswered"));
      }
      m_.in.commit(n);
      m_.received += n;
      // The frames already here first: a read started in between could wait for bytes that never come.
      draining_buffer_ = true;
      while (auto f = m_.take_frame()) on_frame(std::move(*f));
      draining_buffer_ = false;
      ensure_reading();
    });
  }

  void arm_watchdog() {
    watchdog_.expires_after(dur(m_.opt.io_timeout_s));
    watchdog_.async_wait([this](const asio::error_code& ec) {
      if (ec || stopped_ || inflight_.empty()) return;
      m_.close();
      throw TimeoutError(str("cloud ", m_.addr, ": no answer in ", m_.opt.io_timeout_s, " s (", inflight_.size(),
                             " requests in flight)"));
    });
  }

  void on_frame(CloudClient::Incoming&& f) {
    arm_watchdog();
    if ((f.type == wire::FrameType::Response || f.type == wire::FrameType::Error) && inflight_.count(f.request_id))
      --awaiting_;
    switch (f.type) {
      case wire::FrameType::Response: {
        Clock::time_point now = Clock::now();
        if (!opt_.link.enabled()) return deliver(f, now);
        auto it = inflight_.find(f.request_id);
        Clock::time_point at = link_.downlink(f.bytes, now, it == inflight_.end() ? 0 : it->second.seq);
        downlink_.emplace_back(at, std::move(f));
        return release_downlink();
      }
      case wire::FrameType::Error: {
        auto it = inflight_.find(f.request_id);
        if (f.request_id == 0 || wire::is_fatal(f.error.code) || it == inflight_.end()) {
          m_.close();
          throw wire::RemoteError(
              f.error.code,
              str("cloud ", m_.addr, " refused: ", wire::error_code_name(f.error.code), ": ", f.error.message));
        }
        ++r_.failed_requests;
        ++r_.errors[wire::error_code_name(f.error.code)];
        if (r_.first_error.empty()) r_.first_error = str(wire::error_code_name(f.error.code), ": ", f.error.message);
        inflight_.erase(it);
        return answered();
      }
      case wire::FrameType::Bye:
        if (!inflight_.empty()) {
          m_.close();
          throw IoError(str("cloud ", m_.addr, " is closing (", f.text, ") with ", inflight_.size(),
                            " of this edge's requests unanswered"));
        }
        return;
      default:
        return;  // STATS and others: not for the runner
    }
  }

  void release_downlink() {
    Clock::time_point now = Clock::now();
    while (!downlink_.empty() && downlink_.front().first <= now) {
      auto [at, f] = std::move(downlink_.front());
      downlink_.pop_front();
      deliver(f, at);
    }
    if (!downlink_.empty() && !down_armed_) {
      down_armed_ = true;
      down_timer_.expires_at(downlink_.front().first);
      down_timer_.async_wait([this](const asio::error_code& ec) {
        down_armed_ = false;
        if (!ec && !stopped_) release_downlink();
      });
    }
  }

  void deliver(const CloudClient::Incoming& f, Clock::time_point at) {
    auto it = inflight_.find(f.request_id);
    SL_CHECK(it != inflight_.end(), IoError, "cloud ", m_.addr, " answered request ", f.request_id,
             ", which is not in flight (crossed answers)");
    Pending p = it->second;
    inflight_.erase(it);
    const Tensor& out = f.response.output;
    SL_CHECK(out.dtype() == DType::f32 && out.dim() == 2 && out.size(0) == p.rows, IoError, "cloud ", m_.addr,
             " answered request ", f.request_id, " (", p.rows, " images) with ", out.str());
    if (!p.warm) {
      RequestTiming t;
      t.first = p.first;
      t.rows = p.rows;
      t.e2e_s = seconds(at - p.start);
      t.edge_s = p.edge_s;
      t.queue_s = f.response.queue_us * 1e-6;
      t.cloud_s = f.response.compute_us * 1e-6;
      t.wire_s = t.e2e_s - t.edge_s - t.queue_s - t.cloud_s;
      t.batch_rows = f.response.batch_rows;
      t.up_bytes = p.up;
      t.down_bytes = f.bytes;
      t.index = p.seq - opt_.warmup;
      t.split_id = p.split_id;
      r_.timings.push_back(t);
      if (policy_.observe) policy_.observe(t);
      const float* y = out.data<float>();
      int64_t classes = out.size(1);
      for (int64_t i = 0; i < p.rows; ++i) {
        int32_t best = 0;
        for (int64_t c = 1; c < classes; ++c)
          if (y[i * classes + c] > y[i * classes + best]) best = int32_t(c);
        r_.predictions[size_t(p.first + i)] = best;
        if (!labels_.empty()) r_.correct += best == labels_[size_t(p.first + i)];
      }
      r_.images += p.rows;
      t_last_ = at;
    }
    answered();
  }

  void answered() {
    ++answered_;
    if (progress_) progress_(r_.images, r_.correct);
    if (answered_ == total_) return cancel_timers();
    pump();
    ensure_reading();
  }

  void cancel_timers() {
    send_timer_.cancel();
    up_timer_.cancel();
    down_timer_.cancel();
    watchdog_.cancel();
  }

  CloudClient::Impl& m_;
  const SplitPolicy& policy_;
  const Tensor& images_;
  const std::vector<int32_t>& labels_;
  const EdgeRunOptions& opt_;
  const EdgeProgress& progress_;
  asio::steady_timer send_timer_, up_timer_, down_timer_, watchdog_;
  LinkEmulator link_;
  int64_t n_ = 0, counted_ = 0, total_ = 0, sent_ = 0, answered_ = 0, awaiting_ = 0;
  std::map<uint64_t, Pending> inflight_;
  std::deque<std::pair<Clock::time_point, Bytes>> uplink_;
  std::deque<Bytes> ready_;
  std::vector<Bytes> writing_frames_;
  std::deque<std::pair<Clock::time_point, CloudClient::Incoming>> downlink_;
  bool stopped_ = false, draining_buffer_ = false;
  bool writing_ = false, reading_ = false, up_armed_ = false, down_armed_ = false, started_counted_ = false;
  Clock::time_point t0_, t_rate_, t_first_, t_last_;
  EdgeRunResult r_;
};

}  // namespace

EdgeRunResult run_edge(CloudClient& client, const EdgeCompute& compute, const Tensor& images,
                       const std::vector<int32_t>& labels, const EdgeRunOptions& opt, const EdgeProgress& progress) {
  SplitPolicy one;
  one.splits.push_back({opt.split_id, compute});
  return run_edge(client, one, images, labels, opt, progress);
}

EdgeRunResult run_edge(CloudClient& client, const SplitPolicy& policy, const Tensor& images,
                       const std::vector<int32_t>& labels, const EdgeRunOptions& opt, const EdgeProgress& progress) {
  SL_CHECK(!policy.splits.empty(), ValueError, "no split to send at");
  SL_CHECK(images.dim() >= 1 && images.size(0) >= 1, ValueError, "no images to send");
  SL_CHECK(labels.empty() || int64_t(labels.size()) == images.size(0), ValueError, "labels and images differ in count");
  SL_CHECK(opt.batch >= 1 && opt.window >= 1 && opt.warmup >= 0 && std::isfinite(opt.rate) && opt.rate >= 0, ValueError,
           "bad edge run options (batch, window >= 1; warm-up, rate >= 0)");
  const wire::Welcome& w = client.welcome();
  SL_CHECK(opt.batch <= int64_t(w.max_rows), ValueError, "--batch ", opt.batch,
           " is more than the cloud takes per request (", w.max_rows, ")");
  SL_CHECK(opt.window <= int(w.max_inflight), ValueError, "--window ", opt.window,
           " is more than the cloud reads ahead per connection (", w.max_inflight, ")");
  Runner r(client.impl(), policy, images, labels, opt, progress);
  try {
    return r.run();
  } catch (...) {
    r.abort();
    auto& m = client.impl();
    m.close();
    for (int i = 0; i < 100; ++i) {  // lets the cancelled operations finish while the runner still exists
      try {
        m.io.restart();
        m.io.run();
        break;
      } catch (...) {
      }
    }
    throw;
  }
}

}  // namespace sl::runtime
