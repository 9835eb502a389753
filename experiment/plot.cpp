#include "experiment/plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "tensor/error.h"
#include "tensor/io.h"

extern char** environ;

namespace sl::experiment {

namespace {

// Runs a program with arguments (no shell); returns its exit status, or -1 when it could not be started.
int run_program(const std::vector<std::string>& argv, bool quiet) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (quiet) {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A gnuplot string literal: single quotes, a single quote doubled.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "''";
    else if (c == '\n' || c == '\r')
      out += ' ';
    else
      out += c;
  }
  return out + "'";
}

void write_text(const std::string& path, const std::string& text) { io::write_file_atomic(path, text, "output"); }

const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

}  // namespace

std::string gnuplot_png_terminal() {
  static const std::string term = [] {
    for (const char* t : {"pngcairo", "png"})
      if (run_program({"gnuplot", "-e", std::string("set terminal ") + t}, true) == 0) return std::string(t);
    return std::string();
  }();
  return term;
}

bool plot_png(const std::string& png_path, const std::vector<PlotPanel>& panels, int columns, int panel_width,
              int panel_height) {
  SL_CHECK(!panels.empty(), ValueError, "plot ", png_path, ": no panels");
  std::string stem = png_path;
  if (stem.size() > 4 && stem.substr(stem.size() - 4) == ".png") stem.resize(stem.size() - 4);
  const std::string dat = stem + ".dat", gp = stem + ".gp";
  const std::string dat_name = std::filesystem::path(dat).filename().string();

  // The data: one gnuplot data block per series (blocks separated by two blank lines, addressed by index).
  std::ostringstream d;
  d << std::setprecision(10);
  int block = 0;
  std::vector<std::vector<int>> index(panels.size());
  for (size_t p = 0; p < panels.size(); ++p)
    for (const PlotSeries& s : panels[p].series) {
      d << "# " << panels[p].title << " / " << s.title << "\n";
      int64_t kept = 0;
      for (auto [x, y] : s.points)
        if (!panels[p].logx || x > 0) {
          d << x << ' ' << y << '\n';
          ++kept;
        }
      if (kept == 0) d << "NaN NaN\n";
      d << "\n\n";
      index[p].push_back(block++);
    }

  const std::string term = gnuplot_png_terminal();
  const int cols = columns <= 0 ? int(panels.size()) : std::min(columns, int(panels.size()));
  const int rows = (int(panels.size()) + cols - 1) / cols;
  std::ostringstream g;
  g << "# Drawn by splitleak; redraw with: gnuplot " << std::filesystem::path(gp).filename().string()
    << " (from this folder)\n";
  g << "set terminal " << (term.empty() ? "pngcairo" : term) << " size " << panel_width * cols << ","
    << panel_height * rows << (term == "png" ? "" : " noenhanced font 'sans,10'") << "\n";
  const std::string tmp_name = std::filesystem::path(png_path).filename().string() + ".partial";
  g << "set output " << quoted(tmp_name) << "\n";
  g << "set datafile missing 'NaN'\nset key bottom right box opaque\nset grid\n";
  g << "set multiplot layout " << rows << "," << cols << "\n";
  for (size_t p = 0; p < panels.size(); ++p) {
    const PlotPanel& pn = panels[p];
    g << "set title " << quoted(pn.title) << "\nset xlabel " << quoted(pn.xlabel) << "\nset ylabel "
      << quoted(pn.ylabel) << "\n";
    g << (pn.logx ? "set logscale x\n" : "unset logscale x\n");
    if (pn.xrange)
      g << "set xrange [" << pn.xrange->first << ":" << pn.xrange->second << "]\n";
    else
      g << "set autoscale x\n";
    if (pn.yrange)
      g << "set yrange [" << pn.yrange->first << ":" << pn.yrange->second << "]\n";
    else
      g << "set autoscale y\n";
    g << "plot ";
    bool first = true;
    if (pn.hline) {
      g << *pn.hline << " notitle with lines dt 3 lc rgb '#555555'";
      first = false;
    }
    for (size_t s = 0; s < pn.series.size(); ++s) {
      const PlotSeries& se = pn.series[s];
      if (se.points.empty()) continue;  // nothing to draw (gnuplot would warn)
      g << (first ? "" : ", \\\n     ") << quoted(dat_name) << " index " << index[p][s] << " using 1:2 with linespoints"
        << " lc rgb '" << kPalette[size_t(se.color) % 10] << "' dt " << (se.dashed ? 2 : 1) << " pt "
        << (se.dashed ? 6 : 7) << " ps 0.8 lw 1.5 title " << quoted(se.title);
      first = false;
    }
    if (first) g << "NaN notitle";  // an empty panel
    g << "\n";
  }
  g << "unset multiplot\nset output\n";
  write_text(dat, d.str());
  write_text(gp, g.str());
  if (term.empty()) return false;
  // gnuplot runs in the output folder (the script names its files relative to it); the PNG lands atomically.
  const std::filesystem::path dir = std::filesystem::absolute(std::filesystem::path(png_path)).parent_path();
  const std::filesystem::path tmp = dir / tmp_name;
  const std::string gp_name = std::filesystem::path(gp).filename().string();
  int rc = run_program({"sh", "-c", "cd \"$0\" && exec gnuplot \"$1\"", dir.string(), gp_name}, false);
  std::error_code ec;
  if (rc != 0) {
    std::filesystem::remove(tmp, ec);
    throw IoError(str("gnuplot failed on ", gp, " (exit status ", rc, ")"));
  }
  std::filesystem::rename(tmp, png_path, ec);
  SL_CHECK(!ec, IoError, "plot: cannot move ", tmp.string(), " to ", png_path, ": ", ec.message());
  return true;
}

}  // namespace sl::experiment
