// Flags shared by the network commands (serve, edge, stats): TLS files and the plain-TCP warning.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "runtime/tls.h"

namespace sl::cli {

void add_tls_flags(CLI::App* c, runtime::TlsConfig& tls, bool client);

// Plain TCP: refused for a non-loopback address unless `allowed` (--plain); with `warn`, the warning on stderr
// (printed once the command is set up, so that an error before it stays the only line).
void check_plain_tcp(const std::string& who, const std::string& host, bool allowed, bool warn);

}  // namespace sl::cli
