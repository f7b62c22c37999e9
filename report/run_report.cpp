// The run report (see run_report.h). Charts are drawn here as SVG: a line
// chart (axes with rounded ticks, one polyline per series, a legend), a
// stacked bar of the step-time breakdown, and a heat map.
#include "report/run_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/cli_args.h"
#include "common/error.h"
#include "common/files.h"
#include "common/metrics.h"
#include "common/metrics_schema.h"

namespace convoy {
namespace {

using json = nlohmann::json;

const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  if (v != 0 && (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-3)) std::snprintf(buf, sizeof buf, "%.2g", v);
  else std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Ticks at 1, 2 or 5 times a power of ten, about `count` of them; at least
// `min_step` apart (1 for axes that count: epochs, ranks, steps).
std::vector<double> nice_ticks(double lo, double hi, int count, double min_step = 0) {
  if (hi <= lo) hi = lo + 1;
  double raw = (hi - lo) / count, mag = std::pow(10, std::floor(std::log10(raw)));
  double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  step = std::max(step, min_step);
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
  return out;
}

// Mean milliseconds per phase as one stacked horizontal bar, with labels.
std::string breakdown_chart(const std::vector<std::pair<std::string, double>>& phases) {
  const double W = 560, H = 150, L = 16, R = 16;
  double total = 0;
  for (const auto& p : phases) total += p.second;
  std::ostringstream svg;
  svg << "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\"><title>step-time breakdown</title><text x=\"" << W / 2
      << "\" y=\"20\" text-anchor=\"middle\" class=\"t\">Step time, rank 0 (mean " << num(total) << " ms)</text>";
  if (total <= 0) return svg.str() + "<text x=\"20\" y=\"70\">no data</text></svg>";
  double x = L;
  for (size_t i = 0; i < phases.size(); ++i) {
    double w = phases[i].second / total * (W - L - R);
    svg << "<rect class=\"phase\" x=\"" << x << "\" y=\"36\" width=\"" << w << "\" height=\"34\" fill=\"" << kColors[i % 8]
        << "\"><title>" << html_escape(phases[i].first) << " " << num(phases[i].second) << " ms</title></rect>";
    x += w;
    // The legend in two columns: "exposed_comm 12.34 ms (6%)" needs about
    // 190 px at 12 px sans-serif; a column is half the chart (264 px).
    const double column = (W - L - R) / 2;
    svg << "<rect x=\"" << L + column * (i % 2) << "\" y=\"" << 84 + 20 * (i / 2) << "\" width=\"10\" height=\"10\" fill=\""
        << kColors[i % 8] << "\"/><text x=\"" << L + 14 + column * (i % 2) << "\" y=\"" << 93 + 20 * (i / 2) << "\">"
        << html_escape(phases[i].first) << " " << fixed(phases[i].second, 2) << " ms ("
        << fixed(100 * phases[i].second / total, 0) << "%)</text>";
  }
  svg << "</svg>";
  return svg.str();
}

std::string heat_map(const std::string& title, const json& matrix, const std::vector<std::string>& labels) {
  std::vector<std::vector<double>> m;
  for (const auto& row : matrix) {
    m.emplace_back();
    for (const auto& v : row) m.back().push_back(v.get<double>());
  }
  return svg_heat_map(title, m, labels);
}

std::vector<json> read_events(const std::string& path) {
  std::ifstream in(path);
  if (!in) CONVOY_USER_ERROR(path << " does not exist: not a run directory, or the run never started");
  std::vector<json> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    // A line cut short by a crash is skipped, not fatal.
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("event")) out.push_back(std::move(j));
  }
  return out;
}

// Fields of an event, through the schema (common/metrics_schema.h): asking
// for a field it does not declare is a bug here, and throws.
using metrics::number;
using metrics::text;

}  // namespace

