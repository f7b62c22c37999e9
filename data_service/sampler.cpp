// Epoch order and rank sharding (see sampler.h).
#include "data_service/sampler.h"

#include <numeric>

#include "common/error.h"
#include "common/sample_rng.h"

namespace convoy {

uint64_t steps_per_epoch(const ShardSpec& spec) {
  uint64_t global = static_cast<uint64_t>(spec.world_size) * spec.batch_size;
  CONVOY_CHECK(global > 0, "world size and batch size must be positive");
  if (spec.shuffle && spec.drop_last) return spec.num_samples / global;
  return (spec.num_samples + global - 1) / global;
}

std::vector<uint64_t> seeded_permutation(uint64_t n, uint64_t seed) {
  std::vector<uint64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  SampleRng rng(seed);
  for (uint64_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[rng.below(i)]);
  return perm;
}

EpochOrder::EpochOrder(const ShardSpec& spec, uint64_t seed, uint32_t epoch)
    : spec_(spec), epoch_(epoch) {
  if (spec.shuffle) perm_ = seeded_permutation(spec.num_samples, mix_seed(seed, kSaltEpochOrder, epoch));
}

int64_t EpochOrder::sample(uint64_t step, int rank, int j) const {
  CONVOY_CHECK(rank >= 0 && rank < spec_.world_size && j >= 0 && j < spec_.batch_size,
               "rank " << rank << " / position " << j << " out of range");
  uint64_t pos = (step * spec_.world_size + rank) * spec_.batch_size + j;
  if (spec_.num_samples == 0) return -1;
  if (!spec_.shuffle) return pos < spec_.num_samples ? static_cast<int64_t>(pos) : -1;
  return static_cast<int64_t>(perm_[pos % spec_.num_samples]);
}

}  // namespace convoy
