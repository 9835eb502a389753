// ONNX export and bring-your-own-model (onnx/export.h, onnxio::to_model, the CLI's --model FILE.onnx): LeNet and a
// small CIFAR10CNN exported and imported back compute bit-identical outputs, whole and split; the shipped PyTorch
// model (examples/onnx/mnist_resnet.onnx) imports with its split points, scores PyTorch's test accuracy to the last
// printed digit, and the three attacks run at two of its cuts; bad ONNX files on the command line are one-line errors
// with a non-zero exit. Skips visibly when the ONNX component is not built.
#include <catch2/catch.hpp>

#ifndef SPLITLEAK_WITH_ONNX
TEST_CASE("ONNX export and import round trip", "[onnx]") {
  WARN("ONNX component not built (libonnx-dev / libprotobuf-dev absent): skipped");
}
#else
#include <onnx/onnx_pb.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/node.h"
#include "datasets/dataset.h"
#include "datasets/image_io.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/models.h"
#include "nn/profile.h"
#include "onnx/export.h"
#include "onnx/import.h"
#include "tests/tiny_data.h"

using namespace sl;
namespace fs = std::filesystem;

namespace {

Tensor random_input(const Shape& s, uint64_t seed) {
  Generator g(seed);
  Tensor x = Tensor::zeros(s);
  init::normal_(x, 0, 1, g);
  return x;
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  Tensor x = a.contiguous(), y = b.contiguous();
  return x.shape() == y.shape() && std::memcmp(x.data<float>(), y.data<float>(), size_t(x.numel()) * 4) == 0;
}

// Exports `net`, imports the bytes back as a Model; both run on the same input.
void check_round_trip(Sequential& net, const Shape& in, const std::string& what) {
  INFO(what);
  const std::string bytes = onnxio::export_bytes(net, in);
  onnxio::ImportedModel im = onnxio::import_bytes(bytes.data(), bytes.size(), what);
  CHECK(im.dynamic_batch);
  Model back = onnxio::to_model(im);
  CHECK(back.net->layer_names() == net.layer_names());  // a chain: every layer a split point, named as before
  NoGradGuard ng;
  net.eval();
  for (int64_t batch : {1, 5}) {
    std::vector<int64_t> d = in.dims();
    d[0] = batch;
    Tensor x = random_input(Shape(d), 7 + uint64_t(batch));
    CHECK(bit_identical(net.forward(x), back.net->forward(x)));
  }
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

struct RunResult {
  int code = -1;
  bool crashed = false;
  std::string out, err;
};

RunResult run(const std::string& args, const fs::path& dir) {
  std::string cmd = "timeout -k 5 300 " + std::string(SPLITLEAK_BIN_DIR) + "/splitleak " + args + " >" +
                    (dir / "out.txt").string() + " 2>" + (dir / "err.txt").string() + " </dev/null";
  int st = std::system(cmd.c_str());
  RunResult r;
  r.crashed = WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) > 2);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(dir / "out.txt");
  r.err = slurp(dir / "err.txt");
  return r;
}

void expect_clean_failure(const RunResult& r, const std::string& needle) {
  INFO("stderr: " << r.err);
  CHECK_FALSE(r.crashed);
  CHECK((r.code == 1 || r.code == 2));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK_THAT(r.err, Catch::Contains("error") && Catch::Contains(needle));
}

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

const fs::path kShipped = fs::path(SPLITLEAK_SOURCE_DIR) / "examples" / "onnx" / "mnist_resnet.onnx";

}  // namespace

