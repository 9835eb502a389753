// The valid ranges of numeric flags, as CLI11 validators: every numeric flag of every command takes one, so its
// range shows in --help ("INT:[1, 100000]", "FLOAT:> 0") and anything outside it — text, NaN, inf, a number out
// of range, a negative number for a seed, an integer too large for its type — is refused while the command line
// is parsed, before any file is read, as "--flag: got X, expected ...".
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>

namespace sl::cli::valid {

constexpr int64_t kMaxImages = 1000000000;  // counts of images (--limit, --images, ...)
constexpr int64_t kMaxBatch = int64_t(1) << 20;

CLI::Validator integer(int64_t lo, int64_t hi);  // an integer in [lo, hi]
CLI::Validator positive();                       // a finite number > 0
CLI::Validator non_negative();                   // a finite number >= 0
CLI::Validator real(double lo_open, double hi);  // a finite number in (lo_open, hi]
CLI::Validator seed();                           // an integer in [0, 2^64 - 1]: digits only, so -1 never wraps
CLI::Validator threads();                        // 0 (OpenMP's default) .. max_threads()

CLI::Validator path();     // a non-empty file or folder name
CLI::Validator dataset();  // mnist, cifar10 or folder:DIR

// A defense spec (split/defense.h), checked by its kinds: "dropout:0.6", "gaussian:0.5@input,dropout:0.3".
// Without levels where the levels come from another flag (`defend --levels`).
CLI::Validator defense(bool level_required = true);
// Comma-separated finite numbers ("0,0.1,0.5").
CLI::Validator number_list();

// The most CPU threads a command accepts: 4 x the hardware threads of this machine.
int max_threads();

}  // namespace sl::cli::valid
