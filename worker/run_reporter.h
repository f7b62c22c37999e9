// What a training run reports: metrics.jsonl (common/metrics_schema.h),
// TensorBoard scalars, the epoch and summary lines of the log, the eval
// files of `convoy eval` and report.html at the end.
//
// Only rank 0 writes; on other ranks every call does nothing. No call here
// is a collective: the loop reduces what needs reducing across ranks
// (Trainer::collective_*) before it hands the values in, so whether a rank
// reports can never change which collectives it calls.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/metrics.h"
#include "common/tensorboard.h"
#include "worker/data_client.h"
#include "worker/eval_metrics.h"

namespace convoy {

struct Config;
class BestTracker;

// A train line: the optimizer steps since the previous one.
struct TrainWindow {
  int epoch = 0;            // 0-based
  int64_t step = 0;         // the epoch's batch the window ends at (0-based)
  int64_t global_step = 0;  // after the window
  double loss = 0;          // mean over the window and every rank (reduced)
  double lr = 0, images_per_sec = 0;
  // rank 0's mean milliseconds per optimizer step, by phase
  double data_wait_ms = 0, forward_ms = 0, backward_ms = 0, exposed_comm_ms = 0, optimizer_ms = 0;
  double allreduce_total_ms = 0;
  std::vector<DataShardStats> shards;
  bool loss_scaling = false;
  double loss_scale = 0;
  int64_t skipped_steps = 0;
};

// An epoch's end, with every value already reduced across ranks.
struct EpochReport {
  int epoch = 0;  // 0-based
  int64_t global_step = 0;
  double train_loss = 0, images_per_sec = 0, seconds = 0;
  std::vector<std::pair<std::string, ClassificationReport>> evals;  // split, report
  int64_t data_errors = 0;
  std::vector<std::string> error_examples;  // rank 0's, up to 5
};

class RunReporter {
 public:
  RunReporter(const Config& cfg, int rank, const std::string& run_dir);

  void start(int world_size, int64_t steps_per_epoch, int num_classes, int64_t parameters, int64_t global_step,
             const std::vector<std::string>& classes);
  void resume(const std::string& checkpoint, int64_t epoch, int64_t step, int64_t global_step);
  void data_service_restarts(const std::vector<DataRestart>& restarts, int64_t global_step);
  void train_window(const TrainWindow& w);
  void epoch_end(const EpochReport& e);
  void early_stop(int epoch, const BestTracker& best);
  // The run's last line and report.html; `selection_split`: where the best
  // accuracy was measured ("none" without evaluation).
  void end(double seconds, const BestTracker& best, const std::string& selection_split, int64_t global_step,
           const std::string& param_checksum);
  // `convoy eval`: the eval event and eval-<split>.json/.txt, confusion-<split>.svg.
  void checkpoint_eval(const std::string& checkpoint, const std::string& split, int64_t global_step,
                       const ClassificationReport& r, double seconds);

 private:
  JsonLine eval_event(int epoch, const std::string& split, const ClassificationReport& r) const;

  const Config& cfg_;
  bool writes_;
  std::string run_dir_;
  MetricsLog metrics_;
  TensorBoardWriter tb_;
};

}  // namespace convoy
