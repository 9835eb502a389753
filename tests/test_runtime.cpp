// The runtime's pieces without a network: the shared tensor encoding, the wire format (every message, every
// malformed header, chunked streams, CRC), split deployment and fingerprints, the observation file (torn tails,
// repair, damage), the link emulator and the latency histogram.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "autograd/node.h"
#include "runtime/deploy.h"
#include "runtime/link.h"
#include "runtime/metrics.h"
#include "runtime/observations.h"
#include "runtime/wire.h"
#include "tensor/io.h"
#include "tensor/serialize.h"

using namespace sl;
namespace fs = std::filesystem;

namespace {

Tensor random_tensor(const Shape& s, uint64_t seed) {
  std::mt19937 g{uint32_t(seed)};
  std::normal_distribution<float> d;
  std::vector<float> v(size_t(s.numel()));
  for (auto& x : v) x = d(g);
  return Tensor::from_vector(v, s);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.contiguous().raw_data(), b.contiguous().raw_data(), a.nbytes()) == 0;
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("splitleak_rt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

// ---- tensor/serialize ------------------------------------------------------------------------------------------
TEST_CASE("serialize: tensors of every dtype and rank round-trip bit for bit", "[runtime][serialize]") {
  std::vector<Tensor> ts = {random_tensor(Shape{3, 4}, 1), Tensor::scalar(2.5, DType::f64),
                            Tensor::from_labels({1, -7, 9}), random_tensor(Shape{1, 1, 1, 1, 1, 1, 1, 2}, 2),
                            Tensor::empty(Shape{0, 5})};
  for (auto& t : ts) {
    Bytes b;
    put_tensor(b, t);
    CHECK(b.size() == encoded_tensor_size(t));
    ByteReader r(b.data(), b.size(), "test");
    Tensor back = r.tensor("t");
    CHECK(r.left() == 0);
    CHECK(same_bits(back, t));
  }
  // A non-contiguous view encodes its values in row-major order.
  Tensor base = random_tensor(Shape{4, 6}, 3);
  Tensor rows = base.slice(1, 3);
  Bytes b;
  put_tensor(b, rows);
  ByteReader r(b.data(), b.size(), "test");
  CHECK(same_bits(r.tensor("t"), rows.clone()));
}

TEST_CASE("serialize: every truncation and bad header is an IoError naming the offset", "[runtime][serialize]") {
  Bytes b;
  put_tensor(b, random_tensor(Shape{2, 3}, 4));
  for (size_t n = 0; n < b.size(); ++n) {
    ByteReader r(b.data(), n, "cut");
    CHECK_THROWS_AS(r.tensor("t"), IoError);
  }
  Bytes bad = b;
  bad[0] = 7;  // dtype
  CHECK_THROWS_WITH(ByteReader(bad.data(), bad.size(), "src").tensor("t"),
                    Catch::Contains("src") && Catch::Contains("unknown dtype") && Catch::Contains("offset 0"));
  bad = b;
  bad[1] = 9;  // rank
  CHECK_THROWS_WITH(ByteReader(bad.data(), bad.size(), "src").tensor("t"), Catch::Contains("rank 9"));
  bad = b;
  for (int i = 0; i < 8; ++i) bad[2 + size_t(i)] = 0xff;  // first dimension 2^64 - 1
  CHECK_THROWS_WITH(ByteReader(bad.data(), bad.size(), "src").tensor("t"), Catch::Contains("absurd dimension"));
  TensorLimits lim;
  lim.max_bytes = 8;  // the tensor holds 24 bytes
  CHECK_THROWS_WITH(ByteReader(b.data(), b.size(), "src").tensor("t", lim), Catch::Contains("limit"));
  std::string s = "hello";
  Bytes sb;
  put_string(sb, s);
  CHECK_THROWS_WITH(ByteReader(sb.data(), sb.size(), "src").string("name", 3), Catch::Contains("at most 3"));
  CHECK(ByteReader(sb.data(), sb.size(), "src").string("name") == s);

  // Text: no control characters, well-formed UTF-8; to_text repairs, and cuts between characters.
  Bytes tb;
  put_string(tb, "bad\x1b[2Jname");
  CHECK_THROWS_WITH(ByteReader(tb.data(), tb.size(), "src").text("name"),
                    Catch::Contains("not text") && Catch::Contains("offset 7"));
  CHECK(to_text("a\x1b\xff"
                "b") == "a??b");
  CHECK(to_text("\xc3\xa9\xc3\xa9", 3) == "\xc3\xa9");
  CHECK(first_non_text(to_text("\xc3\xa9\xc3\xa9", 3)) == std::string::npos);
}

// ---- wire format -------------------------------------------------------------------------------------------------
TEST_CASE("wire: every message round-trips through a FrameAssembler fed byte by byte", "[runtime][wire]") {
  wire::Welcome w;
  w.server_name = "cloud";
  w.max_payload = 5000;
  w.max_inflight = 8;
  w.max_rows = 4;
  w.splits.push_back({3, "lenet/ReLU2/s1/w2", "ReLU2", Shape{16, 8, 8}, 10});
  wire::Request req{3, random_tensor(Shape{2, 16, 8, 8}, 5)};
  wire::Response resp{3, 11, 22, 7, random_tensor(Shape{2, 10}, 6)};
  std::vector<Bytes> frames = {wire::encode_hello({"edge-1", {"a/b/c", "d/e/f"}}),
                               wire::encode_welcome(w),
                               wire::encode_request(42, req),
                               wire::encode_response(42, resp),
                               wire::encode_error(42, {wire::ErrorCode::BadTensor, "no"}),
                               wire::encode_stats_request(9),
                               wire::encode_stats(9, "{\"x\":1}"),
                               wire::encode_bye("done")};
  Bytes stream;
  for (auto& f : frames) stream.insert(stream.end(), f.begin(), f.end());

  wire::FrameAssembler in(1 << 16, 64);
  std::vector<wire::FrameType> types;
  for (uint8_t byte : stream) {
    uint8_t* dst = in.space();
    REQUIRE(in.space_left() >= 1);
    *dst = byte;
    in.commit(1);
    size_t need = in.capacity_needed();
    if (need > in.capacity()) in.reserve(need);
    while (auto f = in.next()) {
      const uint8_t* p = f->payload;
      size_t n = f->header.payload_bytes;
      types.push_back(f->header.type);
      switch (f->header.type) {
        case wire::FrameType::Hello: {
          auto h = wire::decode_hello(p, n);
          CHECK(h.edge_name == "edge-1");
          CHECK(h.fingerprints == std::vector<std::string>{"a/b/c", "d/e/f"});
          break;
        }
        case wire::FrameType::Welcome: {
          auto x = wire::decode_welcome(p, n);
          CHECK(x.server_name == "cloud");
          CHECK(x.max_payload == 5000);
          CHECK(x.max_inflight == 8);
          CHECK(x.max_rows == 4);
          REQUIRE(x.splits.size() == 1);
          CHECK(x.splits[0].split_id == 3);
          CHECK(x.splits[0].sample_shape == Shape{16, 8, 8});
          CHECK(x.find("lenet/ReLU2/s1/w2") != nullptr);
          break;
        }
        case wire::FrameType::Request: {
          auto r = wire::decode_request(p, n);
          CHECK(f->header.request_id == 42);
          CHECK(r.split_id == 3);
          CHECK(same_bits(r.input, req.input));
          break;
        }
        case wire::FrameType::Response: {
          auto r = wire::decode_response(p, n);
          CHECK(r.queue_us == 11);
          CHECK(r.compute_us == 22);
          CHECK(r.batch_rows == 7);
          CHECK(same_bits(r.output, resp.output));
          break;
        }
        case wire::FrameType::Error: {
          auto e = wire::decode_error(p, n);
          CHECK(e.code == wire::ErrorCode::BadTensor);
          CHECK(e.message == "no");
          break;
        }
        case wire::FrameType::Stats:
          CHECK(wire::decode_stats(p, n) == "{\"x\":1}");
          break;
        case wire::FrameType::Bye:
          CHECK(wire::decode_bye(p, n) == "done");
          break;
        default:
          break;
      }
    }
  }
  CHECK(types.size() == frames.size());
  CHECK(!in.has_partial());
  CHECK(in.shrink() > 0);  // the request made the buffer grow; empty again, it shrinks back
  CHECK(in.capacity() == 64);
}

TEST_CASE("wire: the bytes of docs/wire-protocol.md's worked example", "[runtime][wire]") {
  const char* check = "123456789";
  CHECK(io::crc32(check, 9) == 0xCBF43926u);
  Bytes f = wire::encode_hello({"e", {"f"}});
  Bytes expect = {0x53, 0x50, 0x4c, 0x57, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0e, 0, 0, 0};
  REQUIRE(f.size() == 24 + 14);
  CHECK(Bytes(f.begin(), f.begin() + 20) == expect);
  Bytes payload = {1, 0, 0, 0, 'e', 1, 0, 0, 0, 1, 0, 0, 0, 'f'};
  CHECK(Bytes(f.begin() + 24, f.end()) == payload);
  uint32_t crc = io::crc32(payload.data(), payload.size(), io::crc32(f.data(), 20));
  CHECK(f[20] == uint8_t(crc));
  CHECK(f[23] == uint8_t(crc >> 24));
  CHECK(wire::encode_request(7, {0, Tensor::zeros(Shape{1, 16, 8, 8})}).size() == 4158);
}

TEST_CASE("wire: bad magic, version, type, oversize length and CRC are refused before any allocation",
          "[runtime][wire]") {
  Bytes f = wire::encode_request(1, {0, random_tensor(Shape{1, 4}, 7)});
  // 0: the frame was accepted; 100: still incomplete (waiting for bytes that never come); else the error code.
  auto code_of = [](const Bytes& b, uint32_t max) {
    try {
      wire::FrameAssembler in(max, 64);
      size_t fed = 0;
      while (fed < b.size()) {
        size_t need = in.capacity_needed();
        if (need > in.capacity()) in.reserve(need);
        uint8_t* dst = in.space();
        size_t n = std::min(b.size() - fed, in.space_left());
        std::memcpy(dst, b.data() + fed, n);
        in.commit(n);
        fed += n;
        if (auto f = in.next()) return wire::ErrorCode(0);
      }
      return wire::ErrorCode(100);
    } catch (const wire::ProtocolError& e) {
      return e.code;
    }
  };
  CHECK(code_of(f, 1 << 20) == wire::ErrorCode(0));
  Bytes b = f;
  b[0] = 'X';
  CHECK(code_of(b, 1 << 20) == wire::ErrorCode::BadFrame);
  b = f;
  b[4] = 2;
  CHECK(code_of(b, 1 << 20) == wire::ErrorCode::UnsupportedVersion);
  b = f;
  b[6] = 99;
  CHECK(code_of(b, 1 << 20) == wire::ErrorCode::BadFrame);
  b = f;
  for (int i = 16; i < 20; ++i) b[size_t(i)] = 0xff;  // a 4 GiB payload
  CHECK(code_of(b, 1 << 20) == wire::ErrorCode::TooLarge);
  CHECK(code_of(f, 16) == wire::ErrorCode::TooLarge);  // over the limit announced for this connection
  {
    wire::FrameAssembler in(1 << 20, 64);
    std::memcpy(in.space(), b.data(), 24);
    in.commit(24);
    CHECK_THROWS_AS(in.capacity_needed(), wire::ProtocolError);
    CHECK(in.capacity() == 64);  // nothing grew
  }
  // Any single flipped bit, anywhere in the frame, is caught (by the header checks or the CRC).
  for (size_t i = 0; i < f.size(); ++i)
    for (int bit = 0; bit < 8; bit += 3) {
      b = f;
      b[i] ^= uint8_t(1 << bit);
      INFO("byte " << i << " bit " << bit);
      CHECK(code_of(b, 1 << 20) != wire::ErrorCode(0));
    }
}

TEST_CASE("wire: malformed payloads behind a valid CRC are BAD_FRAME, never a crash", "[runtime][wire]") {
  Bytes ok = wire::encode_hello({"e", {"fp"}});
  // Truncate the payload at every length and re-seal it with a correct CRC.
  for (size_t n = 0; n + 24 < ok.size(); ++n) {
    wire::FrameBuilder b(wire::FrameType::Hello, 0);
    b.payload().insert(b.payload().end(), ok.begin() + 24, ok.begin() + 24 + long(n));
    Bytes f = b.finish();
    CHECK_THROWS_AS(wire::decode_hello(f.data() + 24, n), wire::ProtocolError);
  }
  wire::FrameBuilder b(wire::FrameType::Hello, 0);
  put_string(b.payload(), "e");
  put_uint(b.payload(), 1000000, 4);  // fingerprint count
  Bytes f = b.finish();
  CHECK_THROWS_WITH(wire::decode_hello(f.data() + 24, f.size() - 24), Catch::Contains("fingerprint count"));
  Bytes r = wire::encode_request(1, {0, random_tensor(Shape{1, 4}, 7)});
  CHECK_THROWS_WITH(wire::decode_request(r.data() + 24, r.size() - 24, 8), Catch::Contains("limit"));
  // Names and texts must be text: an escape sequence in an edge name would end up in the server's log.
  wire::FrameBuilder nb(wire::FrameType::Hello, 0);
  put_string(nb.payload(), "edge\x1b]0;owned\x07");
  put_uint(nb.payload(), 1, 4);
  put_string(nb.payload(), "fp");
  Bytes nf = nb.finish();
  CHECK_THROWS_WITH(wire::decode_hello(nf.data() + 24, nf.size() - 24), Catch::Contains("not text"));
  // What the encoders send is always text, whatever they are given.
  Bytes e = wire::encode_error(1, {wire::ErrorCode::Internal, std::string(5000, 'x') + "\x01"});
  CHECK(wire::decode_error(e.data() + 24, e.size() - 24).message.size() == wire::kMaxMessageBytes);
}

// ---- deployment ----------------------------------------------------------------------------------------------------
TEST_CASE("split: edge and cloud files hold only their layers; head then tail is the whole model",
          "[runtime][deploy]") {
  fs::path dir = temp_dir("deploy");
  Generator g(5);
  Model m = make_model("lenet", g);
  m.net->eval();
  auto names = runtime::parse_split_list(*m.net, "pool2,ReLU2");
  CHECK(names == std::vector<std::string>{"ReLU2", "pool2"});  // model order
  auto f = runtime::write_split(m, names, dir.string(), {{"dataset", "mnist"}});
  auto edge = runtime::load_deployment(f.edge_path, "edge", Device::cpu());
  auto cloud = runtime::load_deployment(f.cloud_path, "cloud", Device::cpu());
  CHECK(edge.layers == std::vector<std::string>{"conv1", "ReLU1", "pool1", "conv2", "ReLU2", "pool2"});
  CHECK(cloud.layers.front() == "pool2");                                        // the tail of the shallowest split
  for (auto& [name, t] : cloud.ckpt.tensors) CHECK(name.rfind("conv", 0) != 0);  // no edge weights in the cloud file
  CHECK(cloud.ckpt.get("dataset") == "mnist");

  Tensor x = random_tensor(m.batch_shape(3), 9);
  NoGradGuard ng;
  Tensor whole = m.net->forward(x);
  for (auto& name : names) {
    const auto& se = edge.split(name);
    const auto& sc = cloud.split(name);
    CHECK(se.fingerprint == sc.fingerprint);
    Tensor v = edge.part(se)->forward(x);
    CHECK(v.shape() == Shape{3, se.sample_shape[0], se.sample_shape[1], se.sample_shape[2]});
    CHECK(same_bits(cloud.part(sc)->forward(v), whole));
  }
  CHECK(edge.split("ReLU2").fingerprint != edge.split("pool2").fingerprint);
  CHECK_THROWS_WITH(edge.split("fc1"), Catch::Contains("ReLU2, pool2"));

  // Another training run (other weights, same shapes) gets another fingerprint; so does another architecture.
  Generator g2(6);
  Model other = make_model("lenet", g2);
  auto a = runtime::split_points(m, {"ReLU2"}).at(0).fingerprint;
  auto b = runtime::split_points(other, {"ReLU2"}).at(0).fingerprint;
  CHECK(a != b);
  CHECK(a.substr(0, a.find("/w")) == b.substr(0, b.find("/w")));  // same structure part

  SECTION("each side refuses the other's file and a whole model, clearly") {
    CHECK_THROWS_WITH(runtime::load_deployment(f.edge_path, "cloud", Device::cpu()),
                      Catch::Contains("edge side") && Catch::Contains("cloud"));
    std::string whole_path = (dir / "whole.ckpt").string();
    save_checkpoint(whole_path, m);
    CHECK_THROWS_WITH(runtime::load_deployment(whole_path, "cloud", Device::cpu()),
                      Catch::Contains("not one side of a split") && Catch::Contains("splitleak split"));
  }
  SECTION("all: cloud-only and edge-only ends") {
    auto all = runtime::parse_split_list(*m.net, "all");
    CHECK(all.front() == "input");
    CHECK(all.back() == "fc3");
    auto pts = runtime::split_points(m, all);
    CHECK(pts.front().edge_layers == 0);
    CHECK(pts.front().sample_shape == Shape{1, 28, 28});
    CHECK(pts.back().sample_shape == Shape{10});
    CHECK_THROWS_WITH(runtime::parse_split_list(*m.net, "ReLU2,conv9"), Catch::Contains("conv9"));
  }
  fs::remove_all(dir);
}

// ---- observations
// ----------------------------------------------------------------------------------------------------
TEST_CASE("observations: records round-trip; a torn tail is skipped, then cut off on reopening; damage is named",
          "[runtime][observations]") {
  fs::path dir = temp_dir("obs");
  std::string path = (dir / "obs.slob").string();
  std::vector<runtime::Observation> written;
  {
    runtime::ObservationWriter w(path);
    for (int i = 0; i < 5; ++i) {
      runtime::Observation o{1000 + i,
                             uint64_t(i % 2),
                             "edge@127.0.0.1:1",
                             uint64_t(i),
                             "ReLU2",
                             "fp",
                             random_tensor(Shape{1, 16, 8, 8}, uint64_t(i))};
      Bytes b;
      runtime::encode_observation(b, o);
      w.append(b, 1);
      written.push_back(o);
    }
    CHECK(w.records() == 5);
  }
  auto back = runtime::read_observations(path);
  REQUIRE(back.size() == 5);
  for (size_t i = 0; i < 5; ++i) {
    CHECK(back[i].time_unix_ns == written[i].time_unix_ns);
    CHECK(back[i].request_id == written[i].request_id);
    CHECK(back[i].edge == written[i].edge);
    CHECK(back[i].split == "ReLU2");
    CHECK(same_bits(back[i].tensor, written[i].tensor));
  }
  // A crash in the middle of the last write: every cut of the last record leaves the other four readable.
  uintmax_t full = fs::file_size(path);
  std::string blob;
  {
    std::ifstream in(path, std::ios::binary);
    blob.assign(std::istreambuf_iterator<char>(in), {});
  }
  uintmax_t one = (full - 16) / 5;
  for (uintmax_t cut : {uintmax_t(1), uintmax_t(7), one / 2, one - 1}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(blob.data(), std::streamsize(full - cut));
    std::string note;
    auto part = runtime::read_observations(path, &note);
    CHECK(part.size() == 4);
    CHECK_THAT(note, Catch::Contains("torn"));
  }
  {
    runtime::ObservationWriter w(path);  // repairs, then appends after the fourth record
    CHECK_THAT(w.note(), Catch::Contains("torn"));
    Bytes b;
    runtime::encode_observation(b, written[4]);
    w.append(b, 1);
  }
  CHECK(runtime::read_observations(path).size() == 5);
  CHECK(fs::file_size(path) == full);

  // Per image: a request of 3 rows with id 10 is images 10, 11, 12; warm-up ids and other splits are left out.
  std::vector<runtime::Observation> rec = {
      {1, 0, "e", 10, "ReLU2", "fp", random_tensor(Shape{3, 2}, 1)},
      {2, 0, "e", 11, "ReLU2", "fp", random_tensor(Shape{1, 2}, 2)},  // image 11 again: the first record counts
      {3, 0, "e", (uint64_t(1) << 62) + 1, "ReLU2", "fp", random_tensor(Shape{1, 2}, 3)},
      {4, 0, "e", 20, "pool2", "other", random_tensor(Shape{1, 2}, 4)}};
  auto per_image = runtime::observed_images(rec, "fp");
  REQUIRE(per_image.size() == 3);
  CHECK(same_bits(per_image.at(11), rec[0].tensor.slice(1, 2).clone()));
  CHECK(per_image.count(20) == 0);

  SECTION("a flipped byte in an earlier record is damage, not a torn tail") {
    std::string bad = blob;
    bad[16 + 40] = char(bad[16 + 40] ^ 1);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
    CHECK_THROWS_WITH(runtime::read_observations(path),
                      Catch::Contains("CRC mismatch") && Catch::Contains("offset 16"));
  }
  SECTION("another kind of file is refused, for reading and for appending") {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << "SPLK this is a checkpoint";
    CHECK_THROWS_WITH(runtime::read_observations(path), Catch::Contains("not a splitleak observation file"));
    CHECK_THROWS_WITH(runtime::ObservationWriter(path), Catch::Contains("not a splitleak observation file"));
    CHECK_THROWS_WITH(runtime::ObservationWriter(dir.string()), Catch::Contains("is a folder"));
  }
  fs::remove_all(dir);
}

// ---- link emulation, histogram
// ------------------------------------------------------------------------------------------
TEST_CASE("link: frames are paced at the link's speed plus half the RTT, one after the other", "[runtime][link]") {
  using C = runtime::LinkEmulator::Clock;
  runtime::LinkOptions o;
  o.mbps = 1;  // 125 000 bytes/s
  o.rtt_ms = 20;
  C::time_point t0{};
  runtime::LinkEmulator link(o, t0);
  auto ms = [&](C::time_point t) { return std::chrono::duration<double, std::milli>(t - t0).count(); };
  CHECK(ms(link.uplink(1250, t0, 0)) == Approx(10 + 10));  // 10 ms on the wire + 10 ms propagation
  CHECK(ms(link.uplink(1250, t0, 1)) == Approx(20 + 10));  // queued behind the first
  CHECK(ms(link.downlink(125, t0, 0)) == Approx(1 + 10));  // the other direction is free

  runtime::parse_link_schedule("0r:100,2r:1", o);
  CHECK(o.by_request);
  runtime::LinkEmulator sched(o, t0);
  CHECK(sched.mbps_at(t0, 1) == 100);
  CHECK(sched.mbps_at(t0, 2) == 1);
  runtime::parse_link_schedule("0:100,2.5s:1", o);
  CHECK_FALSE(o.by_request);
  runtime::LinkEmulator timed(o, t0);
  CHECK(timed.mbps_at(t0 + std::chrono::seconds(2), 0) == 100);
  CHECK(timed.mbps_at(t0 + std::chrono::seconds(3), 0) == 1);
  CHECK_THROWS_WITH(runtime::parse_link_schedule("5:1,2:3", o), Catch::Contains("increasing"));
  CHECK_THROWS_WITH(runtime::parse_link_schedule("0:-1", o), Catch::Contains("0:-1"));
  CHECK_THROWS_WITH(runtime::parse_link_schedule("0r:1,5:2", o), Catch::Contains("mixes"));
}

TEST_CASE("latency histogram: percentiles within the bucket width", "[runtime][metrics]") {
  runtime::LatencyHistogram h;
  std::vector<double> v;
  for (int i = 1; i <= 1000; ++i) {
    double s = i * 1e-5;  // 10 us .. 10 ms
    h.add(s);
    v.push_back(s);
  }
  for (double p : {50.0, 95.0, 99.0}) CHECK(h.percentile(p) == Approx(runtime::percentile(v, p)).epsilon(0.02));
  CHECK(h.max() == Approx(1e-2));
  CHECK(h.count() == 1000);
  CHECK(runtime::percentile({3, 1, 2}, 50) == 2);
}
