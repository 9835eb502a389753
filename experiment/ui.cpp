#include "experiment/ui.h"

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>

namespace sl::ui {

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      tty_(isatty(fileno(stderr))),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double Progress::rate() const {
  double t = elapsed_s();
  return t > 0 ? double(done_) / t : 0.0;
}

void Progress::update(int64_t done, const std::string& extra) {
  done_ = done;
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(120) && done < total_) return;
    last_draw_ = now;
    draw(done, extra, false);
  } else {
    // Logs get a line per 10 % of the work, and only once the work has run for a couple of seconds.
    int decile = total_ > 0 ? int(10 * done / total_) : 0;
    if (decile == last_decile_ || decile >= 10 || elapsed_s() < 2.0) return;
    last_decile_ = decile;
    if (done > 0) draw(done, extra, false);
  }
}

void Progress::finish(const std::string& extra) { draw(done_ > 0 ? done_ : total_, extra, true); }

void Progress::draw(int64_t done, const std::string& extra, bool final) {
  double r = rate();
  std::string eta = r > 0 && done < total_ ? duration(double(total_ - done) / r) : "0:00";
  int width = 24;
  int filled = total_ > 0 ? int(double(width) * double(done) / double(total_)) : width;
  std::string bar(size_t(std::min(filled, width)), '=');
  if (filled < width) bar += '>' + std::string(size_t(width - filled - 1), ' ');
  // Below one unit a second the rate reads per minute ("4.2 attack/min"), not "0 attack/s".
  const bool per_min = r > 0 && r < 1;
  char head[256];
  std::snprintf(head, sizeof head, "%s [%s] %lld/%lld  %.*f %s/%s  %s %s", label_.c_str(), bar.c_str(), (long long)done,
                (long long)total_, per_min ? 1 : 0, per_min ? 60 * r : r, unit_.c_str(), per_min ? "min" : "s",
                final ? "took" : "ETA", final ? duration(elapsed_s()).c_str() : eta.c_str());
  std::string line = std::string(head) + (extra.empty() ? "" : "  " + extra);
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

std::string Table::str() const {
  std::vector<size_t> w(header_.size(), 0);
  auto widen = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  };
  widen(header_);
  for (auto& r : rows_) widen(r);
  // Cells that start with a number (or a sign and a number) are right-aligned.
  auto numeric = [](const std::string& s) {
    size_t i = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    return i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]));
  };
  auto line = [&](const std::vector<std::string>& r) {
    std::string out;
    for (size_t i = 0; i < w.size(); ++i) {
      std::string c = i < r.size() ? r[i] : "";
      std::string padv(w[i] - std::min(w[i], c.size()), ' ');
      out += (i ? "  " : "") + (numeric(c) ? padv + c : c + padv);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string s = line(header_);
  size_t total = 0;
  for (auto x : w) total += x;
  s += std::string(total + 2 * (w.size() - 1), '-') + "\n";
  for (auto& r : rows_) s += line(r);
  return s;
}

void Table::print() const { std::cout << str() << std::flush; }

std::string fixed(double v, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

std::string duration(double s) {
  if (!std::isfinite(s)) return "?";
  if (s < 10) return fixed(s, 2) + " s";
  long t = long(std::lround(s));
  char b[32];
  if (t >= 3600)
    std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(b, sizeof b, "%ld:%02ld", t / 60, t % 60);
  return b;
}

std::string bytes(double n) {
  const char* u[] = {"B", "KiB", "MiB", "GiB"};
  int i = 0;
  while (n >= 1024 && i < 3) {
    n /= 1024;
    ++i;
  }
  return i == 0 ? fixed(n, 0) + " B" : fixed(n, 1) + " " + u[i];
}

std::string percent(double f, int decimals) { return fixed(100 * f, decimals) + " %"; }

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return b;
}

PhaseLines::Sink PhaseLines::sink() {
  return [this](const std::string& phase, int64_t done, int64_t total, const std::string& note) {
    auto& p = lines_[phase];
    const char* unit = phase.find("rMLE") != std::string::npos ? "it" : phase == "accuracy" ? "img" : "step";
    if (!p) p = std::make_unique<Progress>(prefix_ + phase, total, unit);
    if (done == 0) return;  // the phase just started
    p->update(done, note);
    if (done >= total) p->finish(note);
  };
}

}  // namespace sl::ui