std::string svg_heat_map(const std::string& title, const std::vector<std::vector<double>>& matrix,
                         const std::vector<std::string>& labels) {
  size_t n = matrix.size();
  const double cell = std::max(8.0, std::min(36.0, 420.0 / std::max<size_t>(n, 1))), L = 110, T = 58;
  double peak = 1;
  for (const auto& row : matrix)
    for (double v : row) peak = std::max(peak, v);
  std::ostringstream svg;
  // The title starts at the left edge and the chart is at least as wide as
  // it (up to 9 px a character in bold 14 px DejaVu Sans), so neither end is
  // cut off however long the split's name or however few the classes.
  const double size = std::max(L + cell * n + 20, 9.0 * static_cast<double>(title.size()) + 16);
  svg << "<svg class=\"chart heat\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << size << "\" height=\""
      << T + cell * n + 30 << "\"><title>" << html_escape(title) << "</title><text x=\"8\" y=\"20\" class=\"t\">"
      << html_escape(title) << "</text><text x=\"8\" y=\"38\">rows: true class, columns: predicted</text>";
  for (size_t r = 0; r < n; ++r) {
    std::string label = r < labels.size() ? labels[r] : std::to_string(r);
    svg << "<text x=\"" << L - 4 << "\" y=\"" << T + cell * r + cell / 2 + 4 << "\" text-anchor=\"end\">"
        << html_escape(label.substr(0, 16)) << "</text>";
    for (size_t c = 0; c < matrix[r].size(); ++c) {
      double v = matrix[r][c], a = v / peak;
      int shade = static_cast<int>(255 - 200 * a);
      svg << "<rect x=\"" << L + cell * c << "\" y=\"" << T + cell * r << "\" width=\"" << cell << "\" height=\"" << cell
          << "\" fill=\"rgb(" << shade << "," << shade << ",255)\"><title>" << num(v) << "</title></rect>";
      if (cell >= 22) svg << "<text x=\"" << L + cell * c + cell / 2 << "\" y=\"" << T + cell * r + cell / 2 + 4
                          << "\" text-anchor=\"middle\">" << num(v) << "</text>";
    }
  }
  svg << "</svg>";
  return svg.str();
}

std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::vector<ChartSeries>& series) {
  const double W = 560, H = 300, L = 64, R = 16, T = 34, B = 44;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  size_t points = 0;
  bool integer_x = true;  // epochs, ranks, steps: no ticks between them
  for (const auto& s : series)
    for (auto [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      integer_x = integer_x && x == std::round(x);
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      ++points;
    }
  std::ostringstream svg;
  svg << "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\" viewBox=\"0 0 " << W << " " << H << "\"><title>" << html_escape(title) << "</title>"
      << "<text x=\"" << W / 2 << "\" y=\"20\" text-anchor=\"middle\" class=\"t\">" << html_escape(title) << "</text>";
  if (points == 0) {
    svg << "<text x=\"" << W / 2 << "\" y=\"" << H / 2 << "\" text-anchor=\"middle\">no data</text></svg>";
    return svg.str();
  }
  if (x1 == x0) x0 -= 1, x1 += 1;
  double pad = (y1 - y0) * 0.05;
  if (pad == 0) pad = std::max(std::fabs(y1) * 0.05, 1e-9);
  y0 -= pad, y1 += pad;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  svg << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
      << "\" fill=\"#fff\" stroke=\"#999\"/>";
  for (double t : nice_ticks(y0, y1, 5))
    svg << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << py(t) << "\" y2=\"" << py(t)
        << "\" stroke=\"#eee\"/><text x=\"" << L - 6 << "\" y=\"" << py(t) + 4 << "\" text-anchor=\"end\">" << num(t)
        << "</text>";
  for (double t : nice_ticks(x0, x1, 6, integer_x ? 1 : 0))
    svg << "<text x=\"" << px(t) << "\" y=\"" << H - B + 16 << "\" text-anchor=\"middle\">" << num(t) << "</text>";
  svg << "<text x=\"" << L + (W - L - R) / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">"
      << html_escape(x_label) << "</text>";
  for (size_t i = 0; i < series.size(); ++i) {
    const char* color = kColors[i % 8];
    std::ostringstream pts;
    for (auto [x, y] : series[i].points)
      if (std::isfinite(y)) pts << px(x) << "," << py(y) << " ";
    svg << "<polyline class=\"series\" fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\""
        << pts.str() << "\"/>";
    if (series[i].points.size() <= 30)
      for (auto [x, y] : series[i].points)
        if (std::isfinite(y)) svg << "<circle cx=\"" << px(x) << "\" cy=\"" << py(y) << "\" r=\"3\" fill=\"" << color << "\"/>";
    svg << "<rect x=\"" << L + 10 << "\" y=\"" << T + 8 + 16 * i << "\" width=\"12\" height=\"3\" fill=\"" << color
        << "\"/><text x=\"" << L + 28 << "\" y=\"" << T + 13 + 16 * i << "\">" << html_escape(series[i].name)
        << "</text>";
  }
  svg << "</svg>";
  return svg.str();
}

namespace {

// What the report draws, gathered from metrics.jsonl in one pass.
struct RunSeries {
  json start, end, confusion;
  std::string confusion_split;
  ChartSeries train_loss{"train loss", {}}, lr{"learning rate", {}}, ips{"images/s (global)", {}};
  std::map<std::string, ChartSeries> eval_loss, eval_acc, eval_iou, shard_rate;
  std::map<std::string, std::pair<double, int>> phase_sums;  // name -> (sum, count)
  std::vector<std::string> phase_order;
  std::vector<std::string> notes;  // restarts, resumes, data errors
};

void add_train(const json& e, RunSeries* r) {
  double step = number(e, "step");
  r->train_loss.points.push_back({step, number(e, "loss")});
  r->lr.points.push_back({step, number(e, "lr")});
  r->ips.points.push_back({step, number(e, "images_per_sec")});
  for (auto& [name, v] : metrics::value(e, "breakdown_ms").items()) {
    if (!r->phase_sums.count(name)) r->phase_order.push_back(name);
    r->phase_sums[name].first += v.get<double>();
    r->phase_sums[name].second += 1;
  }
  const json& shards = metrics::value(e, "data_shards");
  if (shards.size() > 1)
    for (const auto& s : shards) {
      std::string name = "shard " + std::to_string(s.value("shard", 0));
      r->shard_rate[name].name = name;
      r->shard_rate[name].points.push_back({step, s.value("images_per_sec", 0.0)});
    }
}

void add_eval(const json& e, RunSeries* r) {
  std::string split = text(e, "split", "?");
  double epoch = number(e, "epoch");
  r->eval_loss[split].name = split + " loss";
  r->eval_loss[split].points.push_back({epoch, number(e, "loss")});
  r->eval_acc[split].name = split + " accuracy";
  r->eval_acc[split].points.push_back({epoch, number(e, "accuracy")});
  if (!metrics::value(e, "mean_iou").is_null()) {  // segmentation
    r->eval_iou[split].name = split + " mean IoU";
    r->eval_iou[split].points.push_back({epoch, number(e, "mean_iou")});
  }
  if (!metrics::value(e, "confusion").is_null()) {
    r->confusion = metrics::value(e, "confusion");
    r->confusion_split = split + ", epoch " + num(epoch);
  }
}

RunSeries collect(const std::vector<json>& events) {
  RunSeries r;
  for (const auto& e : events) {
    if (metrics::is(e, metrics::kStart) && r.start.is_null()) r.start = e;
    if (metrics::is(e, metrics::kEnd)) r.end = e;
    if (metrics::is(e, metrics::kTrain)) add_train(e, &r);
    if (metrics::is(e, metrics::kEval)) add_eval(e, &r);
    for (const char* note : {metrics::kRestart, metrics::kDataServiceRestart, metrics::kDataServiceCrash,
                             metrics::kDataErrors, metrics::kResume})
      if (metrics::is(e, note)) r.notes.push_back(e.dump());
  }
  return r;
}

// Mean milliseconds per phase, in the order a step runs them (JSON objects
// come back sorted by key).
std::vector<std::pair<std::string, double>> mean_phases(const RunSeries& r) {
  const std::vector<std::string> step_order = {"data_wait", "forward", "backward", "allreduce", "exposed_comm", "optimizer"};
  std::vector<std::string> order = r.phase_order;
  std::stable_sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
    return std::find(step_order.begin(), step_order.end(), a) < std::find(step_order.begin(), step_order.end(), b);
  });
  std::vector<std::pair<std::string, double>> phases;
  for (const auto& name : order) {
    const auto& [sum, count] = r.phase_sums.at(name);
    phases.push_back({name, sum / count});
  }
  return phases;
}

