// Progress line (see progress.h).
#include "worker/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace convoy {

bool progress_wanted(int rank) {
  if (rank != 0) return false;
  const char* env = std::getenv("CONVOY_PROGRESS");
  if (env) return std::strcmp(env, "1") == 0;
  return ::isatty(1);
}

ProgressLine::ProgressLine(bool enabled) : enabled_(enabled) {}

void ProgressLine::update(const std::string& label, int64_t done, int64_t total, double elapsed_s, double ips,
                          double loss, double lr) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (done < total && now - last_ < std::chrono::milliseconds(250)) return;
  last_ = now;
  const int width = 24;
  int filled = total > 0 ? static_cast<int>(width * done / total) : 0;
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < width) bar += '>' + std::string(static_cast<size_t>(width - filled - 1), ' ');
  double eta = done > 0 ? elapsed_s / done * (total - done) : 0;
  std::printf("%s [%s] %lld/%lld  %.0f img/s  loss %.4f  lr %.4g  ETA %d:%02d\033[K\r", label.c_str(), bar.c_str(),
              static_cast<long long>(done), static_cast<long long>(total), ips, loss, lr,
              static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
  std::fflush(stdout);
  shown_ = true;
}

void ProgressLine::clear() {
  if (!enabled_ || !shown_) return;
  std::printf("\033[K\r");
  std::fflush(stdout);
  shown_ = false;
}

}  // namespace convoy
