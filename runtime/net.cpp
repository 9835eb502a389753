#include "runtime/net.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstring>

#include "tensor/error.h"
#include "tensor/io.h"

namespace sl::runtime {

void TlsConfig::validate(const std::string& who) const {
  SL_CHECK(!cert.empty() && !key.empty() && !ca.empty(), ValueError, who,
           ": TLS needs all three of --tls-cert, --tls-key and --tls-ca");
  io::check_input_file(cert, "TLS certificate");
  io::check_input_file(key, "TLS private key");
  io::check_input_file(ca, "TLS CA certificate");
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  asio::error_code ec;
  auto a = asio::ip::make_address(host, ec);
  return !ec && a.is_loopback();
}

void parse_host_port(const std::string& s, std::string& host, uint16_t& port, bool allow_zero) {
  size_t colon = s.rfind(':');
  SL_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < s.size(), ValueError, "'", s,
           "' is not HOST:PORT (e.g. 127.0.0.1:7000)");
  host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::string p = s.substr(colon + 1);
  unsigned long v = 0;
  size_t used = 0;
  try {
    v = std::stoul(p, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  SL_CHECK(used == p.size() && v <= 65535 && (allow_zero || v > 0), ValueError, "'", s, "': port '", p,
           "' is not a number in ", allow_zero ? 0 : 1, "..65535");
  port = uint16_t(v);
}

namespace net {

namespace {

// Runs one context set-up step; a failure names the file and OpenSSL's reason.
template <class Fn>
void step(const std::string& what, Fn&& fn) {
  try {
    fn();
  } catch (const asio::system_error& e) {
    throw ValueError(str("TLS: ", what, ": ", e.code().message()));
  }
}

void common(asio::ssl::context& ctx, const TlsConfig& cfg) {
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx.native_handle(), TLS1_3_VERSION);
  step(str("certificate '", cfg.cert, "'"), [&] { ctx.use_certificate_chain_file(cfg.cert); });
  step(str("private key '", cfg.key, "' (it must belong to certificate '", cfg.cert, "')"),
       [&] { ctx.use_private_key_file(cfg.key, asio::ssl::context::pem); });
  SL_CHECK(SSL_CTX_check_private_key(ctx.native_handle()) == 1, ValueError, "TLS: private key '", cfg.key,
           "' does not belong to certificate '", cfg.cert, "'");
  step(str("CA certificate '", cfg.ca, "'"), [&] { ctx.load_verify_file(cfg.ca); });
}

}  // namespace

asio::ssl::context server_context(const TlsConfig& cfg) {
  cfg.validate("serve");
  asio::ssl::context ctx(asio::ssl::context::tls_server);
  common(ctx, cfg);
  // Only edges with a certificate of the deployment CA get in.
  ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  return ctx;
}

asio::ssl::context client_context(const TlsConfig& cfg) {
  cfg.validate("edge");
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  common(ctx, cfg);
  ctx.set_verify_mode(asio::ssl::verify_peer);
  return ctx;
}

std::string peer_common_name(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return "";
  char buf[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  X509_free(cert);
  return buf;
}

std::string tls_error_text(const asio::error_code& ec) {
  std::string s = ec.message();
  if (ec.category() == asio::error::get_ssl_category()) {
    char buf[256];
    ERR_error_string_n(ec.value(), buf, sizeof buf);
    s = buf;
  }
  return s;
}

std::string endpoint_str(const tcp::endpoint& e) {
  std::string a = e.address().to_string();
  return (e.address().is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(e.port());
}

}  // namespace net
}  // namespace sl::runtime
