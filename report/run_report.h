// The run report: one self-contained HTML page (inline SVG, no scripts, no
// network) drawn from a run directory's metrics.jsonl and config.pbtxt:
// loss and accuracy curves, learning rate, images/s, the step-time breakdown,
// per-shard data rates, events (restarts, data errors), and a confusion
// matrix heat map when an eval event carries one ("confusion": [[...]]).
#pragma once

#include <string>
#include <vector>

namespace convoy {

struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y)
};

// An SVG line chart (axes with rounded ticks, one polyline per series, a
// legend), for the report and the benchmarks' charts.
std::string svg_line_chart(const std::string& title, const std::string& x_label,
                           const std::vector<ChartSeries>& series);

// A confusion-matrix heat map (rows: true class, columns: predicted) as a
// standalone SVG; `matrix` is square, `labels` name its rows.
std::string svg_heat_map(const std::string& title, const std::vector<std::vector<double>>& matrix,
                         const std::vector<std::string>& labels);

// Renders the page. Throws UserError when the folder has no metrics.jsonl.
std::string render_report(const std::string& run_dir);

// Writes RUN_DIR/report.html (or `out`) atomically; returns the path.
std::string write_report(const std::string& run_dir, const std::string& out = "");

// `convoy report RUN_DIR [--out FILE]`
int report_main(const std::vector<std::string>& args);

}  // namespace convoy
