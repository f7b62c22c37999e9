// Progress (see progress.h).
#include "worker/progress.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace convoy {
namespace {

// 75 -> "1:15"; 3725 -> "1:02:05".
std::string clock_text(double seconds) {
  const int s = static_cast<int>(std::max(0.0, seconds));
  if (s >= 3600) return fmt::format("{}:{:02d}:{:02d}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02d}", s / 60, s % 60);
}

std::string details(int64_t done, int64_t total, double elapsed_s, double ips, double loss, double lr, double run_eta) {
  double eta = done > 0 ? elapsed_s / done * (total - done) : 0;
  std::string s = fmt::format("{}/{}  {:.0f} img/s", done, total, ips);
  if (!std::isnan(loss)) s += fmt::format("  loss {:.4f}", loss);
  if (!std::isnan(lr)) s += fmt::format("  lr {:.4g}", lr);
  s += "  ETA " + clock_text(eta);
  if (!std::isnan(run_eta)) s += ", run " + clock_text(run_eta);
  return s;
}

}  // namespace

ProgressMode progress_mode(int rank) {
  if (rank != 0) return ProgressMode::kOff;
  const char* env = std::getenv("CONVOY_PROGRESS");
  bool tty = env ? std::strcmp(env, "1") == 0 : ::isatty(1);
  return tty ? ProgressMode::kBar : ProgressMode::kLines;
}

ProgressLine::ProgressLine(ProgressMode mode) : mode_(mode), last_(std::chrono::steady_clock::now()) {
  const char* env = std::getenv("CONVOY_PROGRESS_INTERVAL");
  interval_s_ = env ? std::atof(env) : 30.0;
}

void ProgressLine::update(const std::string& label, int64_t done, int64_t total, double elapsed_s, double ips,
                          double loss, double lr, double run_eta_s) {
  if (mode_ == ProgressMode::kOff) return;
  auto now = std::chrono::steady_clock::now();
  if (mode_ == ProgressMode::kLines) {
    // The epoch's summary line follows the last step; no line for it here.
    if (done >= total || std::chrono::duration<double>(now - last_).count() < interval_s_) return;
    last_ = now;
    spdlog::info("{}: {} ({:.0f}%)", label, details(done, total, elapsed_s, ips, loss, lr, run_eta_s),
                 100.0 * done / std::max<int64_t>(total, 1));
    return;
  }
  if (done < total && now - last_ < std::chrono::milliseconds(250)) return;
  last_ = now;
  const int width = 24;
  int filled = total > 0 ? static_cast<int>(width * done / total) : 0;
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < width) bar += '>' + std::string(static_cast<size_t>(width - filled - 1), ' ');
  std::printf("%s [%s] %s\033[K\r", label.c_str(), bar.c_str(), details(done, total, elapsed_s, ips, loss, lr, run_eta_s).c_str());
  std::fflush(stdout);
  shown_ = true;
}

void ProgressLine::clear() {
  if (mode_ != ProgressMode::kBar || !shown_) return;
  std::printf("\033[K\r");
  std::fflush(stdout);
  shown_ = false;
}

}  // namespace convoy
