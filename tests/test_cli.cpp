// End-to-end tests of the `splitleak` binary on a tiny synthetic MNIST: training, split evaluation, info,
// and every kind of bad input ending as one clear line on stderr with a non-zero exit code, never a crash.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "nn/checkpoint.h"
#include "nn/models.h"
#include "tests/tiny_data.h"

namespace fs = std::filesystem;

namespace {

struct RunResult {
  int code = -1;
  bool crashed = false;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

RunResult run(const std::string& args, const fs::path& dir) {
  // The timeout guards the suite against a command that hangs (a FIFO opened for reading would): it ends as
  // exit code 124, which counts as a crash below.
  std::string cmd = "timeout -k 5 120 " + std::string(SPLITLEAK_BIN_DIR) + "/splitleak " + args + " >" +
                    (dir / "out.txt").string() + " 2>" + (dir / "err.txt").string() + " </dev/null";
  int st = std::system(cmd.c_str());
  RunResult r;
  r.crashed = WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) > 2);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(dir / "out.txt");
  r.err = slurp(dir / "err.txt");
  return r;
}

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// A fresh folder holding a tiny MNIST (100 training and 30 test images) and a LeNet trained on it for one epoch:
// what the defense and partition tests start from. `data` is the " --data DIR" to append to a command line.
struct TinyLenet {
  fs::path dir;
  std::string data, ckpt;
};
TinyLenet tiny_lenet(const std::string& name);

// The failure contract: exit code 1 or 2, no crash, one line on stderr saying "error" and containing `needle`.
void expect_clean_failure(const RunResult& r, const std::string& needle) {
  INFO("stderr: " << r.err);
  CHECK_FALSE(r.crashed);
  CHECK((r.code == 1 || r.code == 2));
  CHECK(lines(r.err) == 1);
  CHECK_THAT(r.err, Catch::Contains("error") && Catch::Contains(needle));
}

}  // namespace

