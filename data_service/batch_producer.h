// Fills batches: for (split, epoch, step, rank, world) picks the samples
// (sampler.h), decodes and transforms them on the decode threads, and writes
// each field of the batch (for classification: label, image) where the
// layout it describes puts it (common/batch_layout.h).
// Invariant: the bytes written depend only on the config and those five
// numbers, never on the number of threads or their timing.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "common/batch_layout.h"
#include "common/config.h"
#include "data_service/dataset.h"
#include "data_service/image_decode.h"
#include "data_service/sampler.h"
#include "data_service/thread_pool.h"

namespace convoy {

class BatchProducer {
 public:
  BatchProducer(const Config& cfg, DatasetSplits data, int decode_threads);

  const DatasetSplits& data() const { return data_; }
  BatchLayout layout() const { return layout_; }
  int split_index(const std::string& name) const;  // -1 when absent
  ShardSpec shard_spec(int split, int world_size) const;

  // Fills `slot` (a SlotHeader, then the payload) with step `step` of
  // `split`'s epoch for `rank`: the error text, owner mask, labels and pixels
  // of the positions of shard `shard` of `shards` (sample_shard in sampler.h;
  // other positions are left as they are), and every header field but
  // `sequence` (the ring's): step, epoch, split, count, invalid, errors,
  // filled, fill_us, shard. It is the slot's only writer. Returns the
  // header. In strict mode a corrupt image throws UserError naming the file.
  const SlotHeader& fill(int split, uint32_t epoch, uint64_t step, int rank, int world_size, uint8_t* slot,
                         int shard = 0, int shards = 1);

  uint64_t total_errors() const { return total_errors_.load(); }
  int decode_threads() const { return pool_.size(); }

 private:
  std::shared_ptr<const EpochOrder> order(int split, uint32_t epoch, int world_size);

  Config cfg_;
  DecodeOptions decode_opts_;
  DatasetSplits data_;
  BatchLayout layout_;
  ThreadPool pool_;
  struct CachedOrder {
    std::shared_ptr<const EpochOrder> order;
    uint64_t last_use = 0;
  };
  std::mutex orders_mu_;
  std::map<std::tuple<int, uint32_t, int>, CachedOrder> orders_;  // (split, epoch, world)
  uint64_t use_clock_ = 0;
  std::atomic<uint64_t> total_errors_{0};
  // Each corrupt file is logged once per process, however often it is drawn.
  bool first_report(const std::string& what);
  std::mutex reported_mu_;
  std::set<std::string> reported_;
};

}  // namespace convoy