TEST_CASE("LeNet and CIFAR10CNN exported to ONNX and imported back give bit-identical outputs", "[onnx][export]") {
  Generator gen(11);
  auto lenet = make_lenet(gen);
  check_round_trip(*lenet, Shape{1, 1, 28, 28}, "lenet");
  Cifar10CnnSize small;
  small.width = 8;
  small.hidden = 32;
  small.image_size = 16;
  auto cifar = make_cifar10cnn(gen, small);
  check_round_trip(*cifar, Shape{1, 3, 16, 16}, "cifar10cnn (small)");

  SECTION("an edge head and a cloud tail export on their own") {
    SplitModel s = lenet->split("pool1");
    check_round_trip(*s.head, Shape{1, 1, 28, 28}, "lenet edge head");
    check_round_trip(*s.tail, Shape{1, 8, 12, 12}, "lenet cloud tail");
  }
  SECTION("the general layers round-trip too") {
    Sequential net;
    ConvArgs a;
    a.stride = 2;
    a.stride_w = 1;
    a.pad = 1;
    a.pad_right = 0;
    a.dilation_w = 2;
    a.groups = 2;
    net.add("c", std::make_shared<Conv2d>(2, 4, 3, 2, a));
    net.add("bn", BatchNorm::from_statistics(Tensor::full(Shape{4}, 0.5), Tensor::full(Shape{4}, 0.1),
                                             Tensor::full(Shape{4}, 0.2), Tensor::full(Shape{4}, 2.0), 1e-5));
    net.add("t", std::make_shared<Tanh>());
    PoolArgs p;
    p.mode = PoolMode::avg;
    p.kh = p.kw = 2;
    p.sh = p.sw = 1;
    p.pb = p.pr = 1;
    net.add("avg", std::make_shared<Pool2d>(p));
    net.add("lr", std::make_shared<LeakyReLU>(0.2));
    net.add("gap", std::make_shared<GlobalAvgPool2d>());
    net.add("flat", std::make_shared<Flatten>());
    net.add("sm", std::make_shared<Softmax>(1));
    net.reset_parameters(gen);
    // not folded on import: the batch norm follows a convolution only in the exported chain's order
    const std::string bytes = onnxio::export_bytes(net, Shape{1, 2, 9, 9});
    onnxio::ImportOptions no_fold;
    no_fold.fold_batchnorm = false;
    Model back = onnxio::to_model(onnxio::import_bytes(bytes.data(), bytes.size(), "general", no_fold));
    NoGradGuard ng;
    Tensor x = random_input(Shape{3, 2, 9, 9}, 5);
    CHECK(bit_identical(net.forward(x), back.net->forward(x)));
  }
  SECTION("a layer with no ONNX mapping is a clear error") {
    Sequential net;
    net.add("d", std::make_shared<ConvTranspose2d>(1, 1, 2, 2));
    net.add("odd", std::make_shared<Softmax>(1, true));
    CHECK_THROWS_WITH(onnxio::export_bytes(net, Shape{1, 1, 4, 4}), Catch::Contains("'odd'"));
  }
}

TEST_CASE("the PyTorch model of examples/onnx imports with its split points and a generic profile", "[onnx][byom]") {
  REQUIRE(fs::exists(kShipped));
  onnxio::ImportedModel im = onnxio::import_file(kShipped.string());
  CHECK(im.producer.find("pytorch") != std::string::npos);
  CHECK(im.dynamic_batch);
  Model m = onnxio::to_model(im);
  CHECK(m.input_shape == Shape({1, 28, 28}));
  CHECK(m.num_classes == 10);
  // the residual block is one segment (its inner nodes are no split points), the rest single layers
  const auto points = im.graph->split_points();
  CHECK(points.size() < im.graph->size());
  CHECK(m.net->layer_names() == points);
  int graphs = 0;
  for (const auto& [name, layer] : m.net->children()) graphs += dynamic_cast<Graph*>(layer.get()) != nullptr;
  CHECK(graphs == 1);
  // whole = the graph, bit for bit
  NoGradGuard ng;
  Tensor x = random_input(Shape{4, 1, 28, 28}, 3);
  CHECK(bit_identical(m.net->forward(x), im.graph->forward(x)));
  // the profile: regions from the shapes (a stride-2 convolution plays the first pool), the linear layer fc
  ModelProfile p = profile_of(m);
  CHECK_FALSE(p.measured);
  CHECK(p.layers.front().region == Region::first_pool);  // the stem conv halves the image
  CHECK(p.layers.back().region == Region::fc);
  // exported again, it imports to the same values
  const std::string bytes = onnxio::export_bytes(*m.net, Shape{1, 1, 28, 28});
  Model again = onnxio::to_model(onnxio::import_bytes(bytes.data(), bytes.size(), "re-export"));
  CHECK(bit_identical(again.net->forward(x), m.net->forward(x)));
}