TEST_CASE("cli: --version names the version and the commit", "[cli]") {
  fs::path dir = fs::temp_directory_path() / ("splitleak_cli_version_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto r = run("--version", dir);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::StartsWith("splitleak 0.1.0 (commit ") && Catch::EndsWith(")\n"));
  fs::remove_all(dir);
}

TEST_CASE("cli: train, eval --split and info on a tiny data set", "[cli]") {
  fs::path dir = fs::temp_directory_path() / ("splitleak_cli_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  sl::test::write_tiny_mnist(dir / "data", 200, 50);
  std::string data = " --data " + (dir / "data").string();
  std::string ckpt = (dir / "lenet.ckpt").string();

  auto r = run(
      "train --dataset mnist --model lenet --epochs 2 --batch 16 --lr 0.003 --seed 3 --json --out " + ckpt + data, dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("\"test_accuracy\""));
  CHECK(fs::exists(ckpt));
  auto c = sl::load_checkpoint(ckpt);
  CHECK(c.arch == "lenet");
  CHECK(c.get("dataset") == "mnist");
  CHECK(std::stod(c.get("test_accuracy")) > 0.5);  // bars are easy: chance is 0.1

  r = run("eval --model " + ckpt + " --split ReLU2" + data, dir);
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("0 of 50 predictions differ"));

  r = run("info --model " + ckpt, dir);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("ReLU2") && Catch::Contains("fc3") && Catch::Contains("[1, 16, 8, 8]"));

  SECTION("bad flags") {
    expect_clean_failure(run("train --epochs -1" + data, dir), "epochs");
    expect_clean_failure(run("train --model resnet" + data, dir), "resnet");
    expect_clean_failure(run("train --no-such-flag" + data, dir), "no-such-flag");
    expect_clean_failure(run("eval" + data, dir), "--model");
    expect_clean_failure(run("frobnicate", dir), "frobnicate");
    expect_clean_failure(run("train --device tpu" + data, dir), "tpu");
    expect_clean_failure(run("train --out " + ckpt + "/x.ckpt" + data, dir), "is a regular file, not a folder");
  }
  SECTION("unknown split name lists the valid ones") {
    expect_clean_failure(run("eval --model " + ckpt + " --split conv9" + data, dir), "conv9");
    CHECK_THAT(run("eval --model " + ckpt + " --split conv9" + data, dir).err, Catch::Contains("ReLU2"));
  }
  SECTION("missing data says how to fetch it") {
    expect_clean_failure(run("train --data " + (dir / "nothing").string(), dir), "splitleak fetch mnist");
  }
  SECTION("truncated and corrupt IDX files") {
    fs::path bad = dir / "bad";
    sl::test::write_tiny_mnist(bad, 20, 20);
    fs::path f = bad / "mnist" / "t10k-images-idx3-ubyte";
    fs::resize_file(f, fs::file_size(f) - 100);
    expect_clean_failure(run("eval --model " + ckpt + " --data " + bad.string(), dir), "t10k-images-idx3-ubyte");
    sl::test::write_tiny_mnist(bad, 20, 20);
    std::fstream(f, std::ios::in | std::ios::out | std::ios::binary).write("\x00\x00\x09\x99", 4);
    expect_clean_failure(run("eval --model " + ckpt + " --data " + bad.string(), dir), "magic");
  }
  SECTION("corrupt, truncated, foreign and missing checkpoints") {
    std::string blob = slurp(ckpt);
    auto write = [&](const std::string& name, const std::string& bytes) {
      std::ofstream(dir / name, std::ios::binary) << bytes;
      return (dir / name).string();
    };
    std::string flipped = blob;
    flipped[blob.size() / 2] = char(flipped[blob.size() / 2] ^ 0x5a);
    expect_clean_failure(run("eval --model " + write("flip.ckpt", flipped) + data, dir), "flip.ckpt");
    expect_clean_failure(run("eval --model " + write("trunc.ckpt", blob.substr(0, blob.size() / 3)) + data, dir),
                         "trunc.ckpt");
    expect_clean_failure(run("eval --model " + write("magic.ckpt", "NOPE" + blob.substr(4)) + data, dir), "magic");
    expect_clean_failure(run("eval --model " + write("empty.ckpt", "") + data, dir), "empty.ckpt");
    expect_clean_failure(run("eval --model " + (dir / "absent.ckpt").string() + data, dir), "absent.ckpt");
    // A CIFAR10CNN checkpoint evaluated on MNIST: the shapes do not fit.
    sl::Generator g(1);
    sl::Model cnn = sl::make_model("cifar10cnn", g);
    std::string cnn_path = (dir / "cnn.ckpt").string();
    sl::save_checkpoint(cnn_path, cnn, {{"dataset", "cifar10"}});
    expect_clean_failure(run("eval --model " + cnn_path + " --dataset mnist" + data, dir), "cifar10cnn");
  }
  fs::remove_all(dir);
}

// --- hardening: every class of bad input of issue 10 --------------------------------------------------------------

namespace {

// Everything under a folder, as "path type size mtime content-hash" lines (folders without their mtime, which the
// writability probe touches): equal before and after a refused command means nothing was written or replaced.
std::string snapshot(const fs::path& root) {
  std::vector<std::string> rows;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const fs::path& p = it->path();
    auto st = fs::symlink_status(p);
    std::ostringstream row;
    row << p.lexically_relative(root).string() << ' ' << int(st.type());
    if (st.type() == fs::file_type::symlink) row << " -> " << fs::read_symlink(p).string();
    if (st.type() == fs::file_type::regular)
      row << ' ' << fs::file_size(p) << ' ' << fs::last_write_time(p).time_since_epoch().count() << ' '
          << std::hash<std::string>{}(slurp(p));
    rows.push_back(row.str());
  }
  std::sort(rows.begin(), rows.end());
  std::string out;
  for (auto& r : rows) out += r + "\n";
  return out;
}

// The refusal contract of issue 10: exit code 1 or 2 (< 128, no signal, no timeout), exactly one line on stderr,
// naming `needle`.
void expect_refused(const RunResult& r, const std::string& needle) {
  INFO("stderr: " << r.err);
  CHECK_FALSE(r.crashed);
  CHECK((r.code == 1 || r.code == 2));
  CHECK(lines(r.err) == 1);
  CHECK_THAT(r.err, Catch::StartsWith("splitleak: error: ") && Catch::Contains(needle));
}

