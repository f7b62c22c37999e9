// The worker's side of the data service: handshake over the control channel,
// the mapped ring, and batches as tensors that point straight into shared
// memory (from_blob, no copy); a slot goes back to the service when the last
// tensor over it is freed.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "common/batch_layout.h"
#include "common/control_channel.h"
#include "common/shm_ring.h"

namespace convoy {

struct SplitMeta {
  std::string name;
  uint64_t num_samples = 0;
  uint64_t steps_per_epoch = 0;
  uint32_t index = 0;
};

struct DataInfo {
  BatchLayout layout;
  std::vector<std::string> class_names;
  std::vector<SplitMeta> splits;
  const SplitMeta* find(const std::string& name) const;
};

struct Batch {
  torch::Tensor pixels;  // uint8 (N, C, H, W), in shared memory
  torch::Tensor labels;  // int64 (N), in shared memory; -1 = invalid
  SlotHeader header;
  std::vector<std::string> corrupt_files;  // skipped in this batch (when header.errors > 0)
};

class DataClient {
 public:
  // Connects to the service's socket and maps this rank's ring. `alive` runs
  // during every wait (e.g. to notice a dead child service) and may throw.
  DataClient(const std::string& socket, int rank, int world_size, int local_rank,
             std::chrono::milliseconds timeout, std::function<void()> alive = {});
  ~DataClient();

  const DataInfo& info() const { return info_; }
  // Queues num_steps batches of (split, epoch) from start_step.
  void request(const std::string& split, uint32_t epoch, uint64_t start_step, uint64_t num_steps);
  // The next batch; checks it is the one expected (split, epoch, step).
  Batch next(const std::string& split, uint32_t epoch, uint64_t step);

 private:
  int rank_;
  std::chrono::milliseconds timeout_;
  std::function<void()> alive_;
  std::unique_ptr<ControlChannel> channel_;
  std::shared_ptr<ShmRing> ring_;
  DataInfo info_;
};

}  // namespace convoy
