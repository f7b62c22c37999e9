// Rank 0's live progress line (step/total, images/s, loss, lr, ETA), redrawn
// in place when stdout is a terminal (or the launcher's is: CONVOY_PROGRESS=1).
// Each update ends with '\r' (not starts), so a reader of the pipe sees a
// complete in-place segment at once; the launcher redraws it under its prefix.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace convoy {

class ProgressLine {
 public:
  explicit ProgressLine(bool enabled);
  void update(const std::string& label, int64_t done, int64_t total, double elapsed_s, double images_per_sec,
              double loss, double lr);
  void clear();  // before a regular log line

 private:
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

bool progress_wanted(int rank);

}  // namespace convoy
