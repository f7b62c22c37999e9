// One rank's training loop: epochs of training steps fed by the data
// service, evaluation, metrics, periodic and preemption checkpoints, and
// exact resume (see worker/README.md).
#pragma once

#include <memory>
#include <string>

namespace convoy {

struct Config;
class Distributed;
class DataClient;
class DeviceRuntime;

// SIGTERM/SIGUSR1 in a worker: every rank finishes its current step, rank 0
// checkpoints, and the loop returns.
void install_stop_handlers();

class TrainingLoop {
 public:
  // Builds the model and optimizer on the runtime's device; resumes from
  // `resume_path` when given. On a GPU, pins the data rings and uploads
  // each batch while the step before it computes.
  TrainingLoop(const Config& cfg, Distributed& dist, DataClient& data, const std::string& run_dir,
               const std::string& resume_path, std::shared_ptr<DeviceRuntime> runtime);
  ~TrainingLoop();
  // Returns true when a stop request ended the run early (after a checkpoint).
  bool run();
  // `convoy eval`: the checkpoint's weights on one split, every rank taking
  // its share; rank 0 writes eval-<split>.json/.txt and confusion-<split>.svg
  // into the run directory and an eval event into metrics.jsonl.
  void evaluate_checkpoint(const std::string& checkpoint, const std::string& split);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace convoy
