// A tiny synthetic MNIST for tests that run the `splitleak` binary (the CLI tests, the docs test): class k is a
// bright horizontal bar at rows 2 + 2k and 3 + 2k, so a model learns it in a few steps. Written as the four IDX
// files of DIR/mnist, exactly as `splitleak fetch mnist` lays them out.
#pragma once
#include <filesystem>

namespace sl::test {

void write_tiny_mnist(const std::filesystem::path& data_dir, int n_train, int n_test);

}  // namespace sl::test
