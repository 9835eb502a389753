// Test helpers for the network runtime: child processes (a `splitleak serve`, HAProxy) with bounded waits, a raw
// TCP client for sending hostile bytes, a temporary folder and a small random deployment.
#pragma once
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/deploy.h"
#include "runtime/wire.h"

namespace rt_test {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

inline double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

inline fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("splitleak_rts_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A child process with stdout and stderr in files; killed (SIGKILL) when the object goes away.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const fs::path& dir, const std::string& tag,
        const std::vector<std::string>& env = {})
      : out_(dir / (tag + ".out")), err_(dir / (tag + ".err")) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int n = ::open("/dev/null", O_RDONLY);
      ::dup2(n, 0);
      ::dup2(o, 1);
      ::dup2(e, 2);
      for (auto& kv : env) ::putenv(const_cast<char*>(kv.c_str()));
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      ::execvp(a[0], a.data());
      std::_Exit(127);
    }
  }
  ~Child() { kill(SIGKILL); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }

  // Waits (at most `timeout` s) until stdout contains `needle`; false if the child exits or time runs out.
  bool wait_output(const std::string& needle, double timeout) {
    auto t0 = Clock::now();
    while (since(t0) < timeout) {
      if (out().find(needle) != std::string::npos) return true;
      if (exited()) return out().find(needle) != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  // The exit code (or 128 + signal), or -1 when the child is still running after `timeout` s.
  int wait_exit(double timeout) {
    auto t0 = Clock::now();
    while (since(t0) < timeout) {
      if (exited()) return code_;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
  void kill(int sig) {
    if (pid_ > 0 && !exited()) {
      ::kill(pid_, sig);
      if (sig == SIGKILL) {
        int st = 0;
        ::waitpid(pid_, &st, 0);
        done_ = true;
        code_ = 128 + SIGKILL;
      }
    }
  }
  // VmRSS / VmHWM of the child, in KiB (0 when unknown).
  long status_kb(const char* key) const {
    std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::strlen(key));
    return 0;
  }

 private:
  bool exited() {
    if (done_) return true;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      done_ = true;
      code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return done_;
  }
  pid_t pid_ = -1;
  bool done_ = false;
  int code_ = -1;
  fs::path out_, err_;
};

inline std::string bin() { return std::string(SPLITLEAK_BIN_DIR) + "/splitleak"; }

// The port from serve's first line "serve: listening on 127.0.0.1:PORT ...".
inline uint16_t serve_port(const std::string& out) {
  size_t p = out.find("listening on 127.0.0.1:");
  if (p == std::string::npos) return 0;
  return uint16_t(std::atoi(out.c_str() + p + std::strlen("listening on 127.0.0.1:")));
}

// A free TCP port on the loopback (bound and released; good enough for a test).
inline uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A raw TCP connection to 127.0.0.1:port for hostile clients.
class Raw {
 public:
  explicit Raw(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Raw() {
    if (fd_ >= 0) ::close(fd_);
  }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;
  bool connected() const { return ok_; }

  bool send(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      ssize_t r = ::send(fd_, c, n, MSG_NOSIGNAL);
      if (r <= 0) return false;
      c += r;
      n -= size_t(r);
    }
    return true;
  }
  bool send(const sl::Bytes& b) { return send(b.data(), b.size()); }

  // Reads one frame (header + payload) within `timeout` s; nullopt on close, timeout or a bad header.
  std::optional<std::pair<sl::wire::FrameHeader, sl::Bytes>> read_frame(double timeout) {
    sl::Bytes h(sl::wire::kHeaderBytes);
    if (!read_exact(h.data(), h.size(), timeout)) return std::nullopt;
    sl::wire::FrameHeader hdr;
    try {
      hdr = sl::wire::parse_header(h.data(), 1 << 22);
    } catch (const sl::Error&) {
      return std::nullopt;
    }
    sl::Bytes p(hdr.payload_bytes);
    if (!read_exact(p.data(), p.size(), timeout)) return std::nullopt;
    return std::make_pair(hdr, p);
  }
  // Reads one ERROR frame and returns its code (0 if the next frame is something else or none comes).
  uint32_t read_error(double timeout) {
    auto f = read_frame(timeout);
    if (!f || f->first.type != sl::wire::FrameType::Error) return 0;
    return uint32_t(sl::wire::decode_error(f->second.data(), f->second.size()).code);
  }
  // Waits until the server closes the connection (reading and dropping anything it sends); the seconds it took,
  // or -1 after `timeout`.
  double wait_closed(double timeout) {
    auto t0 = Clock::now();
    char buf[4096];
    while (since(t0) < timeout) {
      pollfd p{fd_, POLLIN, 0};
      int left = int((timeout - since(t0)) * 1000) + 1;
      if (::poll(&p, 1, left) <= 0) continue;
      ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r <= 0) return since(t0);
    }
    return -1;
  }

 private:
  bool read_exact(uint8_t* p, size_t n, double timeout) {
    auto t0 = Clock::now();
    while (n > 0) {
      double left = timeout - since(t0);
      if (left <= 0) return false;
      pollfd q{fd_, POLLIN, 0};
      if (::poll(&q, 1, int(left * 1000) + 1) <= 0) continue;
      ssize_t r = ::recv(fd_, p, n, 0);
      if (r <= 0) return false;
      p += r;
      n -= size_t(r);
    }
    return true;
  }
  int fd_ = -1;
  bool ok_ = false;
};

// A random (untrained) LeNet split at `at`, written to dir/{edge,cloud}.ckpt.
inline sl::runtime::SplitFiles lenet_split(const fs::path& dir, const std::string& at, uint64_t seed = 11) {
  sl::Generator g(seed);
  sl::Model m = sl::make_model("lenet", g);
  return sl::runtime::write_split(m, sl::runtime::parse_split_list(*m.net, at), dir.string(), {{"dataset", "mnist"}});
}

inline sl::Tensor random_input(const sl::Shape& s, uint64_t seed) {
  std::mt19937 g{uint32_t(seed)};
  std::normal_distribution<float> d;
  std::vector<float> v(size_t(s.numel()));
  for (auto& x : v) x = std::max(0.0f, d(g));  // like a ReLU output
  return sl::Tensor::from_vector(v, s);
}

}  // namespace rt_test
