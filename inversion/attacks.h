// The built-in attacks (registered in attack.cpp), and what their files share. Internal to inversion/.
#pragma once
#include <chrono>
#include <memory>

#include "inversion/attack.h"

namespace sl::inv {

std::unique_ptr<Attack> make_whitebox(const AttackConfig& cfg);   // attack_whitebox.cpp
std::unique_ptr<Attack> make_blackbox(const AttackConfig& cfg);   // attack_blackbox.cpp
std::unique_ptr<Attack> make_queryfree(const AttackConfig& cfg);  // attack_queryfree.cpp

namespace detail {

using Clock = std::chrono::steady_clock;
inline double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The black-box and query-free attackers learn from their own images: there must be some, of the right kind.
void check_attacker_data(const AttackTarget& t);

// rMLE through f1 over the observed rows in chunks of cfg.batch (the result does not depend on the chunking);
// adaptive: the defense model of each row (adaptive.h). Returns [rows, C, H, W] on the CPU (normalised space).
Tensor rmle_rows(Module& f1, const AttackTarget& t, const Observation& obs, const AttackConfig& cfg,
                 const PhaseProgress& progress, const std::string& phase);

RmleProgress rmle_progress(const PhaseProgress& progress, const std::string& phase, int64_t done_before, int64_t total);
FitProgress fit_progress(const PhaseProgress& progress, const std::string& phase);

}  // namespace detail
}  // namespace sl::inv
