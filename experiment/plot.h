// Line plots drawn by gnuplot (Debian gnuplot-nox): the usability-privacy curves of the defense sweeps and any
// other x-y figure. Each plot is written as PNG next to the gnuplot script and the data that made it (NAME.gp,
// NAME.dat), so a figure can be restyled and redrawn with `gnuplot NAME.gp` without running the experiment again.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sl::experiment {

struct PlotSeries {
  std::string title;                              // legend entry
  std::vector<std::pair<double, double>> points;  // (x, y) in order along the line
  int color = 0;                                  // palette index (series of one family share it)
  bool dashed = false;                            // a second style in the same colour (e.g. input vs intermediate)
};

struct PlotPanel {
  std::string title, xlabel, ylabel;
  std::vector<PlotSeries> series;
  std::optional<std::pair<double, double>> xrange, yrange;
  std::optional<double> hline;  // a dotted horizontal reference line (e.g. 95 % accuracy)
  bool logx = false;            // a logarithmic x axis (points with x <= 0 are left out)
};

// The PNG terminal gnuplot offers here ("pngcairo", else "png"), or "" when gnuplot is missing.
std::string gnuplot_png_terminal();

// Draws the panels into `png_path`, `columns` per row (0: all in one row), row by row; writes `png_path` without
// ".png" plus ".gp" and ".dat". Returns false (and writes only the script and the data) when gnuplot is not
// installed; throws IoError when gnuplot fails.
bool plot_png(const std::string& png_path, const std::vector<PlotPanel>& panels, int columns = 0, int panel_width = 640,
              int panel_height = 480);

}  // namespace sl::experiment
