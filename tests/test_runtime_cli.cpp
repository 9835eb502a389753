// The runtime's commands end to end on the tiny synthetic MNIST (tests/tiny_data.h): split, serve (recording), edge
// --all against eval
// --split, a mismatched edge refused, the recording surviving a killed server, SIGTERM, bad flags, and the adaptive
// edge over a cloud serving every split.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "autograd/node.h"
#include "datasets/dataset.h"
#include "nn/checkpoint.h"
#include "runtime/deploy.h"
#include "runtime/observations.h"
#include "split/pipeline.h"
#include "tests/runtime_helpers.h"
#include "tests/tiny_data.h"

using namespace sl;
using namespace rt_test;

namespace {

struct Run {
  int code = -1;
  std::string out, err;
};
Run run(const std::vector<std::string>& args, const fs::path& dir) {
  std::vector<std::string> argv{bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  Child c(argv, dir, "run");
  Run r;
  r.code = c.wait_exit(60);
  r.out = c.out();
  r.err = c.err();
  return r;
}

int count_lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST_CASE("cli: split + serve + edge --all give eval --split's accuracy; the recording is what the edge sent",
          "[runtime][cli]") {
  fs::path dir = temp_dir("cli");
  sl::test::write_tiny_mnist(dir / "data", 10, 60);
  Generator g(4);
  Model m = make_model("lenet", g);
  std::string model = (dir / "lenet.ckpt").string();
  save_checkpoint(model, m, {{"dataset", "mnist"}});
  std::string data = (dir / "data").string();
  std::string record = (dir / "observed.slob").string();

  Run s = run({"split", "--model", model, "--at", "ReLU2", "--out", (dir / "deploy").string()}, dir);
  INFO(s.err);
  REQUIRE(s.code == 0);
  CHECK_THAT(s.out, Catch::Contains("lenet/ReLU2/s"));
  std::string edge = (dir / "deploy" / "edge.ckpt").string(), cloud = (dir / "deploy" / "cloud.ckpt").string();

  Child serve({bin(), "serve", "--model", cloud, "--listen", "127.0.0.1:0", "--record", record, "--threads", "1"}, dir,
              "serve");
  REQUIRE(serve.wait_output("listening on", 20));
  std::string at = "127.0.0.1:" + std::to_string(serve_port(serve.out()));
  CHECK_THAT(serve.err(), Catch::Contains("plain TCP"));  // the warning

  std::string preds = (dir / "predictions.csv").string();
  Run e = run({"edge", "--model", edge, "--connect", at, "--all", "--data", data, "--json", "--window", "3",
               "--predictions", preds},
              dir);
  INFO(e.err);
  REQUIRE(e.code == 0);
  auto ej = nlohmann::json::parse(e.out);
  Run ev = run({"eval", "--model", model, "--split", "ReLU2", "--data", data, "--json"}, dir);
  REQUIRE(ev.code == 0);
  auto vj = nlohmann::json::parse(ev.out);
  CHECK(ej["images"].get<int>() == 60);
  CHECK(ej["accuracy"].get<double>() == vj["split"]["accuracy"].get<double>());
  CHECK(ej["failed_requests"].get<int>() == 0);
  CHECK(ej["bytes_per_request"].get<double>() > 16 * 8 * 8 * 4);
  CHECK(ej["latency_ms"]["end_to_end"]["p50"].get<double>() > 0);
  CHECK(ej["edge_peak_rss_bytes"].get<int64_t>() > 0);

  // The mismatched edge of another model is refused by the cloud, with a clear one-line message.
  Generator g2(5);
  std::string other = (dir / "other.ckpt").string();
  save_checkpoint(other, make_model("lenet", g2), {{"dataset", "mnist"}});
  REQUIRE(run({"split", "--model", other, "--at", "ReLU2", "--out", (dir / "other").string()}, dir).code == 0);
  Run bad =
      run({"edge", "--model", (dir / "other" / "edge.ckpt").string(), "--connect", at, "--images", "3", "--data", data},
          dir);
  CHECK(bad.code == 1);
  CHECK_THAT(bad.err, Catch::Contains("FINGERPRINT_MISMATCH") && Catch::Contains("same `splitleak split`"));

  // SIGUSR1: a metrics line on stderr; `splitleak stats`: the metrics as a table.
  serve.kill(SIGUSR1);
  for (auto t0 = Clock::now(); since(t0) < 5 && serve.err().find("stats:") == std::string::npos;)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK_THAT(serve.err(), Catch::Contains("stats:") && Catch::Contains("60 answered"));
  Run st = run({"stats", "--connect", at}, dir);
  CHECK(st.code == 0);
  CHECK_THAT(st.out, Catch::Contains("requests.answered") && Catch::Contains("latency_ms.p99"));

  // SIGTERM: the server finishes, prints its stats, exits 0; the recording holds one record per request.
  serve.kill(SIGTERM);
  CHECK(serve.wait_exit(10) == 0);
  CHECK_THAT(serve.out(), Catch::Contains("stopped") && Catch::Contains("60 answered"));
  auto obs = runtime::read_observations(record);
  REQUIRE(obs.size() == 60);
  auto dep = runtime::load_deployment(edge, "edge", Device::cpu());
  auto head = dep.part(dep.split("ReLU2"));
  sl::data::Dataset test = sl::data::load_dataset("mnist", data, false);
  NoGradGuard ng;
  std::set<uint64_t> ids;
  for (auto& o : obs) {
    ids.insert(o.request_id);
    CHECK(o.split == "ReLU2");
    CHECK(o.fingerprint == dep.split("ReLU2").fingerprint);
    CHECK(o.time_unix_ns > 0);
    Tensor v = head->forward(test.image(int64_t(o.request_id)));
    CHECK(std::memcmp(v.contiguous().raw_data(), o.tensor.raw_data(), v.nbytes()) == 0);
  }
  CHECK(ids.size() == 60);  // request id = index of the image: every image once

  // Image by image, the edge's predictions are the whole model's.
  Tensor logits = m.net->forward(test.images);
  std::ifstream pf(preds);
  std::string line;
  std::getline(pf, line);
  CHECK(line == "image,label,prediction");
  int rows = 0;
  while (std::getline(pf, line)) {
    int i = 0, label = 0, pred = 0;
    REQUIRE(std::sscanf(line.c_str(), "%d,%d,%d", &i, &label, &pred) == 3);
    CHECK(label == test.labels[size_t(i)]);
    const float* y = logits.data<float>() + i * 10;
    CHECK(pred == int(std::max_element(y, y + 10) - y));
    ++rows;
  }
  CHECK(rows == 60);

  SECTION("a killed server loses at most the record being written; the next server repairs and appends") {
    Child s2({bin(), "serve", "--model", cloud, "--listen", "127.0.0.1:0", "--record", record, "--quiet"}, dir, "s2");
    REQUIRE(s2.wait_output("listening on", 20));
    std::string at2 = "127.0.0.1:" + std::to_string(serve_port(s2.out()));
    Child slow({bin(), "edge", "--model", edge, "--connect", at2, "--all", "--data", data, "--rate", "100"}, dir,
               "slow");
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    s2.kill(SIGKILL);  // in the middle of the run
    CHECK(slow.wait_exit(20) == 1);
    CHECK_THAT(slow.err(), Catch::Contains("closed") || Catch::Contains("reset"));
    std::string note;
    size_t n = runtime::read_observations(record, &note).size();
    CHECK(n > 60);
    CHECK(n < 120);
    Child s3({bin(), "serve", "--model", cloud, "--listen", "127.0.0.1:0", "--record", record}, dir, "s3");
    REQUIRE(s3.wait_output("listening on", 20));
    s3.kill(SIGTERM);
    CHECK(s3.wait_exit(10) == 0);
    CHECK(runtime::read_observations(record).size() == n);
  }
  SECTION("bad flags and files: one clear line, exit 1 or 2") {
    auto expect = [&](const Run& r, const std::string& needle) {
      INFO(r.err);
      CHECK((r.code == 1 || r.code == 2));
      CHECK(count_lines(r.err) == 1);
      CHECK_THAT(r.err, Catch::Contains("error") && Catch::Contains(needle));
    };
    expect(run({"serve", "--model", model}, dir), "not one side of a split");
    expect(run({"serve", "--model", edge}, dir), "edge side");
    expect(run({"edge", "--model", cloud, "--connect", at, "--data", data}, dir), "cloud side");
    expect(run({"edge", "--model", edge, "--connect", "localhost", "--data", data}, dir), "HOST:PORT");
    expect(run({"edge", "--model", edge, "--connect", "127.0.0.1:1", "--data", data}, dir), "cannot connect");
    expect(run({"serve", "--model", cloud, "--listen", "192.0.2.1:7000"}, dir), "--plain");
    expect(run({"serve", "--model", cloud, "--listen", "127.0.0.1:0", "--tls-cert", "x.pem"}, dir), "--tls-key");
    expect(run({"serve", "--model", cloud, "--max-inflight", "0"}, dir), "max-inflight");
    expect(run({"edge", "--model", edge, "--connect", at, "--batch", "0", "--data", data}, dir), "batch");
    expect(run({"edge", "--model", edge, "--connect", at, "--link-schedule", "5:1,1:2", "--data", data}, dir),
           "increasing");
    expect(run({"split", "--model", model, "--at", "conv9", "--out", (dir / "x").string()}, dir), "conv9");
    expect(run({"serve", "--model", cloud, "--record", dir.string()}, dir), "is a folder");
  }
  fs::remove_all(dir);
}

TEST_CASE(
    "cli: CIS's calibration is stored with the deployment; the edge's CIS equals eval's; missing or corrupt, "
    "a clear error",
    "[runtime][cli][cis]") {
  fs::path dir = temp_dir("clicis");
  sl::test::write_tiny_mnist(dir / "data", 12, 30);
  Generator g(8);
  Model m = make_model("lenet", g);
  std::string model = (dir / "lenet.ckpt").string();
  save_checkpoint(model, m, {{"dataset", "mnist"}});
  std::string data = (dir / "data").string();
  // --calibrate measures every split on the edge's training images (all 12 here, as eval's 256 do) into edge.ckpt.
  Run sp = run({"split", "--model", model, "--at", "ReLU2,fc1", "--out", (dir / "cal").string(), "--calibrate", "256",
                "--data", data, "--json"},
               dir);
  INFO(sp.err);
  REQUIRE(sp.code == 0);
  auto sj = nlohmann::json::parse(sp.out);
  CHECK(sj["splits"][0]["cis_calibration"]["images"].get<int>() == 12);
  CHECK(sj["splits"][0]["cis_calibration"]["channel_rank"].size() == 16);
  CHECK(sj["splits"][1]["cis_calibration"]["channel_rank"].size() == 120);
  std::string edge = (dir / "cal" / "edge.ckpt").string(), cloud = (dir / "cal" / "cloud.ckpt").string();
  CHECK_FALSE(load_checkpoint(edge).get("cis_calibration.ReLU2").empty());
  CHECK(load_checkpoint(cloud).get("cis_calibration.ReLU2").empty());  // the cloud never holds the edge's data
  REQUIRE(run({"split", "--model", model, "--at", "ReLU2", "--out", (dir / "plain").string()}, dir).code == 0);

  Child serve({bin(), "serve", "--model", cloud, "--listen", "127.0.0.1:0", "--threads", "1", "--quiet"}, dir, "serve");
  REQUIRE(serve.wait_output("listening on", 20));
  std::string at = "127.0.0.1:" + std::to_string(serve_port(serve.out()));
  const std::string spec = "cis:eps=40,alloc=rank,clip=4";
  Run e = run({"edge", "--model", edge, "--split", "ReLU2", "--connect", at, "--all", "--data", data, "--json",
               "--batch", "4", "--defense", spec, "--defense-seed", "3"},
              dir);
  INFO(e.err);
  REQUIRE(e.code == 0);
  Run ev = run({"eval", "--model", model, "--split", "ReLU2", "--data", data, "--json", "--defense", spec,
                "--defense-seed", "3"},
               dir);
  INFO(ev.err);
  REQUIRE(ev.code == 0);
  auto ej = nlohmann::json::parse(e.out), vj = nlohmann::json::parse(ev.out);
  CHECK(ej["images"].get<int>() == 30);
  CHECK(vj["defense"]["predictions_changed"].get<int>() > 0);  // the noise is strong enough to matter
  CHECK(ej["accuracy"].get<double>() == vj["defense"]["accuracy"].get<double>());

  // A deployment split without --calibrate: rank allocation refused before connecting, saying what to do.
  Run none = run({"edge", "--model", (dir / "plain" / "edge.ckpt").string(), "--connect", at, "--images", "2", "--data",
                  data, "--defense", spec},
                 dir);
  CHECK(none.code == 1);
  CHECK(count_lines(none.err) == 1);
  CHECK_THAT(none.err, Catch::Contains("no channel calibration for split ReLU2") && Catch::Contains("--calibrate"));
  // A calibration of the wrong size, or not a calibration: refused when the file is loaded, naming it.
  for (const std::string& text :
       {std::string("images=12 ranks=1,2,3"), std::string("images=x ranks=1"), std::string("images=12 ranks=nan,1")}) {
    Checkpoint c = load_checkpoint(edge);
    c.meta["cis_calibration.ReLU2"] = text;
    std::string bad = (dir / "bad-edge.ckpt").string();
    save_checkpoint(bad, c);
    Run r = run({"edge", "--model", bad, "--split", "ReLU2", "--connect", at, "--images", "2", "--data", data}, dir);
    INFO(text << ": " << r.err);
    CHECK(r.code == 1);
    CHECK(count_lines(r.err) == 1);
    CHECK_THAT(r.err, Catch::Contains("bad-edge.ckpt") && Catch::Contains("cis_calibration.ReLU2"));
  }
  serve.kill(SIGTERM);
  REQUIRE(serve.wait_exit(10) == 0);
  fs::remove_all(dir);
}

TEST_CASE(
    "cli: the edge runs the split pipeline: edge --defense equals eval --defense, attack --observed equals the "
    "in-process attack",
    "[runtime][cli][defense]") {
  fs::path dir = temp_dir("clidef");
  sl::test::write_tiny_mnist(dir / "data", 10, 40);
  Generator g(6);
  Model m = make_model("lenet", g);
  std::string model = (dir / "lenet.ckpt").string();
  save_checkpoint(model, m, {{"dataset", "mnist"}});
  std::string data = (dir / "data").string();
  std::string record = (dir / "observed.slob").string();
  REQUIRE(run({"split", "--model", model, "--at", "ReLU2", "--out", (dir / "deploy").string()}, dir).code == 0);
  std::string edge = (dir / "deploy" / "edge.ckpt").string(), cloud = (dir / "deploy" / "cloud.ckpt").string();
  Child serve(
      {bin(), "serve", "--model", cloud, "--listen", "127.0.0.1:0", "--record", record, "--threads", "1", "--quiet"},
      dir, "serve");
  REQUIRE(serve.wait_output("listening on", 20));
  std::string at = "127.0.0.1:" + std::to_string(serve_port(serve.out()));

  // Requests of 3 images, 2 in flight: the draws follow the image, not the request or the order of answers.
  const std::string spec = "dropout:0.5,gaussian:0.3@input";
  Run e = run({"edge", "--model", edge, "--connect", at, "--all", "--data", data, "--json", "--batch", "3", "--window",
               "2", "--defense", spec, "--defense-seed", "11"},
              dir);
  INFO(e.err);
  REQUIRE(e.code == 0);
  Run ev = run({"eval", "--model", model, "--split", "ReLU2", "--data", data, "--json", "--batch", "7", "--defense",
                spec, "--defense-seed", "11"},
               dir);
  INFO(ev.err);
  REQUIRE(ev.code == 0);
  auto ej = nlohmann::json::parse(e.out), vj = nlohmann::json::parse(ev.out);
  CHECK(ej["images"].get<int>() == 40);
  CHECK(ej["defense"].get<std::string>() == vj["defense"]["spec"].get<std::string>());
  CHECK(ej["accuracy"].get<double>() == vj["defense"]["accuracy"].get<double>());
  serve.kill(SIGTERM);
  REQUIRE(serve.wait_exit(10) == 0);

  // What the cloud recorded for image i is the in-process pipeline's edge(image i, query i), bit for bit.
  SplitPipeline pipe(m, "ReLU2", make_defenses(parse_defenses(spec), 11));
  sl::data::Dataset test = sl::data::load_dataset("mnist", data, false);
  auto fp = runtime::split_points(m, {"ReLU2"}).front().fingerprint;
  auto rows = runtime::observed_images(runtime::read_observations(record), fp);
  REQUIRE(rows.size() == 40);
  {
    NoGradGuard ng;
    int64_t differ = 0;
    for (auto& [i, v] : rows) {
      Tensor want = pipe.edge(test.image(i), uint64_t(i)).contiguous();
      differ += std::memcmp(want.raw_data(), v.contiguous().raw_data(), want.nbytes()) != 0;
    }
    CHECK(differ == 0);
  }

  // The white-box attack on the recording gives the in-process attack's PSNR and SSIM image by image.
  auto attack = [&](const std::string& out, bool observed) {
    std::vector<std::string> a{
        "attack",   "whitebox", "--model",           model, "--split", "ReLU2",     "--data", data,
        "--images", "5",        "--iters",           "15",  "--json",  "--defense", spec,     "--defense-seed",
        "11",       "--out",    (dir / out).string()};
    if (observed) a.insert(a.end(), {"--observed", record});
    Run r = run(a, dir);
    INFO(r.err);
    REQUIRE(r.code == 0);
    return nlohmann::json::parse(r.out);
  };
  auto in_process = attack("inproc", false), on_record = attack("recorded", true);
  CHECK(on_record["observed"].get<std::string>().find("5 of the 5 chosen images recorded") != std::string::npos);
  REQUIRE(on_record["images"].size() == 5);
  for (size_t k = 0; k < 5; ++k) {
    CHECK(on_record["images"][k]["psnr"].get<double>() == in_process["images"][k]["psnr"].get<double>());
    CHECK(on_record["images"][k]["ssim"].get<double>() == in_process["images"][k]["ssim"].get<double>());
  }

  // A recording of another model's split: refused, naming what it holds.
  Generator g2(7);
  std::string other = (dir / "other.ckpt").string();
  save_checkpoint(other, make_model("lenet", g2), {{"dataset", "mnist"}});
  Run bad = run({"attack", "whitebox", "--model", other, "--split", "ReLU2", "--data", data, "--observed", record,
                 "--iters", "1", "--out", (dir / "bad").string()},
                dir);
  CHECK(bad.code == 1);
  CHECK(count_lines(bad.err) == 1);
  CHECK_THAT(bad.err, Catch::Contains("no records of lenet/ReLU2/") && Catch::Contains(fp));
  fs::remove_all(dir);
}

TEST_CASE(
    "cli: edge --adaptive-split over a cloud serving every split answers every image as eval does; its bad flags are "
    "one clear line",
    "[runtime][cli][adaptive]") {
  fs::path dir = temp_dir("cliadaptive");
  sl::test::write_tiny_mnist(dir / "data", 10, 30);
  Generator g(8);
  Model m = make_model("lenet", g);
  std::string model = (dir / "lenet.ckpt").string();
  save_checkpoint(model, m, {{"dataset", "mnist"}});
  std::string data = (dir / "data").string();
  REQUIRE(run({"split", "--model", model, "--at", "all", "--out", (dir / "deploy").string()}, dir).code == 0);
  std::string edge = (dir / "deploy" / "edge.ckpt").string(), cloud = (dir / "deploy" / "cloud.ckpt").string();
  Child serve({bin(), "serve", "--model", cloud, "--listen", "127.0.0.1:0", "--threads", "1", "--quiet"}, dir, "serve");
  REQUIRE(serve.wait_output("listening on", 20));
  std::string at = "127.0.0.1:" + std::to_string(serve_port(serve.out()));

  // 30 requests of one image over three link phases: every image answered, the accuracy of eval on the same images.
  Run e = run({"edge", "--model", edge, "--connect", at, "--data", data, "--adaptive-split", "--splits",
               "input,pool1,pool2,fc1,fc3", "--link-phases", "100:10,1:10,100:10", "--no-fixed", "--json"},
              dir);
  INFO(e.err);
  REQUIRE(e.code == 0);
  Run ev = run({"eval", "--model", model, "--data", data, "--limit", "30", "--json"}, dir);
  INFO(ev.err);
  REQUIRE(ev.code == 0);
  auto ej = nlohmann::json::parse(e.out), vj = nlohmann::json::parse(ev.out);
  CHECK(ej["images"].get<int>() == 30);
  CHECK(ej["failed_requests"].get<int>() == 0);
  CHECK(ej["split_per_request"].size() == 30);
  CHECK(ej["phases"].size() == 3);
  CHECK(ej["accuracy"].get<double>() == vj["accuracy"].get<double>());

  auto expect = [&](const Run& r, const std::string& needle) {
    INFO(r.err);
    CHECK((r.code == 1 || r.code == 2));
    CHECK(count_lines(r.err) == 1);
    CHECK_THAT(r.err, Catch::Contains("error") && Catch::Contains(needle));
  };
  expect(run({"edge", "--model", edge, "--connect", at, "--data", data, "--adaptive-split", "--link-phases", "100:x"},
             dir),
         "100:x");
  expect(run({"edge", "--model", edge, "--connect", at, "--data", data, "--adaptive-split", "--splits", "nosuch",
              "--link-phases", "100:5"},
             dir),
         "nosuch");
  expect(run({"edge", "--model", edge, "--connect", at, "--data", data, "--link-phases", "100:5"}, dir),
         "--adaptive-split");
  serve.kill(SIGTERM);
  CHECK(serve.wait_exit(10) == 0);
  fs::remove_all(dir);
}