void write_summary(const json& start, const json& end, std::ostringstream& h) {
  h << "<table id=\"summary\">";
  auto row = [&](const std::string& k, const std::string& v) {
    h << "<tr><th>" << html_escape(k) << "</th><td>" << html_escape(v) << "</td></tr>";
  };
  if (!start.is_null()) {
    row("model", text(start, "model", "?") + " (" + num(number(start, "parameters") / 1e6) + "M parameters)");
    row("ranks x batch", num(number(start, "world_size")) + " x " + num(number(start, "batch_size")));
    row("epochs x steps", num(number(start, "epochs")) + " x " + num(number(start, "steps_per_epoch")));
  }
  if (!end.is_null()) {
    row("time", num(number(end, "seconds")) + " s");
    const std::string split = text(end, "best_split");
    const std::string metric = text(end, "best_metric");
    if (split == "none") {
      row("best accuracy", "not evaluated");
    } else {
      const std::string on = split.empty() ? "" : split + " ";
      if (metric != "accuracy" && !metric.empty() && !metrics::value(end, "best_value").is_null())
        row("best " + on + metric, num(number(end, "best_value")));
      row("best " + on + "accuracy", num(number(end, "best_accuracy")));
    }
    row("parameter checksum", text(end, "param_checksum"));
  } else {
    row("status", "no end event: the run is still going, or stopped early");
  }
  h << "</table>\n";
}

