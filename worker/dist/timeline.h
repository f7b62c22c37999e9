// The per-rank step timeline (`--timeline STEPS`): spans of data wait,
// forward, backward, each bucket's all-reduce and the optimizer for a window
// of global steps, in Chrome's trace-event format (chrome://tracing,
// Perfetto). Each rank writes timeline-rank<R>.json; rank 0 merges them into
// timeline.json, one process row per rank. Times are wall-clock microseconds,
// so ranks on one node (one clock) line up exactly, and across nodes as well
// as their clocks agree.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace convoy {

class Timeline {
 public:
  // Records global steps [first, first + count); count 0: records nothing.
  Timeline(int rank, int64_t first, int64_t count);

  bool recording(int64_t step) const { return count_ > 0 && step >= first_ && step < first_ + count_; }
  // The step spans that follow belong to (-1: outside the window).
  void set_step(int64_t step) { step_ = recording(step) ? step : -1; }
  bool active() const { return step_ >= 0; }
  static int64_t now_us();
  // A complete span; no-op outside the window. Thread-safe.
  void span(const std::string& name, const std::string& category, int64_t start_us, int64_t end_us,
            const std::string& args_json = "");
  // One gradient bucket's all-reduce ("all-reduce bucket B", its bytes on
  // the wire), from either gradient-sync path; no-op outside the window.
  void bucket_span(size_t bucket, int64_t start_us, int64_t end_us, int64_t bytes);
  // True once the window is over and this rank's file was written.
  bool finish_if_done(int64_t next_step, const std::string& run_dir);
  bool written() const { return written_; }

 private:
  int rank_;
  int64_t first_, count_, step_ = -1;
  bool written_ = false;
  std::mutex mu_;
  std::vector<std::string> events_;
};

// RAII span on a Timeline (null: nothing).
class TimelineSpan {
 public:
  TimelineSpan(Timeline* t, std::string name, std::string category)
      : t_(t && t->active() ? t : nullptr), name_(std::move(name)), category_(std::move(category)),
        start_(t_ ? Timeline::now_us() : 0) {}
  ~TimelineSpan() {
    if (t_) t_->span(name_, category_, start_, Timeline::now_us());
  }

 private:
  Timeline* t_;
  std::string name_, category_;
  int64_t start_;
};

// Rank 0: merges run_dir/timeline-rank*.json (world_size of them) into
// run_dir/timeline.json and removes the parts. Returns the merged path, or ""
// when some rank's part is missing (its window never completed).
std::string merge_timelines(const std::string& run_dir, int world_size);

}  // namespace convoy
