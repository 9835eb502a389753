// The subcommands of `splitleak`; each registers its flags on the CLI11 app and runs from its callback a run of
// experiment/ (cli/ holds flag parsing only).
#pragma once
#include <CLI/CLI.hpp>

#include "experiment/common.h"

namespace sl::cli {

using namespace ::sl::experiment;  // the runs and what they share (load_model, command_line, ...)

void add_fetch(CLI::App& app);
void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_info(CLI::App& app);
void add_attack(CLI::App& app);
void add_split(CLI::App& app);
void add_serve(CLI::App& app);  // serve and stats
void add_edge(CLI::App& app);
void add_defend(CLI::App& app);
void add_partition(CLI::App& app);
void add_export(CLI::App& app);

// "splitleak 0.1.0 (commit ...)" for --version.
std::string version_line();

}  // namespace sl::cli
