// Which sample goes where: the epoch order and each rank's share of it, as a
// pure function of (seed, epoch, dataset size, world size, batch size)
// (docs/ARCHITECTURE.md, invariants 1 and 2).
//
// Layout: step s of an epoch consumes global positions [s*W*B, (s+1)*W*B);
// rank r takes the r-th block of B of them. So 2 ranks x batch B see, step by
// step, exactly the samples 1 rank x batch 2B sees.
// Training (shuffle): positions index a seeded permutation; past the end the
//   order wraps around (pad) or the last partial step is dropped (drop_last),
//   so every rank runs the same number of steps.
// Evaluation (no shuffle): positions are sample indices; past the end the
//   sample is invalid (-1) so metrics count every sample exactly once.
#pragma once

#include <cstdint>
#include <vector>

namespace convoy {

struct ShardSpec {
  uint64_t num_samples = 0;
  int world_size = 1;
  int batch_size = 1;
  bool shuffle = true;     // training order; false: evaluation order
  bool drop_last = false;  // training only
};

uint64_t steps_per_epoch(const ShardSpec& spec);

class EpochOrder {
 public:
  EpochOrder(const ShardSpec& spec, uint64_t seed, uint32_t epoch);
  // The sample at position j of rank `rank`'s batch at `step`, or -1 (invalid).
  int64_t sample(uint64_t step, int rank, int j) const;
  const ShardSpec& spec() const { return spec_; }
  uint32_t epoch() const { return epoch_; }

 private:
  ShardSpec spec_;
  uint32_t epoch_;
  std::vector<uint64_t> perm_;  // empty when not shuffling
};

// Which of `shards` data-service processes produces a batch position: the
// sample's index modulo the shard count (padding positions by position).
// A pure function of the sample index, so the shards are disjoint, the batch
// is the same for any shard count, and each service always decodes the same
// files (its page cache and NUMA node stay warm for them).
inline int sample_shard(int64_t sample, int position, int shards) {
  if (shards <= 1) return 0;
  return static_cast<int>(sample >= 0 ? static_cast<uint64_t>(sample) % shards : static_cast<uint64_t>(position) % shards);
}

// A seeded permutation of 0..n-1 (Fisher-Yates over SampleRng).
std::vector<uint64_t> seeded_permutation(uint64_t n, uint64_t seed);

}  // namespace convoy
