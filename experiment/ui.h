// Terminal output: a progress line with rate and ETA, aligned tables, and small formatting helpers.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sl::ui {

// A progress line on stderr. On a terminal it redraws in place (at most ~8 times a second); otherwise, after
// the first two seconds, (logs, CI) it prints a line at every 10 % so logs stay short.
class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit);
  // `done` of `total` units finished; `extra` is appended (e.g. "loss 0.123  acc 97.1%").
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  double elapsed_s() const;
  double rate() const;  // units per second so far

 private:
  void draw(int64_t done, const std::string& extra, bool final);
  std::string label_, unit_;
  int64_t total_;
  int64_t done_ = 0;
  int last_decile_ = -1;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// A table printed with aligned columns; numeric-looking cells are right-aligned.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string str() const;
  void print() const;  // to stdout

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// One Progress line per phase of a run ("train decoder", "rMLE", "accuracy"), created on the phase's first report
// (done = 0 starts its clock) and finished at its last. The unit shown: "it" for rMLE phases, "img" for accuracy,
// "step" otherwise.
class PhaseLines {
 public:
  explicit PhaseLines(std::string prefix = "") : prefix_(std::move(prefix)) {}
  using Sink = std::function<void(const std::string& phase, int64_t done, int64_t total, const std::string& note)>;
  Sink sink();

 private:
  std::string prefix_;
  std::map<std::string, std::unique_ptr<Progress>> lines_;
};

std::string fixed(double v, int decimals);               // "12.35"
std::string duration(double seconds);                    // "1:05", "1:02:03", "0.42 s"
std::string bytes(double n);                             // "3.1 KiB"
std::string percent(double fraction, int decimals = 2);  // 0.9876 -> "98.76 %"
std::string now_iso8601();                               // "2026-11-21T22:10:00Z"

}  // namespace sl::ui
