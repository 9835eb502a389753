// Transport security settings shared by the cloud server and the edge client: mutual TLS 1.3 with one
// deployment CA, or plain TCP (loopback labs only).
#pragma once
#include <string>

namespace sl::runtime {

struct TlsConfig {
  std::string cert;         // this side's certificate (PEM), signed by the deployment CA
  std::string key;          // its private key (PEM)
  std::string ca;           // the deployment CA's certificate (PEM): the only issuer the peer may have
  std::string server_name;  // edge only: the name the server's certificate must carry (default: the host)

  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
  // ValueError unless all three files are given and are readable regular files; `who` names the flags' owner.
  void validate(const std::string& who) const;
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(const std::string& host);

// "HOST:PORT" (IPv6 as "[::1]:PORT") -> host, port; ValueError otherwise. Port 0 is allowed when allow_zero.
void parse_host_port(const std::string& s, std::string& host, uint16_t& port, bool allow_zero);

}  // namespace sl::runtime
