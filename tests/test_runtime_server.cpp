// The cloud server and the edge client over loopback TCP: answers, batching, per-request errors, fingerprints,
// graceful shutdown, hostile peers (garbage, truncated and oversize frames, wrong fingerprints, stalls, drops) while
// good edges run, mutual TLS, and two servers behind HAProxy. Every wait is bounded.
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "autograd/node.h"
#include "runtime/client.h"
#include "runtime/edge.h"
#include "runtime/server.h"
#include "tests/runtime_helpers.h"

using namespace sl;
using namespace rt_test;

namespace {

// The expected answers: the cloud's tail run here, one row at a time.
struct Reference {
  std::shared_ptr<Sequential> tail;
  explicit Reference(const std::string& cloud_ckpt, const std::string& split) {
    auto d = runtime::load_deployment(cloud_ckpt, "cloud", Device::cpu());
    tail = d.part(d.split(split));
  }
  Tensor operator()(const Tensor& v) {
    NoGradGuard ng;
    return tail->forward(v);
  }
};

float max_abs_diff(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return 1e30f;
  const float* x = a.contiguous().data<float>();
  const float* y = b.contiguous().data<float>();
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

runtime::ServerOptions quick_options() {
  runtime::ServerOptions o;
  o.log = std::getenv("SL_TEST_LOG") != nullptr;
  o.handshake_timeout_s = 2;
  o.io_timeout_s = 2;
  o.idle_timeout_s = 10;
  o.drain_timeout_s = 5;
  return o;
}

runtime::ClientOptions client_options(uint16_t port) {
  runtime::ClientOptions c;
  c.port = port;
  c.connect_timeout_s = 5;
  c.io_timeout_s = 10;
  return c;
}

}  // namespace

TEST_CASE("server: answers, batching, per-request errors that keep the connection, stats, BYE", "[runtime][server]") {
  fs::path dir = temp_dir("basic");
  auto files = lenet_split(dir, "ReLU2");
  auto opt = quick_options();
  opt.batch_wait_us = 20000;  // requests that arrive together run together
  runtime::CloudServer server(runtime::load_deployment(files.cloud_path, "cloud", Device::cpu()), opt);
  server.start();
  Reference ref(files.cloud_path, "ReLU2");
  std::string fp = files.splits[0].fingerprint;

  runtime::CloudClient c(client_options(server.port()));
  wire::Welcome w = c.hello("test-edge", {"some/other/fingerprint", fp});
  REQUIRE(w.splits.size() == 1);
  CHECK(w.splits[0].fingerprint == fp);
  CHECK(w.splits[0].sample_shape == Shape{16, 8, 8});
  CHECK(w.splits[0].outputs == 10);
  uint16_t sid = w.splits[0].split_id;

  // Eight requests in flight (rows 1..3 each), answered by id, in any order, each with its own rows.
  std::map<uint64_t, Tensor> sent;
  for (uint64_t id = 100; id < 108; ++id) {
    Tensor v = random_input(Shape{int64_t(1 + id % 3), 16, 8, 8}, id);
    sent[id] = v;
    c.send(wire::encode_request(id, {sid, v}));
  }
  uint32_t biggest_batch = 0;
  for (int i = 0; i < 8; ++i) {
    auto in = c.receive();
    REQUIRE(in.type == wire::FrameType::Response);
    REQUIRE(sent.count(in.request_id));
    CHECK(max_abs_diff(in.response.output, ref(sent[in.request_id])) < 1e-4f);
    biggest_batch = std::max(biggest_batch, in.response.batch_rows);
    sent.erase(in.request_id);
  }
  CHECK(biggest_batch > 3);  // several requests shared a batch

  // Per-request errors: an unknown split id, a tensor of the wrong shape, too many rows, the wrong dtype.
  c.send(wire::encode_request(7, {uint16_t(sid + 5), random_input(Shape{1, 16, 8, 8}, 1)}));
  auto e = c.receive();
  CHECK(e.type == wire::FrameType::Error);
  CHECK(e.request_id == 7);
  CHECK(e.error.code == wire::ErrorCode::UnknownSplit);
  c.send(wire::encode_request(8, {sid, random_input(Shape{1, 16, 4, 4}, 1)}));
  e = c.receive();
  CHECK(e.error.code == wire::ErrorCode::BadTensor);
  CHECK_THAT(e.error.message, Catch::Contains("[1, 16, 4, 4]") && Catch::Contains("16,8,8"));
  c.send(wire::encode_request(10, {sid, random_input(Shape{1, 16, 8, 8}, 1).to(DType::f64)}));
  e = c.receive();
  CHECK(e.error.code == wire::ErrorCode::BadTensor);
  // ... and the connection still works.
  Tensor v = random_input(Shape{1, 16, 8, 8}, 77);
  auto ok = c.call(wire::encode_request(11, {sid, v}), 11);
  CHECK(max_abs_diff(ok.response.output, ref(v)) < 1e-4f);

  auto stats = nlohmann::json::parse(c.stats());
  CHECK(stats["requests"]["answered"].get<int>() == 9);
  CHECK(stats["errors"]["BAD_TENSOR"].get<int>() == 2);
  CHECK(stats["errors"]["UNKNOWN_SPLIT"].get<int>() == 1);
  CHECK(stats["memory"]["request_bytes_held"].get<int>() == 0);

  c.send(wire::encode_bye("done"));
  auto bye = c.receive();
  CHECK(bye.type == wire::FrameType::Bye);
  CHECK_THROWS_WITH(c.receive(), Catch::Contains("closed"));

  // More rows than the WELCOME allows: the frame is over the announced limit, which ends the connection.
  runtime::CloudClient big(client_options(server.port()));
  big.hello("big", {fp});
  big.send(wire::encode_request(1, {sid, random_input(Shape{65, 16, 8, 8}, 1)}));
  e = big.receive();
  CHECK(e.error.code == wire::ErrorCode::TooLarge);
  CHECK_THROWS_WITH(big.receive(), Catch::Contains("closed"));
  server.stop();
  server.wait();
  fs::remove_all(dir);
}

TEST_CASE("server: an edge of another model or split is refused with both fingerprints named", "[runtime][server]") {
  fs::path dir = temp_dir("mismatch");
  auto files = lenet_split(dir / "a", "ReLU2", 1);
  auto other = lenet_split(dir / "b", "ReLU2", 2);  // same shapes, other weights
  runtime::CloudServer server(runtime::load_deployment(files.cloud_path, "cloud", Device::cpu()), quick_options());
  server.start();
  runtime::CloudClient c(client_options(server.port()));
  try {
    c.hello("stranger", {other.splits[0].fingerprint});
    FAIL("the hello was accepted");
  } catch (const wire::RemoteError& e) {
    CHECK(e.code == wire::ErrorCode::FingerprintMismatch);
    CHECK_THAT(e.what(), Catch::Contains(other.splits[0].fingerprint) && Catch::Contains(files.splits[0].fingerprint));
  }
  server.stop();
  server.wait();
  fs::remove_all(dir);
}

TEST_CASE("server: stop() finishes the requests in flight, says BYE, then closes", "[runtime][server]") {
  fs::path dir = temp_dir("drain");
  auto files = lenet_split(dir, "ReLU2");
  auto opt = quick_options();
  opt.batch_wait_us = 300000;  // the requests sit in the batcher while the server is told to stop
  opt.max_batch_rows = 64;
  runtime::CloudServer server(runtime::load_deployment(files.cloud_path, "cloud", Device::cpu()), opt);
  server.start();
  runtime::CloudClient c(client_options(server.port()));
  uint16_t sid = c.hello("e", {files.splits[0].fingerprint}).splits.at(0).split_id;
  for (uint64_t id = 1; id <= 8; ++id) c.send(wire::encode_request(id, {sid, random_input(Shape{1, 16, 8, 8}, id)}));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto t0 = Clock::now();
  server.stop();
  int answered = 0;
  for (int i = 0; i < 8; ++i) answered += c.receive().type == wire::FrameType::Response;
  CHECK(answered == 8);
  CHECK(c.receive().type == wire::FrameType::Bye);
  CHECK_THROWS(c.receive());
  server.wait();
  CHECK(since(t0) < 3);
  // Nobody listens any more.
  CHECK_THROWS_AS(runtime::CloudClient(client_options(server.port())), IoError);
  fs::remove_all(dir);
}

TEST_CASE("server: an edge that never reads its answers is cut off and blocks nobody", "[runtime][server]") {
  fs::path dir = temp_dir("noread");
  auto files = lenet_split(dir, "ReLU2");
  auto opt = quick_options();
  opt.io_timeout_s = 0.3;
  runtime::CloudServer server(runtime::load_deployment(files.cloud_path, "cloud", Device::cpu()), opt);
  server.start();
  std::string fp = files.splits[0].fingerprint;
  // STATS answers are about a kilobyte each: a few thousand unread ones fill every buffer between the two.
  Raw hog(server.port());
  Bytes stats_request = wire::encode_stats_request(1);
  Bytes burst;
  for (int i = 0; i < 4000; ++i) burst.insert(burst.end(), stats_request.begin(), stats_request.end());
  hog.send(burst);
  // Meanwhile another edge is served as usual.
  runtime::CloudClient c(client_options(server.port()));
  uint16_t sid = c.hello("polite", {fp}).splits.at(0).split_id;
  for (uint64_t id = 1; id <= 50; ++id) {
    auto t0 = Clock::now();
    auto in = c.call(wire::encode_request(id, {sid, random_input(Shape{1, 16, 8, 8}, id)}), id);
    CHECK(in.type == wire::FrameType::Response);
    CHECK(since(t0) < 0.25);
  }
  auto t0 = Clock::now();
  nlohmann::json st;
  while (since(t0) < 5) {
    st = server.stats();
    if (st["connections"]["timeouts"].get<int>() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(st["connections"]["timeouts"].get<int>() == 1);  // the hog, for not reading
  CHECK(hog.wait_closed(5) >= 0);
  server.stop();
  server.wait();
  fs::remove_all(dir);
}

TEST_CASE("edge runner: pipelined and paced runs, every image answered once, link emulation adds its delay",
          "[runtime][server]") {
  fs::path dir = temp_dir("runner");
  auto files = lenet_split(dir, "ReLU2");
  runtime::CloudServer server(runtime::load_deployment(files.cloud_path, "cloud", Device::cpu()), quick_options());
  server.start();
  auto edge = runtime::load_deployment(files.edge_path, "edge", Device::cpu());
  auto head = edge.part(edge.split("ReLU2"));
  Generator g(3);
  Model whole = make_model("lenet", g);
  Tensor images = random_input(Shape{37, 1, 28, 28}, 5);
  runtime::EdgeCompute compute = [&](const Tensor& x, int64_t) { return head->forward(x); };

  runtime::CloudClient c(client_options(server.port()));
  c.hello("runner", edge.fingerprints());
  runtime::EdgeRunOptions o;
  o.batch = 4;
  o.window = 3;
  o.warmup = 2;
  auto r = runtime::run_edge(c, compute, images, {}, o);
  CHECK(r.images == 37);
  CHECK(r.timings.size() == 10);  // 9 requests of 4 and one of 1
  for (auto p : r.predictions) CHECK((p >= 0 && p < 10));

  // The same connection again, through a 2 Mbit/s link with 20 ms RTT, one image per request.
  o = {};
  o.link.mbps = 2;
  o.link.rtt_ms = 20;
  auto slow = runtime::run_edge(c, compute, images.slice(0, 3), {}, o);
  REQUIRE(slow.timings.size() == 3);
  double expect = 20e-3 + double(slow.timings[0].up_bytes + slow.timings[0].down_bytes) * 8 / 2e6;
  for (auto& t : slow.timings) {
    CHECK(t.e2e_s >= expect);
    CHECK(t.e2e_s < expect + 0.05);
    CHECK(t.wire_s > 0.9 * expect);
  }
  CHECK(slow.predictions == std::vector<int32_t>(r.predictions.begin(), r.predictions.begin() + 3));

  // Paced at 200 requests/s: the run takes about 20/200 s.
  o = {};
  o.rate = 200;
  auto paced = runtime::run_edge(c, compute, images.slice(0, 20), {}, o);
  CHECK(paced.wall_s > 0.09);
  CHECK(paced.wall_s < 0.5);
  server.stop();
  server.wait();
  fs::remove_all(dir);
}

// ---- a hostile crowd ---------------------------------------------------------------------------------------------
TEST_CASE("server under attack: 16 edges x 500 requests all answered correctly, hostile peers cut off, memory bounded",
          "[runtime][server][robustness]") {
  fs::path dir = temp_dir("storm");
  auto files = lenet_split(dir, "ReLU2");
  std::string fp = files.splits[0].fingerprint;
  std::vector<std::string> env;
#if defined(__SANITIZE_ADDRESS__)
  env.push_back("ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=8");
  const long kRssBoundKb = 160 * 1024;
#else
  const long kRssBoundKb = 48 * 1024;
#endif
  Child serve({bin(),
               "serve",
               "--model",
               files.cloud_path,
               "--listen",
               "127.0.0.1:0",
               "--max-inflight",
               "8",
               "--io-timeout",
               "0.3",
               "--handshake-timeout",
               "0.5",
               "--idle-timeout",
               "3",
               "--memory-budget-mb",
               "2",
               "--max-connections",
               "128",
               "--threads",
               "1",
               "--quiet"},
              dir, "serve", env);
  REQUIRE(serve.wait_output("listening on", 20));
  uint16_t port = serve_port(serve.out());
  REQUIRE(port > 0);

  constexpr int kEdges = 16, kRequests = 500, kWindow = 4;
  // Every request carries its own tensor; the answers are known in advance.
  Tensor inputs = random_input(Shape{kEdges * kRequests, 16, 8, 8}, 2024);
  Tensor expected = Reference(files.cloud_path, "ReLU2")(inputs);
  {
    runtime::CloudClient warm(client_options(port));  // one request before the baseline
    uint16_t sid = warm.hello("warm", {fp}).splits.at(0).split_id;
    warm.call(wire::encode_request(1, {sid, inputs.slice(0, 1)}), 1);
  }
  long rss_before = serve.status_kb("VmRSS:");

  std::atomic<int> answered{0}, wrong{0}, edges_done{0};
  std::mutex mu;
  std::string first_problem;
  auto problem = [&](const std::string& s) {
    std::lock_guard<std::mutex> lk(mu);
    if (first_problem.empty()) first_problem = s;
  };
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int e = 0; e < kEdges; ++e)
    threads.emplace_back([&, e] {
      try {
        runtime::CloudClient c(client_options(port));
        uint16_t sid = c.hello(str("good-", e), {fp}).splits.at(0).split_id;
        std::set<uint64_t> pending;
        int next = 0, done = 0;
        while (done < kRequests) {
          while (next < kRequests && int(pending.size()) < kWindow) {
            uint64_t id = uint64_t(e * kRequests + next);
            c.send(wire::encode_request(id, {sid, inputs.slice(int64_t(id), int64_t(id) + 1)}));
            pending.insert(id);
            ++next;
          }
          auto in = c.receive();
          if (in.type != wire::FrameType::Response || !pending.count(in.request_id)) {
            problem(str("edge ", e, ": unexpected ", wire::frame_type_name(in.type), " for request ", in.request_id));
            ++wrong;
            return;
          }
          int64_t id = int64_t(in.request_id);
          if (max_abs_diff(in.response.output, expected.slice(id, id + 1)) > 1e-4f) {
            problem(str("edge ", e, ": wrong answer to request ", id));
            ++wrong;
          }
          pending.erase(in.request_id);
          ++done;
          ++answered;
        }
      } catch (const std::exception& ex) {
        problem(str("edge ", e, ": ", ex.what()));
        ++wrong;
      }
      ++edges_done;
    });

  // The hostile peers, each kind on its own thread, until the good edges are through (bounded in any case).
  std::map<std::string, std::atomic<int>> seen;  // kind -> times the server reacted as it should
  for (auto* k : {"garbage", "truncated", "oversize", "oversize-before-hello", "request-before-hello", "fingerprint",
                  "bad-crc", "stall", "silent", "drop"})
    seen[k] = 0;
  std::map<std::string, std::atomic<int>> tried;
  for (auto& [k, v] : seen) tried[k] = 0;
  Bytes hello = wire::encode_hello({"hostile", {fp}});
  Bytes request = wire::encode_request(5, {0, inputs.slice(0, 1)});
  auto keep_going = [&](int i) { return i < 400 && (edges_done < kEdges || i < 3) && since(t0) < 60; };
  auto hostile = [&](const std::string& kind, auto&& once) {
    threads.emplace_back([&, kind, once] {
      std::mt19937 rng{uint32_t(std::hash<std::string>()(kind))};
      for (int i = 0; keep_going(i); ++i) {
        ++tried[kind];
        if (once(rng)) ++seen[kind];
      }
    });
  };
  hostile("garbage", [&](std::mt19937& rng) {
    Raw r(port);
    Bytes junk(1 + rng() % 3000);
    for (auto& b : junk) b = uint8_t(rng());
    r.send(junk);
    return r.wait_closed(3) >= 0;
  });
  hostile("truncated", [&](std::mt19937& rng) {  // a request cut short, then the connection closed
    Raw r(port);
    r.send(hello);
    r.read_frame(2);
    r.send(request.data(), 24 + rng() % (request.size() - 25));
    return true;
  });
  hostile("oversize", [&](std::mt19937&) {
    Raw r(port);
    r.send(hello);
    r.read_frame(2);
    Bytes h(request.begin(), request.begin() + 24);
    for (int i = 16; i < 20; ++i) h[size_t(i)] = 0xff;  // 4 GiB
    r.send(h);
    return r.read_error(2) == uint32_t(wire::ErrorCode::TooLarge) && r.wait_closed(3) >= 0;
  });
  hostile("oversize-before-hello", [&](std::mt19937&) {  // 1 MiB is over the 64 KiB allowed before HELLO
    Raw r(port);
    Bytes h(request.begin(), request.begin() + 24);
    h[16] = 0, h[17] = 0, h[18] = 0x10, h[19] = 0;
    return r.send(h) && r.read_error(2) == uint32_t(wire::ErrorCode::TooLarge) && r.wait_closed(3) >= 0;
  });
  hostile("request-before-hello", [&](std::mt19937&) {
    Raw r(port);
    return r.send(request) && r.read_error(2) == uint32_t(wire::ErrorCode::Unexpected) && r.wait_closed(3) >= 0;
  });
  hostile("fingerprint", [&](std::mt19937&) {
    Raw r(port);
    r.send(wire::encode_hello({"impostor", {"lenet/ReLU2/s00000000/w00000000"}}));
    return r.read_error(2) == uint32_t(wire::ErrorCode::FingerprintMismatch) && r.wait_closed(3) >= 0;
  });
  hostile("bad-crc", [&](std::mt19937& rng) {
    Raw r(port);
    r.send(hello);
    r.read_frame(2);
    Bytes bad = request;
    bad[24 + rng() % (bad.size() - 24)] ^= 0x10;
    r.send(bad);
    return r.read_error(2) == uint32_t(wire::ErrorCode::BadFrame) && r.wait_closed(3) >= 0;
  });
  hostile("stall", [&](std::mt19937& rng) {  // half a frame, then nothing: cut off after --io-timeout
    Raw r(port);
    r.send(hello);
    r.read_frame(2);
    r.send(request.data(), 1 + rng() % 100);
    double t = r.wait_closed(5);
    return t >= 0 && t < 2;
  });
  hostile("silent", [&](std::mt19937&) {  // connects and says nothing: cut off after --handshake-timeout
    Raw r(port);
    double t = r.wait_closed(5);
    return t >= 0 && t < 2.5;
  });
  hostile("drop", [&](std::mt19937& rng) {  // drops the connection in the middle of a frame
    Raw r(port);
    r.send(hello);
    r.send(request.data(), rng() % request.size());
    return true;
  });
  for (auto& t : threads) t.join();
  double seconds = since(t0);

  INFO(first_problem);
  CHECK(wrong == 0);
  CHECK(answered == kEdges * kRequests);  // none lost, none crossed
  for (auto& [k, v] : seen) {
    INFO(k << ": " << v << " of " << tried[k]);
    CHECK(tried[k] >= 3);
    CHECK(v == tried[k]);
  }
  // Still up and answering; its request memory stayed within the budget and its RSS did not grow with the attack.
  runtime::CloudClient after(client_options(port));
  uint16_t sid = after.hello("after", {fp}).splits.at(0).split_id;
  auto ok = after.call(wire::encode_request(3, {sid, inputs.slice(3, 4)}), 3);
  CHECK(max_abs_diff(ok.response.output, expected.slice(3, 4)) <= 1e-4f);
  auto stats = nlohmann::json::parse(after.stats());
  long rss_peak = serve.status_kb("VmHWM:");
  INFO(stats.dump());
  CHECK(stats["memory"]["request_bytes_peak"].get<int64_t>() <= 2 << 20);
  CHECK(stats["errors"]["BAD_FRAME"].get<int>() > 0);
  CHECK(stats["errors"]["TOO_LARGE"].get<int>() > 0);
  CHECK(stats["errors"]["FINGERPRINT_MISMATCH"].get<int>() > 0);
  CHECK(stats["connections"]["timeouts"].get<int>() > 0);
  CHECK(rss_peak - rss_before < kRssBoundKb);
  WARN("robustness: " << answered << " requests from " << kEdges << " edges in " << seconds << " s beside "
                      << tried["garbage"] << "+ hostile connections of each kind; server RSS " << rss_before / 1024
                      << " MiB before, peak " << rss_peak / 1024 << " MiB");
  serve.kill(SIGTERM);
  CHECK(serve.wait_exit(10) == 0);
  fs::remove_all(dir);
}

// ---- mutual TLS ---------------------------------------------------------------------------------------------------
namespace {

// A deployment CA, a server certificate for 127.0.0.1, an edge certificate, and a second CA with its own edge
// certificate, made with the openssl command line (the README's commands).
void make_pki(const fs::path& d) {
  std::string q = " >/dev/null 2>&1";
  auto key = [&](const std::string& name, const std::string& subj) {
    return "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + (d / (name + ".key")).string() +
           " -out " + (d / (name + ".csr")).string() + " -subj '/CN=" + subj + "'" + q;
  };
  auto ca = [&](const std::string& name, const std::string& subj) {
    return "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout " +
           (d / (name + ".key")).string() + " -out " + (d / (name + ".crt")).string() + " -subj '/CN=" + subj + "'" + q;
  };
  auto sign = [&](const std::string& name, const std::string& by, const std::string& ext) {
    return "openssl x509 -req -days 2 -in " + (d / (name + ".csr")).string() + " -CA " + (d / (by + ".crt")).string() +
           " -CAkey " + (d / (by + ".key")).string() + " -CAcreateserial -out " + (d / (name + ".crt")).string() +
           (ext.empty() ? "" : " -extfile " + (d / ext).string()) + q;
  };
  std::ofstream(d / "server.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  for (const std::string& cmd : {ca("ca", "splitleak test CA"), key("server", "cloud"),
                                 sign("server", "ca", "server.ext"), key("edge", "edge-1"), sign("edge", "ca", ""),
                                 ca("other-ca", "another CA"), key("rogue", "rogue"), sign("rogue", "other-ca", "")})
    REQUIRE(std::system(cmd.c_str()) == 0);
}

}  // namespace

TEST_CASE("TLS: an edge with the deployment CA's certificate gets in; another CA's, or none, is refused",
          "[runtime][server][tls]") {
  fs::path dir = temp_dir("tls");
  make_pki(dir);
  auto files = lenet_split(dir, "ReLU2");
  auto p = [&](const std::string& f) { return (dir / f).string(); };
  auto opt = quick_options();
  opt.tls = {p("server.crt"), p("server.key"), p("ca.crt"), ""};
  runtime::CloudServer server(runtime::load_deployment(files.cloud_path, "cloud", Device::cpu()), opt);
  server.start();
  std::string fp = files.splits[0].fingerprint;
  Reference ref(files.cloud_path, "ReLU2");

  auto opts = [&](const std::string& cert, const std::string& key, const std::string& ca) {
    auto c = client_options(server.port());
    c.tls = {cert.empty() ? "" : p(cert), key.empty() ? "" : p(key), ca.empty() ? "" : p(ca), ""};
    return c;
  };
  {  // the right certificate: works, and the server knows who it is
    runtime::CloudClient c(opts("edge.crt", "edge.key", "ca.crt"));
    CHECK(c.server_identity() == "cloud");
    uint16_t sid = c.hello("e", {fp}).splits.at(0).split_id;
    Tensor v = random_input(Shape{2, 16, 8, 8}, 8);
    auto in = c.call(wire::encode_request(1, {sid, v}), 1);
    CHECK(max_abs_diff(in.response.output, ref(v)) < 1e-4f);
  }
  // Another CA's certificate: the server refuses the handshake (TLS 1.3 tells the client at its first read).
  CHECK_THROWS_AS(
      [&] {
        runtime::CloudClient c(opts("rogue.crt", "rogue.key", "ca.crt"));
        c.hello("rogue", {fp});
      }(),
      IoError);
  // No certificate at all (plain TCP to a TLS server): refused.
  CHECK_THROWS_AS(
      [&] {
        runtime::CloudClient c(opts("", "", ""));
        c.hello("plain", {fp});
      }(),
      IoError);
  // The edge checks the server too: a CA that did not sign the server's certificate, or the wrong name.
  CHECK_THROWS_WITH(runtime::CloudClient(opts("edge.crt", "edge.key", "other-ca.crt")),
                    Catch::Contains("certificate verify failed"));
  auto named = opts("edge.crt", "edge.key", "ca.crt");
  named.tls.server_name = "cloud.example.org";
  CHECK_THROWS_WITH(runtime::CloudClient(named), Catch::Contains("certificate verify failed"));
  // A key that does not belong to the certificate is caught before connecting.
  CHECK_THROWS_WITH(runtime::CloudClient(opts("edge.crt", "rogue.key", "ca.crt")),
                    Catch::Contains("must belong to certificate"));

  auto stats = server.stats();
  CHECK(stats["connections"]["tls_refused"].get<int>() >= 4);
  CHECK(stats["requests"]["answered"].get<int>() == 1);
  server.stop();
  server.wait();
  fs::remove_all(dir);
}

// ---- scale-out behind a TCP load balancer
// -------------------------------------------------------------------------------
TEST_CASE("HAProxy: two servers behind one address, 8 edges through it, nothing lost", "[runtime][server][haproxy]") {
  const char* haproxy = "/usr/sbin/haproxy";
  REQUIRE(fs::exists(haproxy));  // scripts/install-deps.sh installs it
  fs::path dir = temp_dir("haproxy");
  auto files = lenet_split(dir, "ReLU2");
  std::string fp = files.splits[0].fingerprint;
  std::vector<std::unique_ptr<Child>> clouds;
  std::vector<uint16_t> ports;
  for (int i = 0; i < 2; ++i) {
    clouds.push_back(std::make_unique<Child>(
        std::vector<std::string>{bin(), "serve", "--model", files.cloud_path, "--listen", "127.0.0.1:0", "--name",
                                 str("cloud-", i), "--quiet", "--threads", "1"},
        dir, str("cloud", i)));
    REQUIRE(clouds.back()->wait_output("listening on", 20));
    ports.push_back(serve_port(clouds.back()->out()));
  }
  uint16_t front = free_port();
  std::ofstream(dir / "haproxy.cfg") << "global\n  maxconn 256\n"
                                     << "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n"
                                     << "  timeout server 30s\n"
                                     << "frontend edges\n  bind 127.0.0.1:" << front << "\n  default_backend clouds\n"
                                     << "backend clouds\n  balance roundrobin\n"
                                     << "  server c0 127.0.0.1:" << ports[0] << "\n"
                                     << "  server c1 127.0.0.1:" << ports[1] << "\n";
  Child lb({haproxy, "-db", "-f", (dir / "haproxy.cfg").string()}, dir, "haproxy");
  bool up = false;
  for (auto t0 = Clock::now(); !up && since(t0) < 10; std::this_thread::sleep_for(std::chrono::milliseconds(20)))
    up = Raw(front).connected();
  REQUIRE(up);

  constexpr int kEdges = 8, kRequests = 100;
  Tensor inputs = random_input(Shape{kEdges * kRequests, 16, 8, 8}, 99);
  Tensor expected = Reference(files.cloud_path, "ReLU2")(inputs);
  std::atomic<int> answered{0}, wrong{0};
  std::mutex mu;
  std::set<std::string> servers_seen;
  std::vector<std::thread> threads;
  for (int e = 0; e < kEdges; ++e)
    threads.emplace_back([&, e] {
      try {
        runtime::CloudClient c(client_options(front));
        auto w = c.hello(str("edge-", e), {fp});
        {
          std::lock_guard<std::mutex> lk(mu);
          servers_seen.insert(w.server_name);
        }
        for (int i = 0; i < kRequests; ++i) {
          int64_t id = e * kRequests + i;
          auto in = c.call(wire::encode_request(uint64_t(id), {w.splits.at(0).split_id, inputs.slice(id, id + 1)}),
                           uint64_t(id));
          if (max_abs_diff(in.response.output, expected.slice(id, id + 1)) > 1e-4f) ++wrong;
          ++answered;
        }
      } catch (const std::exception&) {
        ++wrong;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(wrong == 0);
  CHECK(answered == kEdges * kRequests);
  CHECK(servers_seen == std::set<std::string>{"cloud-0", "cloud-1"});  // both did work
  int per_server = 0;
  for (auto port : ports) {
    runtime::CloudClient c(client_options(port));
    auto s = nlohmann::json::parse(c.stats());
    CHECK(s["requests"]["answered"].get<int>() > 0);
    per_server += s["requests"]["answered"].get<int>();
  }
  CHECK(per_server == kEdges * kRequests);
  lb.kill(SIGTERM);
  for (auto& c : clouds) {
    c->kill(SIGTERM);
    CHECK(c->wait_exit(10) == 0);
  }
  fs::remove_all(dir);
}
