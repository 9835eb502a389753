#include "cli/net_options.h"

#include <cstdio>

#include "tensor/error.h"

namespace sl::cli {

void add_tls_flags(CLI::App* c, runtime::TlsConfig& tls, bool client) {
  c->add_option("--tls-cert", tls.cert,
                client ? "This edge's certificate (PEM), signed by the deployment CA"
                       : "The server's certificate (PEM), signed by the deployment CA");
  c->add_option("--tls-key", tls.key, "Its private key (PEM)");
  c->add_option("--tls-ca", tls.ca,
                client ? "The deployment CA (PEM): the server's certificate must be signed by it"
                       : "The deployment CA (PEM): only edges with a certificate signed by it get in");
  if (client)
    c->add_option("--tls-server-name", tls.server_name,
                  "Name the server's certificate must carry (default: the host of --connect)");
}

void check_plain_tcp(const std::string& who, const std::string& host, bool allowed, bool warn) {
  bool loopback = runtime::is_loopback_host(host);
  SL_CHECK(loopback || allowed, ValueError, who, ": plain TCP to ", host,
           " would send the intermediate tensors unencrypted and unauthenticated; use --tls-cert/--tls-key/--tls-ca, "
           "or --plain to accept that");
  if (!warn) return;
  std::fprintf(stderr,
               "%s: warning: plain TCP: no encryption, no authentication of the peer (for loopback labs; use --tls-* "
               "otherwise)\n",
               who.c_str());
}

}  // namespace sl::cli
