// The cloud server and the edge client over loopback TCP: answers, batching, per-request errors, fingerprints,
// graceful shutdown, hostile peers (garbage, truncated and oversize frames, wrong fingerprints, stalls, drops) while
// good edges run, mutual TLS, and two servers behind HAProxy. Every wait is bounded.
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

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