// A run that fails during the work (a diverged objective): non-zero exit, progress may precede it, but the last
// stderr line is the one error, naming `needle`.
void expect_stopped(const RunResult& r, const std::string& needle) {
  INFO("stderr: " << r.err);
  CHECK_FALSE(r.crashed);
  CHECK(r.code == 1);
  size_t errors = 0;
  for (size_t at = r.err.find("error"); at != std::string::npos; at = r.err.find("error", at + 1)) ++errors;
  CHECK(errors == 1);
  std::string last = r.err.substr(r.err.rfind('\n', r.err.size() - 2) + 1);
  CHECK_THAT(last, Catch::StartsWith("splitleak: error: ") && Catch::Contains(needle));
}

}  // namespace

TEST_CASE("cli: bad outputs, inputs, flags, data and numbers are refused; nothing is written", "[cli][harden]") {
  const fs::path root = fs::temp_directory_path() / ("splitleak_harden_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const fs::path w = root / "work", logs = root / "logs";  // w is watched; the command's output goes to logs
  fs::create_directories(logs);
  sl::test::write_tiny_mnist(w / "data", 40, 20);
  sl::test::write_tiny_mnist(w / "empty", 0, 0);
  const std::string data = " --data " + (w / "data").string();
  // An untrained LeNet is enough to attack; one with a NaN weight for the checks of loaded numbers.
  sl::Generator g(5);
  sl::Model lenet = sl::make_model("lenet", g);
  const std::string ckpt = (w / "lenet.ckpt").string(), nan_ckpt = (w / "nan.ckpt").string();
  sl::save_checkpoint(ckpt, lenet, {{"dataset", "mnist"}});
  sl::Checkpoint bad = sl::make_checkpoint(*lenet.net, "lenet", {{"dataset", "mnist"}});
  // conv1.bias poisons the conv1 features, fc3.bias the logits (a NaN in between may be dropped by a ReLU).
  REQUIRE(bad.tensors[1].first == "conv1.bias");
  REQUIRE(bad.tensors.back().first == "fc3.bias");
  bad.tensors[1].second.data<float>()[1] = std::nanf("");
  bad.tensors.back().second.data<float>()[0] = std::numeric_limits<float>::infinity();
  const std::string nan_tensor = "'conv1.bias' (1 of 8 values) and 1 more";
  sl::save_checkpoint(nan_ckpt, bad);
  // Targets that are not regular files, and a regular file that must survive every failed run.
  std::ofstream(w / "precious.ckpt") << "keep me";
  fs::create_symlink("precious.ckpt", w / "link.ckpt");
  fs::create_directories(w / "folder.ckpt");
  REQUIRE(::mkfifo((w / "fifo.ckpt").c_str(), 0644) == 0);
  fs::create_directories(w / "out");
  REQUIRE(::mkfifo((w / "out" / "results.json").c_str(), 0644) == 0);
  fs::create_directories(w / "sock");
  int sfd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock = (w / "sock" / "s.ckpt").string();
  REQUIRE(sock.size() < sizeof addr.sun_path);
  std::strcpy(addr.sun_path, sock.c_str());
  REQUIRE(::bind(sfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  const std::string whitebox =
      "attack whitebox --model " + ckpt + " --split conv1 --iters 2 --out " + (w / "res").string();

  const std::string before = snapshot(w);
  auto refused = [&](const std::string& args, const std::string& needle) {
    INFO("splitleak " << args);
    expect_refused(run(args, logs), needle);
    CHECK(snapshot(w) == before);
  };
  auto stopped = [&](const std::string& args, const std::string& needle) {
    INFO("splitleak " << args);
    expect_stopped(run(args, logs), needle);
    CHECK(snapshot(w) == before);
  };
  auto in = [&](const std::string& rel) { return (w / rel).string(); };

  SECTION("output targets that are not regular files: symlink, folder, FIFO, socket") {
    refused("train --out " + in("link.ckpt") + data, "is a symbolic link (to precious.ckpt)");
    refused("train --out " + in("folder.ckpt") + data, "is a folder");
    refused("train --out " + in("fifo.ckpt") + data, "is a FIFO");
    refused("train --out " + sock + data, "is a socket");
    refused("attack whitebox --model " + ckpt + " --split conv1 --out " + in("out") + data, "is a FIFO");
    refused("attack table --model " + ckpt + " --out " + in("precious.ckpt") + data, "is a regular file, not a folder");
    CHECK(slurp(w / "precious.ckpt") == "keep me");
  }
  SECTION("unwritable output locations are found before any work") {
    refused("train --out " + in("precious.ckpt/sub/x.ckpt") + data, "precious.ckpt is a regular file, not a folder");
    refused("attack blackbox --model " + ckpt + " --split conv1 --out " + in("precious.ckpt/res") + data,
            "not a folder");
    // A read-only folder stops writes only when not running as root (root passes permission bits; the case above
    // is the one that holds for everyone).
    if (::geteuid() != 0) {
      fs::create_directories(root / "ro");
      fs::permissions(root / "ro", fs::perms::owner_read | fs::perms::owner_exec);
      expect_refused(run("train --out " + (root / "ro" / "x.ckpt").string() + data, logs), "not writable");
      expect_refused(
          run(whitebox.substr(0, whitebox.find(" --out")) + " --out " + (root / "ro" / "r").string() + data, logs),
          "not writable");
      fs::permissions(root / "ro", fs::perms::owner_all);
      CHECK(fs::is_empty(root / "ro"));
    }
  }
  SECTION("inputs that are not regular files fail at once, never hang") {
    refused("eval --model " + in("fifo.ckpt") + data, "is a FIFO");
    refused("info --model " + in("folder.ckpt"), "is a folder");
    refused("eval --model " + sock + data, "is a socket");
    refused("attack whitebox --model " + in("fifo.ckpt") + " --split conv1 --out " + in("res") + data, "is a FIFO");
    fs::path fifo_data = root / "fifo_data";
    sl::test::write_tiny_mnist(fifo_data, 10, 10);
    fs::remove(fifo_data / "mnist" / "t10k-images-idx3-ubyte");
    REQUIRE(::mkfifo((fifo_data / "mnist" / "t10k-images-idx3-ubyte").c_str(), 0644) == 0);
    refused("eval --model " + ckpt + " --data " + fifo_data.string(), "t10k-images-idx3-ubyte: is a FIFO");
  }
  SECTION("numeric flags: NaN, inf, negative, zero, huge, wrapping") {
    const std::string t = "train --out " + in("new.ckpt") + data;
    refused(t + " --lr nan", "--lr: got nan");
    refused(t + " --lr inf", "--lr: got inf");
    refused(t + " --lr 0", "--lr: got 0");
    refused(t + " --lr -1", "--lr: got -1");
    refused(t + " --eps -inf", "--eps");
    refused(t + " --seed -1", "--seed: got -1");
    refused(t + " --seed 18446744073709551616", "--seed");
    refused(t + " --epochs 0", "--epochs: got 0");
    refused(t + " --batch 0", "--batch");
    refused(t + " --batch 99999999999999999999", "--batch");
    refused(t + " --limit 0", "--limit: got 0");
    refused(t + " --limit -5", "--limit");
    refused(t + " --test-limit 0", "--test-limit");
    refused(t + " --max-steps 0", "--max-steps");
    refused(t + " --sync-every 4294967297", "--sync-every");
    refused(t + " --epochs 2.5", "--epochs");
    refused("eval --model " + ckpt + " --batch -1" + data, "--batch");
    refused("eval --model " + ckpt + " --limit 0" + data, "--limit");
    refused(whitebox + " --images 0" + data, "--images: got 0");
    refused(whitebox + " --iters -5" + data, "--iters: got -5");
    refused(whitebox + " --iters 0" + data, "--iters");
    refused(whitebox + " --lr nan" + data, "--lr: got nan");
    refused(whitebox + " --lr inf" + data, "--lr");
    refused(whitebox + " --tv -1" + data, "--tv: got -1");
    refused(whitebox + " --tv nan" + data, "--tv");
    refused(whitebox + " --tv-beta 0" + data, "--tv-beta: got 0");
    refused(whitebox + " --l2 -0.5" + data, "--l2");
    refused(whitebox + " --seed -1" + data, "--seed");
    refused(whitebox + " --batch 0" + data, "--batch");
    refused(whitebox + " --fit-lr 0" + data, "--fit-lr");
    refused(whitebox + " --fit-batch 0" + data, "--fit-batch");
    refused(whitebox + " --epochs -3" + data, "--epochs");
    refused(whitebox + " --attacker-limit 0" + data, "--attacker-limit");
    refused("attack frobnicate --model " + ckpt, "unknown attack 'frobnicate'");
    refused("frobnicate", "unknown command 'frobnicate'");
  }
  SECTION("--threads above the bound") {
    refused("train --threads 100000 --out " + in("new.ckpt") + data, "--threads: got 100000");
    refused("eval --threads -1 --model " + ckpt + data, "--threads");
    refused(whitebox + " --threads 99999999999" + data, "--threads");
  }
  SECTION("empty data sets are an error, not 0 %") {
    const std::string empty = " --data " + in("empty");
    refused("train --out " + in("new.ckpt") + empty, "training set is empty");
    refused("eval --model " + ckpt + empty, "test set is empty");
    refused(whitebox + empty, "test set is empty");
    refused("attack blackbox --model " + ckpt + " --split conv1 --all --attacker-data test --out " + in("res") + data,
            "attacker's data set is empty");
  }
  SECTION("a checkpoint with NaN weights is refused, naming the tensor") {
    refused("eval --model " + nan_ckpt + data, nan_tensor);
    refused("info --model " + nan_ckpt, "NaN or inf");
    refused("attack whitebox --model " + nan_ckpt + " --split conv1 --out " + in("res") + data, nan_tensor);
    // Loaded anyway on request: a loud warning, then no number computed from it is reported.
    RunResult r = run("eval --allow-nonfinite --model " + nan_ckpt + data, logs);
    CHECK_THAT(r.err, Catch::Contains("WARNING") && Catch::Contains(nan_tensor));
    expect_stopped(r, "not finite");
    CHECK_THAT(r.out, !Catch::Contains("%"));
    stopped(
        "attack whitebox --allow-nonfinite --model " + nan_ckpt + " --split conv1 --iters 3 --out " + in("res") + data,
        "rMLE objective became NaN");
  }
  SECTION("an objective that becomes non-finite stops the run; nothing is written or replaced") {
    stopped("train --lr 1e30 --batch 8 --out " + in("precious.ckpt") + data, "training diverged");
    stopped("attack whitebox --model " + ckpt + " --split conv1 --lr 1e30 --iters 60 --out " + in("new/res") + data,
            "rMLE objective became");
    stopped("attack blackbox --model " + ckpt + " --split conv1 --fit-lr 1e30 --out " + in("res") + data,
            "attack training diverged");
    CHECK(slurp(w / "precious.ckpt") == "keep me");
  }
  ::close(sfd);
  fs::remove_all(root);
}

namespace {
TinyLenet tiny_lenet(const std::string& name) {
  TinyLenet t;
  t.dir = fs::temp_directory_path() / ("splitleak_cli_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(t.dir);
  sl::test::write_tiny_mnist(t.dir / "data", 100, 30);
  t.data = " --data " + (t.dir / "data").string();
  t.ckpt = (t.dir / "lenet.ckpt").string();
  auto r = run("train --dataset mnist --model lenet --epochs 1 --batch 16 --seed 3 --out " + t.ckpt + t.data, t.dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  return t;
}
}  // namespace

TEST_CASE("cli: eval --defense, attack --defense --adaptive and defend on a tiny data set", "[cli][defense]") {
  const TinyLenet t = tiny_lenet("defense");
  const fs::path& dir = t.dir;
  const std::string &data = t.data, &ckpt = t.ckpt;
  RunResult r;

  // Defended accuracy: reproducible per seed (query i = test image i), reported beside the undefended split.
  r = run("eval --model " + ckpt + " --split ReLU2 --defense dropout:0.5 --json" + data, dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["defense"]["spec"] == "dropout:0.5@intermediate");
  CHECK(j["split"]["predictions_differing"] == 0);
  auto again = nlohmann::json::parse(
      run("eval --model " + ckpt + " --split ReLU2 --defense dropout:0.5 --json" + data, dir).out);
  CHECK(again["defense"]["accuracy"] == j["defense"]["accuracy"]);

  // An attack on the defended split, by an attacker who models the defense.
  fs::path out = dir / "wb";
  r = run("attack whitebox --model " + ckpt + " --split ReLU2 --defense dropout:0.5 --adaptive --iters 20 " +
              "--images 2 --out " + out.string() + data,
          dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  auto res = nlohmann::json::parse(slurp(out / "results.json"));
  CHECK(res["config"]["defense"] == "dropout:0.5@intermediate");
  CHECK(res["config"].contains("adaptive"));

  // The sweep, both attackers: results, grids, plots.
  out = dir / "defend";
  r = run("defend --model " + ckpt + " --split ReLU2 --defense dropout --where input,intermediate --levels 0,0.5 " +
              "--iters 10 --images 2 --compare --out " + out.string() + data,
          dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("dropout@input") && Catch::Contains("adaptive SSIM"));
  for (const char* f :
       {"results.json", "results.csv", "grid-dropout-input-paper.png", "grid-dropout-intermediate-adaptive.png"})
    CHECK(fs::is_regular_file(out / f));
  auto d = nlohmann::json::parse(slurp(out / "results.json"));
  CHECK(d["lines"].size() == 2);
  CHECK(d["lines"][1]["levels"][1]["paper"]["ssim"].is_number());
  CHECK(d.contains("commit"));
  // A whole figure, quick and cut down.
  r = run("defend --model " + ckpt + " --figure 9 --quick --iters 2 --images 1 --limit 10 --out " +
              (dir / "fig9").string() + data,
          dir);
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK_THAT(r.err, Catch::Contains("--quick"));

  // Bad specs and sweeps: one line, before any work.
  expect_clean_failure(run("eval --model " + ckpt + " --split ReLU2 --defense dropout:1.5" + data, dir), "[0, 1]");
  expect_clean_failure(run("eval --model " + ckpt + " --split ReLU2 --defense gaussian:-1" + data, dir), ">= 0");
  expect_clean_failure(run("eval --model " + ckpt + " --split ReLU2 --defense blur:2" + data, dir), "blur");
  expect_clean_failure(run("eval --model " + ckpt + " --split ReLU2 --defense gaussian:nan" + data, dir), "finite");
  expect_clean_failure(run("eval --model " + ckpt + " --defense dropout:0.5" + data, dir), "--split");
  expect_clean_failure(run("attack whitebox --model " + ckpt + " --split prob --defense dropout:0.5 --out " +
                               (dir / "x").string() + data,
                           dir),
                       "split layer");
  expect_clean_failure(run("defend --model " + ckpt + " --split ReLU2 --defense dropout --levels 0,2 --out " +
                               (dir / "x").string() + data,
                           dir),
                       "[0, 1]");
  expect_clean_failure(
      run("defend --model " + ckpt + " --split conv9 --defense dropout --out " + (dir / "x").string() + data, dir),
      "conv9");
  expect_clean_failure(run("defend --model " + ckpt + " --figure 10 --out " + (dir / "x").string() + data, dir),
                       "CIFAR");
  expect_clean_failure(
      run("defend --model " + ckpt + " --figure 9 --split ReLU2 --out " + (dir / "x").string() + data, dir),
      "--figure sets");
  CHECK_FALSE(fs::exists(dir / "x"));
  fs::remove_all(dir);
}

TEST_CASE("cli: partition and the CIS defense on a tiny data set", "[cli][partition][cis]") {
  const TinyLenet t = tiny_lenet("partition");
  const fs::path& dir = t.dir;
  const std::string &data = t.data, &ckpt = t.ckpt;
  RunResult r;

  // The advisor: three attacks at three layers, the recommendation and its files.
  fs::path out = dir / "partition";
  r = run("partition --model " + ckpt + " --splits conv1,pool2,fc3 --attacks queryfree,whitebox,blackbox --quick " +
              "--iters 5 --images 2 --bandwidth 1Mbit --edge-memory 64KiB --scenario 100Mbit --scenario 1Mbit,1MB " +
              "--out " + out.string() + data,
          dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("recommendation:") && Catch::Contains("blackbox PSNR"));
  CHECK_THAT(r.err, Catch::Contains("--quick"));
  for (const char* f : {"results.json", "results.csv", "table.txt", "recovered.png"})
    CHECK(fs::is_regular_file(out / f));
  auto j = nlohmann::json::parse(slurp(out / "results.json"));
  REQUIRE(j["layers"].size() == 3);
  CHECK(j["layers"][0]["bytes_sent"] == 8 * 24 * 24 * 4);
  CHECK(j["layers"][2]["attacks"]["blackbox"]["leakage_bits"].is_number());
  // No privacy bound: the fastest split that fits 64 KiB; fc3 (213 KiB of parameters) does not.
  CHECK(j["layers"][2]["excluded_by"].get<std::string>().find("edge memory") != std::string::npos);
  CHECK(j["recommendation"]["split"] == "pool2");
  CHECK(j.contains("commit"));
  // The other scenarios, from the same measurements: without the 64 KiB budget fc3 (40 B sent) is the fastest.
  REQUIRE(j["scenarios"].size() == 2);
  CHECK(j["scenarios"][0]["split"] == "fc3");
  CHECK(j["scenarios"][1]["split"] == "fc3");
  CHECK(j["scenarios"][1]["edge_memory_bytes"] == 1000000);
  CHECK_THAT(r.out, Catch::Contains("other scenarios"));

  // CIS: rank allocation calibrates on the training images; accuracy is reproducible per seed.
  r = run("eval --model " + ckpt + " --split ReLU2 --defense cis:eps=5000,clip=16 --json" + data, dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.err, Catch::Contains("calibrated ReLU2"));
  auto e = nlohmann::json::parse(r.out);
  auto again = nlohmann::json::parse(
      run("eval --model " + ckpt + " --split ReLU2 --defense cis:eps=5000,clip=16 --json" + data, dir).out);
  CHECK(again["defense"]["accuracy"] == e["defense"]["accuracy"]);
  out = dir / "cis";
  r = run("defend --model " + ckpt + " --split ReLU2 --defense cis,alloc=rank,clip=16,cis,alloc=uniform,clip=16 " +
              "--levels 0,100,1000 --iters 5 --images 2 --out " + out.string() + data,
          dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("cis:alloc=rank,clip=16@intermediate") &&
                        Catch::Contains("cis:alloc=uniform,clip=16@intermediate"));

  // Bad flags: one line, before any work, nothing written.
  const std::string x = " --out " + (dir / "x").string() + data;
  expect_clean_failure(run("partition --model " + ckpt + " --bandwidth fast" + x, dir), "--bandwidth");
  expect_clean_failure(run("partition --model " + ckpt + " --edge-memory 2furlongs" + x, dir), "--edge-memory");
  expect_clean_failure(run("partition --model " + ckpt + " --attacks greybox" + x, dir), "greybox");
  expect_clean_failure(run("partition --model " + ckpt + " --splits conv9" + x, dir), "conv9");
  expect_clean_failure(run("partition --model " + ckpt + " --max-ssim 2" + x, dir), "--max-ssim");
  expect_clean_failure(run("partition --model " + ckpt + " --scenario 1Mbit,2furlongs" + x, dir), "--scenario");
  expect_clean_failure(run("partition --model " + ckpt + " --scenario ,2MB" + x, dir), "--scenario");
  expect_clean_failure(run("eval --model " + ckpt + " --split ReLU2 --defense cis:eps=0" + data, dir), "> 0");
  expect_clean_failure(run("eval --model " + ckpt + " --split ReLU2 --defense cis:eps=1,alloc=best" + data, dir),
                       "rank or uniform");
  expect_clean_failure(run("eval --model " + ckpt + " --split ReLU2 --defense cis:eps=1@input" + data, dir),
                       "intermediate");
  CHECK_FALSE(fs::exists(dir / "x"));
  fs::remove_all(dir);
}
