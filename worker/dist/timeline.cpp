// Step timeline (see timeline.h).
#include "worker/dist/timeline.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/files.h"
#include "common/metrics.h"

namespace convoy {

Timeline::Timeline(int rank, int64_t first, int64_t count) : rank_(rank), first_(first), count_(count) {}

int64_t Timeline::now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Timeline::span(const std::string& name, const std::string& category, int64_t start_us, int64_t end_us,
                    const std::string& args_json) {
  if (step_ < 0) return;
  // Trace-event "complete" events: ph X, ts and dur in microseconds.
  std::string args = "{\"step\":" + std::to_string(step_) + (args_json.empty() ? "" : "," + args_json) + "}";
  std::string e = "{\"name\":\"" + json_escape(name) + "\",\"cat\":\"" + json_escape(category) +
                  "\",\"ph\":\"X\",\"pid\":" + std::to_string(rank_) + ",\"tid\":0,\"ts\":" + std::to_string(start_us) +
                  ",\"dur\":" + std::to_string(std::max<int64_t>(0, end_us - start_us)) + ",\"args\":" + args + "}";
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back(std::move(e));
}

void Timeline::bucket_span(size_t bucket, int64_t start_us, int64_t end_us, int64_t bytes) {
  if (step_ < 0) return;
  span("all-reduce bucket " + std::to_string(bucket), "comm", start_us, end_us,
       "\"bucket\":" + std::to_string(bucket) + ",\"bytes\":" + std::to_string(bytes));
}

bool Timeline::finish_if_done(int64_t next_step, const std::string& run_dir) {
  if (written_ || count_ == 0 || next_step < first_ + count_) return written_;
  std::string text = "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":" + std::to_string(rank_) +
                     ",\"args\":{\"name\":\"rank " + std::to_string(rank_) + "\"}}";
  for (const auto& e : events_) text += ",\n" + e;
  write_file_atomic(join_path(run_dir, "timeline-rank" + std::to_string(rank_) + ".json"), text);
  events_.clear();
  written_ = true;
  return true;
}

std::string merge_timelines(const std::string& run_dir, int world_size) {
  std::string body;
  for (int r = 0; r < world_size; ++r) {
    std::string part = join_path(run_dir, "timeline-rank" + std::to_string(r) + ".json");
    if (!path_exists(part)) return "";
    body += (body.empty() ? "" : ",\n") + read_file(part);
  }
  std::string out = join_path(run_dir, "timeline.json");
  write_file_atomic(out, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n" + body + "\n]}\n");
  for (int r = 0; r < world_size; ++r) std::remove(join_path(run_dir, "timeline-rank" + std::to_string(r) + ".json").c_str());
  return out;
}

}  // namespace convoy
