// The subcommands of `splitleak`; each registers itself on the CLI11 app and runs from its callback.
#pragma once
#include <CLI/CLI.hpp>

namespace sl::cli {

void add_fetch(CLI::App& app);
void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_info(CLI::App& app);
void add_attack(CLI::App& app);
void add_defend(CLI::App& app);

}  // namespace sl::cli
