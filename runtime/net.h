// Private to runtime/: asio and OpenSSL set-up shared by the server and the client.
#pragma once
#define ASIO_STANDALONE 1
#define ASIO_NO_DEPRECATED 1
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <chrono>
#include <string>

#include "runtime/tls.h"

namespace sl::runtime::net {

using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// TLS 1.3 only; the peer must present a certificate signed by `cfg.ca` (the server refuses an edge without one).
asio::ssl::context server_context(const TlsConfig& cfg);
asio::ssl::context client_context(const TlsConfig& cfg);

// The subject common name of the peer's certificate ("" when none).
std::string peer_common_name(SSL* ssl);

// The most recent OpenSSL error as text, or the asio error's message.
std::string tls_error_text(const asio::error_code& ec);

std::string endpoint_str(const tcp::endpoint& e);

}  // namespace sl::runtime::net