TEST_CASE("cli: splitleak on the shipped PyTorch model: accuracy as PyTorch printed it, attacks at two cuts",
          "[onnx][byom][cli]") {
  fs::path dir = fs::temp_directory_path() / ("splitleak_byom_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string model = kShipped.string();

  auto r = run("info --model " + model, dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("split points (--split)") && Catch::Contains("(inside a block: no split)") &&
                        Catch::Contains("(ends a block)"));
  const auto want = nlohmann::json::parse(slurp(kShipped.parent_path() / "mnist_resnet.json"));

  SECTION("test accuracy equals PyTorch's, to the last printed digit (real MNIST)") {
    const char* env = std::getenv("SPLITLEAK_DATA");
    const fs::path data = env && *env ? fs::path(env) : fs::path("data");
    if (!fs::exists(data / "mnist" / "t10k-images-idx3-ubyte")) {
      WARN("MNIST not found under " << data.string() << " (splitleak fetch mnist): accuracy check skipped");
      return;
    }
    r = run("eval --json --model " + model + " --data " + data.string(), dir);
    INFO(r.err);
    REQUIRE(r.code == 0);
    auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
    char printed[32];
    std::snprintf(printed, sizeof printed, "%.2f", 100.0 * j["accuracy"].get<double>());
    CHECK(std::string(printed) == want["pytorch_test_accuracy_percent"].get<std::string>());
  }
  SECTION("the three attacks at two cuts write grids (smoke: few iterations, tiny data)") {
    sl::test::write_tiny_mnist(dir / "data", 60, 20);
    const std::string data = " --data " + (dir / "data").string();
    onnxio::ImportedModel im = onnxio::import_file(model);
    const auto points = im.graph->split_points();
    REQUIRE(points.size() >= 4);
    for (const std::string& cut : {points[1], points[3]})
      for (const std::string& kind : {"whitebox", "blackbox", "queryfree"}) {
        INFO(kind << " at " << cut);
        fs::path out = dir / (kind + "_" + cut);
        r = run("attack " + kind + " --model " + model + " --split " + cut +
                    " --iters 5 --epochs 1 --images 2 --attacker-limit 40 --json --out " + out.string() + data,
                dir);
        INFO(r.err);
        CHECK(r.code == 0);
        CHECK(fs::exists(out / "grid.png"));
      }
  }
  fs::remove_all(dir);
}

TEST_CASE("cli: bad ONNX files are one-line errors with a non-zero exit", "[onnx][cli][harden]") {
  fs::path dir = fs::temp_directory_path() / ("splitleak_badonnx_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  Generator gen(2);
  auto lenet = make_lenet(gen);
  const std::string good = onnxio::export_bytes(*lenet, Shape{1, 1, 28, 28});
  ::onnx::ModelProto proto;
  REQUIRE(proto.ParseFromString(good));
  auto variant = [&](const std::string& name, auto&& edit) {
    ::onnx::ModelProto m = proto;
    edit(m);
    std::string b;
    REQUIRE(m.SerializeToString(&b));
    write(dir / name, b);
    return (dir / name).string();
  };

  write(dir / "truncated.onnx", good.substr(0, good.size() / 2));
  expect_clean_failure(run("info --model " + (dir / "truncated.onnx").string(), dir), "truncated.onnx");
  write(dir / "garbage.onnx", std::string(300, '\xff'));
  expect_clean_failure(run("eval --model " + (dir / "garbage.onnx").string(), dir), "garbage.onnx");
  write(dir / "empty.onnx", "");
  expect_clean_failure(run("info --model " + (dir / "empty.onnx").string(), dir), "empty.onnx");
  expect_clean_failure(run("info --model " + (dir / "missing.onnx").string(), dir), "missing.onnx");

  const std::string elu = variant("elu.onnx", [](auto& m) {
    for (auto& n : *m.mutable_graph()->mutable_node())
      if (n.op_type() == "Relu") n.set_op_type("Elu");
  });
  auto r = run("info --model " + elu, dir);
  expect_clean_failure(r, "Elu");
  CHECK_THAT(r.err, Catch::Contains("Conv"));  // and what is supported

  const std::string dyn = variant("dynamic.onnx", [](auto& m) {
    m.mutable_graph()
        ->mutable_input(0)
        ->mutable_type()
        ->mutable_tensor_type()
        ->mutable_shape()
        ->mutable_dim(2)
        ->set_dim_param("height");
  });
  expect_clean_failure(run("attack whitebox --model " + dyn + " --split conv1 --out " + (dir / "o").string(), dir),
                       "height");
  CHECK_FALSE(fs::exists(dir / "o"));

  const std::string two = variant("two_outputs.onnx", [](auto& m) {
    auto* o = m.mutable_graph()->add_output();
    *o = m.graph().output(0);
    o->set_name("pool1");
  });
  expect_clean_failure(run("eval --model " + two, dir), "2 outputs");

  // export: an unknown split, an output over a folder
  expect_clean_failure(
      run("export --model " + (dir / "truncated.onnx").string() + " --out " + (dir / "x.onnx").string(), dir),
      "truncated");
  CHECK_FALSE(fs::exists(dir / "x.onnx"));
  write(dir / "lenet.onnx", good);
  const std::string lenet_onnx = (dir / "lenet.onnx").string();
  expect_clean_failure(run("export --model " + lenet_onnx + " --part cloud --out " + (dir / "x.onnx").string(), dir),
                       "--part needs --split");
  expect_clean_failure(run("export --model " + lenet_onnx + " --split conv9 --out " + (dir / "x.onnx").string(), dir),
                       "conv9");
  CHECK_FALSE(fs::exists(dir / "x.onnx"));

  // export: one side of a split, read back with the split's layers
  r = run("export --model " + lenet_onnx + " --split pool1 --part cloud --out " + (dir / "cloud.onnx").string(), dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  onnxio::ImportedModel cloud = onnxio::import_file((dir / "cloud.onnx").string());
  CHECK(cloud.input_shape == Shape({1, 8, 12, 12}));
  CHECK(cloud.graph->split_points().front() == "conv2");
  CHECK(cloud.graph->split_points().back() == "fc3");
  fs::remove_all(dir);
}

TEST_CASE("cli: --dataset folder:DIR (PNG images per class) gives what the same images give as IDX files",
          "[datasets][cli][byom]") {
  fs::path dir = fs::temp_directory_path() / ("splitleak_folder_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  sl::test::write_tiny_mnist(dir / "data", 20, 30);
  data::Dataset test = data::load_dataset("mnist", (dir / "data").string(), false);
  // the test images as PNGs in class folders named so that their sorted order is the class order
  for (int64_t i = 0; i < test.size(); ++i) {
    const fs::path cls = dir / "png" / ("class" + std::to_string(test.labels[size_t(i)]));
    fs::create_directories(cls);
    char name[32];
    std::snprintf(name, sizeof name, "%04d.png", int(i));
    data::write_png((cls / name).string(), data::denormalize(test.image(i), test.norm).reshape(Shape{1, 28, 28}));
  }
  data::Dataset folder = data::load_dataset("folder:" + (dir / "png").string(), "", false);
  REQUIRE(folder.size() == test.size());
  CHECK(folder.classes == 10);
  CHECK(folder.images.shape() == test.images.shape());

  const std::string model = kShipped.string();
  auto a = run("eval --json --model " + model + " --dataset mnist --data " + (dir / "data").string(), dir);
  auto b = run("eval --json --model " + model + " --dataset folder:" + (dir / "png").string(), dir);
  INFO(a.err << b.err);
  REQUIRE(a.code == 0);
  REQUIRE(b.code == 0);
  auto ja = nlohmann::json::parse(a.out.substr(a.out.find('{')));
  auto jb = nlohmann::json::parse(b.out.substr(b.out.find('{')));
  CHECK(ja["accuracy"] == jb["accuracy"]);  // the same images, reordered: the same score
  CHECK(std::abs(ja["loss"].get<double>() - jb["loss"].get<double>()) < 1e-6);
  CHECK(jb["images"] == 30);

  SECTION("bad folders are one-line errors") {
    fs::create_directories(dir / "empty");
    expect_clean_failure(run("eval --model " + model + " --dataset folder:" + (dir / "empty").string(), dir),
                         "no class sub-folders");
    fs::create_directories(dir / "bad" / "a");
    write(dir / "bad" / "a" / "x.png", "not a png at all");
    expect_clean_failure(run("eval --model " + model + " --dataset folder:" + (dir / "bad").string(), dir), "x.png");
    fs::create_directories(dir / "mixed" / "a");
    data::write_png((dir / "mixed" / "a" / "1.png").string(), Tensor::zeros(Shape{1, 28, 28}));
    data::write_png((dir / "mixed" / "a" / "2.png").string(), Tensor::zeros(Shape{1, 14, 28}));
    expect_clean_failure(run("eval --model " + model + " --dataset folder:" + (dir / "mixed").string(), dir),
                         "same size");
    fs::create_directories(dir / "small" / "a");
    data::write_png((dir / "small" / "a" / "1.png").string(), Tensor::zeros(Shape{1, 14, 14}));
    expect_clean_failure(run("eval --model " + model + " --dataset folder:" + (dir / "small").string(), dir),
                         "[1, 14, 14]");
    expect_clean_failure(run("eval --model " + model + " --dataset imagenet", dir), "folder:DIR");
  }
  fs::remove_all(dir);
}

#endif  // SPLITLEAK_WITH_ONNX
