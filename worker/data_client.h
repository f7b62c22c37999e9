// The worker's side of the node's data service(s): handshake over the control
// channel, the mapped rings, and batches as tensors that point straight into
// shared memory (from_blob, no copy); a slot goes back to the service when
// the last tensor over it is freed.
// With K sharded services (one ring each), shard k fills only its positions
// of each batch; the other shards' positions are copied into shard 0's slot,
// in shard order, before the tensors are made. A shard whose process dies is
// waited for (the launcher restarts it) and re-asked, from the step in hand,
// for everything still pending.
#pragma once

#include <torch/torch.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
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
  // Every field the service described (common/batch_layout.h), as tensors
  // over the slot in shared memory: (N, sample shape...).
  std::map<std::string, torch::Tensor> fields;
  torch::Tensor pixels;  // fields["image"]: uint8 (N, C, H, W)
  torch::Tensor labels;  // fields["label"]: int64 (N); -1 = invalid
  SlotHeader header;
  std::vector<std::string> corrupt_files;  // skipped in this batch (when header.errors > 0)
};

// A shard that came back after its process died.
struct DataRestart {
  int shard = 0;
  std::string split;
  uint32_t epoch = 0;
  uint64_t step = 0;  // within the epoch: the batch the worker was waiting for
  std::string reason;
  std::string crash;  // the crash signal ("SIGSEGV") when the last process crashed, else ""
};

struct DataShardStats {
  int shard = 0;
  double images_per_sec = 0;  // while filling (decode capacity), since the last call
  uint64_t queued = 0;        // batches ready in this rank's ring now
};

class DataClient {
 public:
  // Connects to each shard's socket (in shard order) and maps this rank's
  // rings. `alive` runs during every wait (e.g. to notice a dead child
  // service) and may throw. With `await_restarts`, a shard whose process
  // goes away is waited for up to `timeout` instead of failing at once.
  DataClient(const std::vector<std::string>& sockets, int rank, int world_size, int local_rank,
             std::chrono::milliseconds timeout, std::function<void()> alive = {}, bool await_restarts = false);
  ~DataClient();

  const DataInfo& info() const { return info_; }
  // Queues num_steps batches of (split, epoch) from start_step.
  void request(const std::string& split, uint32_t epoch, uint64_t start_step, uint64_t num_steps);
  // The next batch; checks it is the one expected (split, epoch, step).
  Batch next(const std::string& split, uint32_t epoch, uint64_t step);
  // Shards that were reconnected since the last call.
  std::vector<DataRestart> take_restarts();
  std::vector<DataShardStats> shard_stats();
  // Pins every ring with `pin` (DeviceRuntime::pin_host), now and after a
  // shard restart maps a new one, so batches copy to a GPU asynchronously.
  // A replaced ring stays pinned (and mapped) until the client goes.
  using Pinner = std::function<std::shared_ptr<void>(void*, size_t)>;
  void pin_rings(Pinner pin);

 private:
  struct Part {
    std::string socket;
    std::unique_ptr<ControlChannel> channel;
    std::shared_ptr<ShmRing> ring;
    std::shared_ptr<void> pin;  // before `ring` goes: unpinned first
    uint64_t filled = 0, fill_us = 0;  // since the last shard_stats()
  };
  struct Request {
    std::string split;
    uint32_t epoch;
    uint64_t start, num;
  };
  // Connects and shakes hands within `timeout` in all; returns the restart
  // reason, if any.
  std::string connect(Part& part, int shard, std::chrono::milliseconds timeout);
  void send_stream(Part& part, const Request& r);
  ShmRing::ReadSlot acquire(int shard, const std::string& split, uint32_t epoch, uint64_t step);
  void reconnect(int shard, const std::string& split, uint32_t epoch, uint64_t step);
  std::shared_ptr<void> pin(const std::shared_ptr<ShmRing>& ring);

  int rank_, world_size_, local_rank_;
  int numa_node_ = -1;
  std::chrono::milliseconds timeout_;
  std::function<void()> alive_;
  bool await_restarts_;
  std::vector<Part> parts_;
  Pinner pinner_;
  std::vector<std::shared_ptr<void>> retired_pins_;  // replaced rings' (copies may still read them)
  std::deque<Request> pending_;  // requested and not yet fully taken, in order
  std::vector<DataRestart> restarts_;
  std::map<int, std::optional<DataRestart>> last_crash_;  // per shard
  DataInfo info_;
};

}  // namespace convoy
