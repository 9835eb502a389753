// splitleak: train, split, attack and defend models for edge-cloud inference. Errors end as one line on
// stderr and a non-zero exit code (2 for bad flags, 1 otherwise); nothing a user can cause is reported as an
// internal error.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include "cli/commands.h"
#include "experiment/common.h"
#include "tensor/error.h"

namespace {

// Messages go out on exactly one line.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

int fail(int code, const std::string& msg) {
  std::fprintf(stderr, "splitleak: error: %s\n", one_line(msg).c_str());
  return code;
}

bool asks_for_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help" || a == "--help-all" || a == "--version") return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  sl::cli::set_command_line(argc, argv);
  CLI::App app{"splitleak: privacy of split (edge-cloud) inference: train, split, attack, defend, measure"};
  app.require_subcommand(1);
  app.set_version_flag("--version", sl::cli::version_line());
  sl::cli::add_fetch(app);
  sl::cli::add_train(app);
  sl::cli::add_eval(app);
  sl::cli::add_info(app);
  sl::cli::add_attack(app);
  sl::cli::add_split(app);
  sl::cli::add_serve(app);
  sl::cli::add_edge(app);
  sl::cli::add_defend(app);
  sl::cli::add_partition(app);
  sl::cli::add_export(app);

  // Walk the command words ("attack whitebox"): an unknown one is named with the ones that exist.
  CLI::App* cur = &app;
  std::string chain = "splitleak";
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    auto subs = cur->get_subcommands([](CLI::App*) { return true; });
    if (subs.empty() || word.empty() || word[0] == '-') break;
    CLI::App* next = nullptr;
    std::string known;
    for (auto* sub : subs) {
      if (sub->get_name() == word) next = sub;
      known += (known.empty() ? "" : ", ") + sub->get_name();
    }
    if (!next) {
      const std::string kind = cur == &app ? "command" : cur->get_name();
      return fail(2, "unknown " + kind + " '" + word + "' (" + kind + "s: " + known + "; see " + chain + " --help)");
    }
    cur = next;
    chain += " " + word;
  }
  if (cur != &app && cur->get_require_subcommand_min() > 0 && !asks_for_help(argc, argv)) {
    std::string known;
    for (auto* sub : cur->get_subcommands([](CLI::App*) { return true; }))
      known += (known.empty() ? "" : ", ") + sub->get_name();
    return fail(2, chain + ": name one of " + known + " (see " + chain + " --help)");
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
    return fail(2, std::string(e.what()) + " (see " + chain + " --help)");
  } catch (const sl::Error& e) {
    return fail(1, e.what());
  } catch (const std::length_error&) {
    return fail(1,
                "out of memory: the data and the flags ask for a buffer larger than this machine can hold "
                "(try a smaller --batch, --images or --limit)");
  } catch (const std::bad_alloc&) {
    return fail(1,
                "out of memory: the data and the flags ask for more memory than this machine can give "
                "(try a smaller --batch, --images or --limit)");
  } catch (const std::filesystem::filesystem_error& e) {
    std::string where = e.path1().empty() ? std::string() : e.path1().string() + ": ";
    return fail(1, where + e.code().message());
  } catch (const std::system_error& e) {
    return fail(1, std::string("the system refused: ") + e.what());
  } catch (const std::exception& e) {
    return fail(1, std::string("internal error (please report it): ") + e.what());
  } catch (...) {
    return fail(1, "internal error (please report it): an unknown exception");
  }
  return 0;
}
