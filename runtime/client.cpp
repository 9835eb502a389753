#include "runtime/client.h"

#include <openssl/ssl.h>

#include "runtime/client_impl.h"

namespace sl::runtime {

using namespace net;

CloudClient::Impl::Impl(const ClientOptions& o) : opt(o) {
  addr = (opt.host.find(':') != std::string::npos ? "[" + opt.host + "]" : opt.host) + ":" + std::to_string(opt.port);
  SL_CHECK(
      opt.connect_timeout_s > 0 && opt.connect_timeout_s <= 3600 && opt.io_timeout_s > 0 && opt.io_timeout_s <= 86400,
      ValueError, "timeouts must be positive (connect <= 3600 s, I/O <= 86400 s)");
  if (opt.tls.enabled()) ctx.emplace(client_context(opt.tls));
}

void CloudClient::Impl::close() {
  if (closed) return;
  closed = true;
  asio::error_code ignored;
  if (plain || tls) {
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }
}

void CloudClient::Impl::run_until(const bool& done, double seconds, const std::string& what) {
  io.restart();
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (!done && io.run_one_until(deadline) > 0) {
  }
  if (done) return;
  close();  // cancels the operation; let it finish before its buffers go away
  io.restart();
  io.run();
  throw TimeoutError(str("cloud ", addr, ": no progress in ", seconds, " s while ", what));
}

void CloudClient::Impl::make_room() {
  size_t need = in.capacity_needed();
  if (need > in.capacity()) in.reserve(need);
}

std::optional<CloudClient::Incoming> CloudClient::Impl::take_frame() {
  auto f = in.next();
  if (!f) return std::nullopt;
  Incoming m;
  m.type = f->header.type;
  m.request_id = f->header.request_id;
  m.bytes = wire::kHeaderBytes + f->header.payload_bytes;
  const uint8_t* p = f->payload;
  size_t n = f->header.payload_bytes;
  switch (m.type) {
    case wire::FrameType::Response:
      m.response = wire::decode_response(p, n);
      break;
    case wire::FrameType::Error:
      m.error = wire::decode_error(p, n);
      break;
    case wire::FrameType::Stats:
      m.text = wire::decode_stats(p, n);
      break;
    case wire::FrameType::Bye:
      m.text = wire::decode_bye(p, n);
      break;
    case wire::FrameType::Welcome:
      welcome = wire::decode_welcome(p, n);
      break;
    default:
      throw wire::ProtocolError(wire::ErrorCode::Unexpected,
                                str("the cloud sent a ", wire::frame_type_name(m.type), " frame"));
  }
  return m;
}

CloudClient::CloudClient(const ClientOptions& opt) : impl_(std::make_unique<Impl>(opt)) {
  Impl& m = *impl_;
  tcp::resolver resolver(m.io);
  asio::error_code ec;
  auto endpoints = resolver.resolve(opt.host, std::to_string(opt.port), ec);
  SL_CHECK(!ec, IoError, "cannot resolve '", opt.host, "': ", ec.message());
  m.plain.emplace(m.io);
  bool done = false;
  asio::async_connect(*m.plain, endpoints, [&](const asio::error_code& e, const tcp::endpoint&) {
    ec = e;
    done = true;
  });
  m.run_until(done, opt.connect_timeout_s, "connecting");
  SL_CHECK(!ec, IoError, "cannot connect to ", m.addr, ": ", ec.message());
  m.plain->set_option(tcp::no_delay(true), ec);
  if (m.ctx) {
    m.tls.emplace(std::move(*m.plain), *m.ctx);
    m.plain.reset();
    std::string name = opt.tls.server_name.empty() ? opt.host : opt.tls.server_name;
    asio::error_code not_ip;
    asio::ip::make_address(name, not_ip);
    if (not_ip) SSL_set_tlsext_host_name(m.tls->native_handle(), name.c_str());  // SNI for DNS names only
    m.tls->set_verify_callback(asio::ssl::host_name_verification(name));
    done = false;
    m.tls->async_handshake(asio::ssl::stream_base::client, [&](const asio::error_code& e) {
      ec = e;
      done = true;
    });
    m.run_until(done, opt.connect_timeout_s, "in the TLS handshake");
    std::string why = tls_error_text(ec);
    SL_CHECK(!ec, IoError, "TLS handshake with ", m.addr, " failed: ", why,
             why.find("wrong version number") != std::string::npos || ec == asio::error::eof
                 ? " (does the server speak TLS?)"
                 : str(" (the server certificate must be signed by --tls-ca and name '", name, "')"));
    m.server_cn = peer_common_name(m.tls->native_handle());
  }
}

CloudClient::CloudClient(CloudClient&&) noexcept = default;
CloudClient& CloudClient::operator=(CloudClient&&) noexcept = default;

CloudClient::~CloudClient() {
  if (impl_) impl_->close();
}

void CloudClient::send(const Bytes& frame) {
  Impl& m = *impl_;
  SL_CHECK(!m.closed, IoError, "cloud ", m.addr, ": the connection is closed");
  bool done = false;
  asio::error_code ec;
  m.write(asio::buffer(frame), [&](const asio::error_code& e, size_t) {
    ec = e;
    done = true;
  });
  m.run_until(done, m.opt.io_timeout_s, "sending");
  SL_CHECK(!ec, IoError, "cloud ", m.addr, ": sending failed: ", ec.message());
  m.sent += frame.size();
}

CloudClient::Incoming CloudClient::receive() {
  Impl& m = *impl_;
  for (;;) {
    if (auto f = m.take_frame()) return *f;
    SL_CHECK(!m.closed, IoError, "cloud ", m.addr, ": the connection is closed");
    m.make_room();
    bool done = false;
    asio::error_code ec;
    size_t got = 0;
    m.read_some([&](const asio::error_code& e, size_t n) {
      ec = e;
      got = n;
      done = true;
    });
    m.run_until(done, m.opt.io_timeout_s, "waiting for an answer");
    if (ec) {
      m.close();
      if (ec.category() == asio::error::get_ssl_category())
        throw IoError(str("cloud ", m.addr, ": the cloud ended the TLS session: ", tls_error_text(ec),
                          " (is this edge's certificate signed by the deployment CA?)"));
      throw IoError(
          str("cloud ", m.addr, ": ",
              ec == asio::error::eof ? "the cloud closed the connection" : "receiving failed: " + ec.message()));
    }
    m.in.commit(got);
    m.received += got;
  }
}

CloudClient::Incoming CloudClient::call(const Bytes& frame, uint64_t request_id) {
  send(frame);
  Incoming in = receive();
  if (in.type == wire::FrameType::Error)
    throw wire::RemoteError(in.error.code, str("cloud ", address(), " refused: ", wire::error_code_name(in.error.code),
                                               ": ", in.error.message));
  if (in.type == wire::FrameType::Bye) throw IoError(str("cloud ", address(), " is closing: ", in.text));
  SL_CHECK(in.request_id == request_id, IoError, "cloud ", address(), " answered request ", in.request_id,
           " instead of ", request_id);
  return in;
}

wire::Welcome CloudClient::hello(const std::string& edge_name, const std::vector<std::string>& fingerprints) {
  Impl& m = *impl_;
  double saved = m.opt.io_timeout_s;
  m.opt.io_timeout_s = m.opt.connect_timeout_s;
  Incoming in;
  try {
    in = call(wire::encode_hello({edge_name, fingerprints}), 0);
  } catch (const wire::RemoteError&) {
    m.opt.io_timeout_s = saved;
    throw;
  } catch (const IoError& e) {
    m.opt.io_timeout_s = saved;
    if (!m.tls && std::string(e.what()).find("closed the connection") != std::string::npos)
      throw IoError(str(e.what(), " during HELLO (if the cloud uses TLS, pass --tls-cert, --tls-key and --tls-ca)"));
    throw;
  }
  m.opt.io_timeout_s = saved;
  SL_CHECK(in.type == wire::FrameType::Welcome, IoError, "cloud ", m.addr, " answered HELLO with a ",
           wire::frame_type_name(in.type), " frame");
  return m.welcome;
}

std::string CloudClient::stats() {
  Incoming in = call(wire::encode_stats_request(1), 1);
  SL_CHECK(in.type == wire::FrameType::Stats, IoError, "cloud ", address(), " answered STATS_REQUEST with a ",
           wire::frame_type_name(in.type), " frame");
  return in.text;
}

void CloudClient::bye() {
  try {
    send(wire::encode_bye("done"));
  } catch (const Error&) {
  }
}

uint64_t CloudClient::bytes_sent() const { return impl_->sent; }
uint64_t CloudClient::bytes_received() const { return impl_->received; }
std::string CloudClient::server_identity() const { return impl_->server_cn; }
std::string CloudClient::address() const { return impl_->addr; }
const wire::Welcome& CloudClient::welcome() const { return impl_->welcome; }

}  // namespace sl::runtime
