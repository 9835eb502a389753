// Private to runtime/: the insides of CloudClient, shared by the synchronous calls (client.cpp) and the
// asynchronous edge runner (edge.cpp).
#pragma once
#include <optional>

#include "runtime/client.h"
#include "runtime/net.h"

namespace sl::runtime {

struct CloudClient::Impl {
  ClientOptions opt;
  asio::io_context io;
  std::optional<asio::ssl::context> ctx;
  std::optional<net::tcp::socket> plain;
  std::optional<asio::ssl::stream<net::tcp::socket>> tls;
  wire::FrameAssembler in{4u << 20};  // answers are small; 4 MiB bounds any frame the client accepts
  uint64_t sent = 0, received = 0;
  std::string server_cn, addr;
  wire::Welcome welcome;
  bool closed = false;

  explicit Impl(const ClientOptions& o);

  template <class F>
  void read_some(F&& handler) {
    auto buf = asio::buffer(in.space(), in.space_left());
    if (tls)
      tls->async_read_some(buf, std::forward<F>(handler));
    else
      plain->async_read_some(buf, std::forward<F>(handler));
  }
  template <class Buffers, class F>
  void write(const Buffers& bufs, F&& handler) {
    if (tls)
      asio::async_write(*tls, bufs, std::forward<F>(handler));
    else
      asio::async_write(*plain, bufs, std::forward<F>(handler));
  }
  net::tcp::socket& socket() { return tls ? tls->next_layer() : *plain; }
  void close();

  // Runs the io_context until `done` or the deadline; on the deadline the connection is closed and TimeoutError
  // names `what`.
  void run_until(const bool& done, double seconds, const std::string& what);

  // A complete frame from the receive buffer, decoded; RemoteError is not thrown here (ERROR frames are data).
  std::optional<CloudClient::Incoming> take_frame();
  // Grows the receive buffer when a validated header asks for more room.
  void make_room();
};

}  // namespace sl::runtime
