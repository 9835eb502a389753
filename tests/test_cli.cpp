// End-to-end tests of the `splitleak` binary on a tiny synthetic MNIST: training, split evaluation, info,
// and every kind of bad input ending as one clear line on stderr with a non-zero exit code, never a crash.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
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
  std::string cmd = std::string(SPLITLEAK_BIN_DIR) + "/splitleak " + args + " >" + (dir / "out.txt").string() + " 2>" +
                    (dir / "err.txt").string() + " </dev/null";
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
    expect_clean_failure(run("train --out /proc/no-such-folder/x.ckpt" + data, dir), "cannot create the folder");
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
