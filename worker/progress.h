// Rank 0's progress: a live bar (step/total, images/s, loss, lr, the epoch's
// ETA and the run's) redrawn
// in place when stdout is a terminal (or the launcher's is: CONVOY_PROGRESS=1),
// and plain lines every CONVOY_PROGRESS_INTERVAL seconds (default 30) when it
// is not, so CI and Slurm logs stay clean. Other ranks show nothing.
// A bar update ends with '\r' (not starts), so a reader of the pipe sees a
// complete in-place segment at once; the launcher redraws it under its prefix.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace convoy {

enum class ProgressMode { kOff, kBar, kLines };

ProgressMode progress_mode(int rank);

class ProgressLine {
 public:
  explicit ProgressLine(ProgressMode mode);
  // loss/lr/run_eta_s: NaN leaves them out (evaluation). run_eta_s: the
  // seconds the whole run still needs, shown beside the epoch's ETA.
  void update(const std::string& label, int64_t done, int64_t total, double elapsed_s, double images_per_sec,
              double loss, double lr, double run_eta_s);
  void clear();  // before a regular log line

 private:
  ProgressMode mode_;
  double interval_s_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace convoy
