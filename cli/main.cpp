// splitleak: train, split, attack and defend models for edge-cloud inference. Errors end as one line on
// stderr and a non-zero exit code (2 for bad flags, 1 otherwise).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "tensor/error.h"

int main(int argc, char** argv) {
  sl::cli::set_command_line(argc, argv);
  CLI::App app{"splitleak: privacy of split (edge-cloud) inference: train, split, attack, defend, measure"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "splitleak 0.1.0");
  sl::cli::add_fetch(app);
  sl::cli::add_train(app);
  sl::cli::add_eval(app);
  sl::cli::add_info(app);
  sl::cli::add_attack(app);
  sl::cli::add_defend(app);
  if (argc > 1 && argv[1][0] != '-') {
    std::string cmd = argv[1], known;
    bool found = false;
    for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      found = found || sub->get_name() == cmd;
      known += (known.empty() ? "" : ", ") + sub->get_name();
    }
    if (!found) {
      std::fprintf(stderr, "splitleak: error: unknown command '%s' (commands: %s)\n", cmd.c_str(), known.c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "splitleak: error: %s (see splitleak --help)\n", e.what());
    return 2;
  } catch (const sl::Error& e) {
    std::fprintf(stderr, "splitleak: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "splitleak: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