void write_charts(const RunSeries& r, std::ostringstream& h) {
  auto values = [](const std::map<std::string, ChartSeries>& m) {
    std::vector<ChartSeries> out;
    for (const auto& [_, s] : m) out.push_back(s);
    return out;
  };
  h << "<div class=\"grid\">\n";
  h << svg_line_chart("Training loss", "global step", {r.train_loss}) << "\n";
  if (!r.eval_loss.empty()) h << svg_line_chart("Evaluation loss", "epoch", values(r.eval_loss)) << "\n";
  h << svg_line_chart("Accuracy", "epoch", values(r.eval_acc)) << "\n";
  if (!r.eval_iou.empty()) h << svg_line_chart("Mean IoU", "epoch", values(r.eval_iou)) << "\n";
  h << svg_line_chart("Learning rate", "global step", {r.lr}) << "\n";
  h << svg_line_chart("Throughput", "global step", {r.ips}) << "\n";
  h << breakdown_chart(mean_phases(r)) << "\n";
  if (!r.shard_rate.empty())
    h << svg_line_chart("Data-service shards: decode images/s", "global step", values(r.shard_rate)) << "\n";
  if (!r.confusion.is_null()) {
    std::vector<std::string> classes;
    if (!r.start.is_null())
      for (const auto& c : metrics::value(r.start, "classes")) classes.push_back(c.get<std::string>());
    h << heat_map("Confusion matrix (" + r.confusion_split + ")", r.confusion, classes) << "\n";
  }
  h << "</div>\n";
}

std::string base64(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[v & 63] : '=';
  }
  return out;
}

// Segmentation: the worker's mask-samples.png, inlined so that the page
// stays one file.
void write_mask_samples(const std::string& run_dir, std::ostringstream& h) {
  const std::string path = join_path(run_dir, "mask-samples.png");
  if (!path_exists(path)) return;
  h << "<h2>Masks from the best checkpoint</h2>\n<p>Validation images, each beside its true mask and the model's "
       "(one colour per class; white: unlabelled).</p>\n<img id=\"mask-samples\" alt=\"validation images with true "
       "and predicted masks\" src=\"data:image/png;base64,"
    << base64(read_file(path)) << "\">\n";
}

}  // namespace

std::string render_report(const std::string& run_dir) {
  const RunSeries r = collect(read_events(join_path(run_dir, "metrics.jsonl")));
  const std::string name = basename_of(run_dir);
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Convoy run " << html_escape(name)
    << "</title><style>body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}"
       "svg text{font-size:12px;font-family:sans-serif}svg text.t{font-size:14px;font-weight:bold}"
       ".grid{display:flex;flex-wrap:wrap;gap:16px}table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}code{font-size:12px}</style></head><body>\n";
  h << "<h1>Convoy run " << html_escape(name) << "</h1>\n";
  write_summary(r.start, r.end, h);
  write_charts(r, h);
  write_mask_samples(run_dir, h);
  if (!r.notes.empty()) {
    h << "<h2>Events</h2><ul id=\"events\">";
    for (const auto& n : r.notes) h << "<li><code>" << html_escape(n) << "</code></li>";
    h << "</ul>\n";
  }
  h << "<p>Files: <code>metrics.jsonl</code>, TensorBoard <code>events.out.tfevents.*</code>"
    << (path_exists(join_path(run_dir, "timeline.json")) ? ", <code>timeline.json</code> (chrome://tracing, Perfetto)" : "")
    << ".</p></body></html>\n";
  return h.str();
}

std::string write_report(const std::string& run_dir, const std::string& out) {
  std::string path = out.empty() ? join_path(run_dir, "report.html") : out;
  write_file_atomic(path, render_report(run_dir));
  return path;
}

int report_main(const std::vector<std::string>& argv) {
  CliArgs args("report",
               "usage: convoy report RUN_DIR [--out FILE]\n"
               "       convoy report --schema\n"
               "Writes a self-contained HTML page with the run's curves (loss, accuracy, learning rate,\n"
               "images/s), the step-time breakdown and its events, from RUN_DIR/metrics.jsonl.\n"
               "Runs write it at the end by themselves; use this for a running or stopped run.\n"
               "--schema prints metrics.jsonl's events and fields as JSON.\n"
               "example: convoy report runs/fashion_mnist-20261121-101500\n");
  args.option("--out").flag("--schema");
  if (!args.parse(argv)) return 0;
  if (args.has("--schema")) {
    std::printf("%s\n", metrics::schema_json().c_str());
    return 0;
  }
  if (args.positional().size() != 1) CONVOY_USER_ERROR("expected RUN_DIR (see convoy report --help)");
  std::printf("%s\n", write_report(args.positional()[0], args.get("--out")).c_str());
  return 0;
}

}  // namespace convoy
