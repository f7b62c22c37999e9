// Sampler invariants (docs/ARCHITECTURE.md, invariants 1 and 2): coverage, equal steps, purity, and
// the layout that makes 2 ranks x B equal 1 rank x 2B.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "data_service/sampler.h"

namespace convoy {
namespace {

std::map<int64_t, int> counts(const ShardSpec& spec, uint64_t seed, uint32_t epoch) {
  EpochOrder order(spec, seed, epoch);
  std::map<int64_t, int> seen;
  for (uint64_t s = 0; s < steps_per_epoch(spec); ++s)
    for (int r = 0; r < spec.world_size; ++r)
      for (int j = 0; j < spec.batch_size; ++j) ++seen[order.sample(s, r, j)];
  return seen;
}

TEST(Sampler, EverySampleOncePerEpochWhenDivisible) {
  ShardSpec spec{120, 3, 8, true, false};
  auto seen = counts(spec, 7, 0);
  EXPECT_EQ(seen.size(), 120u);
  for (auto& [idx, n] : seen) EXPECT_EQ(n, 1) << idx;
}

TEST(Sampler, UnevenSizesPadOrDropWithEqualSteps) {
  for (uint64_t n : {1u, 7u, 100u, 101u, 1000u}) {
    for (int world : {1, 2, 3, 4}) {
      ShardSpec pad{n, world, 5, true, false};
      uint64_t global = static_cast<uint64_t>(world) * 5;
      EXPECT_EQ(steps_per_epoch(pad), (n + global - 1) / global);
      auto seen = counts(pad, 1, 2);
      EXPECT_EQ(seen.size(), n) << "pad: every sample at least once";
      // Padding wraps around the order: counts differ by at most one, and
      // fewer than one global batch of samples is repeated.
      int extra = 0, lo = 1 << 30, hi = 0;
      for (auto& [idx, c] : seen) {
        EXPECT_GE(idx, 0);
        lo = std::min(lo, c);
        hi = std::max(hi, c);
        extra += c - 1;
      }
      EXPECT_LE(hi - lo, 1);
      EXPECT_LT(static_cast<uint64_t>(extra), global);
      ShardSpec drop{n, world, 5, true, true};
      EXPECT_EQ(steps_per_epoch(drop), n / global);
      auto kept = counts(drop, 1, 2);
      for (auto& [idx, c] : kept) EXPECT_EQ(c, 1) << "drop: no sample twice";
      EXPECT_LT(n - steps_per_epoch(drop) * global, global);
    }
  }
}

TEST(Sampler, EvalOrderCountsEverySampleExactlyOnce) {
  ShardSpec spec{103, 4, 8, false, false};
  auto seen = counts(spec, 0, 0);
  EXPECT_EQ(seen.at(-1), static_cast<int>(steps_per_epoch(spec) * 32 - 103));
  seen.erase(-1);
  EXPECT_EQ(seen.size(), 103u);
  for (auto& [idx, c] : seen) EXPECT_EQ(c, 1);
}

TEST(Sampler, PureFunctionOfSeedAndEpoch) {
  ShardSpec spec{500, 2, 10, true, false};
  EpochOrder a(spec, 5, 3), b(spec, 5, 3), c(spec, 5, 4), d(spec, 6, 3);
  bool differs_epoch = false, differs_seed = false;
  for (uint64_t s = 0; s < steps_per_epoch(spec); ++s)
    for (int j = 0; j < 10; ++j) {
      EXPECT_EQ(a.sample(s, 1, j), b.sample(s, 1, j));
      differs_epoch |= a.sample(s, 1, j) != c.sample(s, 1, j);
      differs_seed |= a.sample(s, 1, j) != d.sample(s, 1, j);
    }
  EXPECT_TRUE(differs_epoch);
  EXPECT_TRUE(differs_seed);
}

TEST(Sampler, TwoRanksOfBatchBSeeWhatOneRankOfTwoBSees) {
  ShardSpec one{200, 1, 16, true, false}, two{200, 2, 8, true, false};
  EpochOrder o1(one, 9, 1), o2(two, 9, 1);
  ASSERT_EQ(steps_per_epoch(one), steps_per_epoch(two));
  for (uint64_t s = 0; s < steps_per_epoch(one); ++s)
    for (int j = 0; j < 16; ++j) EXPECT_EQ(o1.sample(s, 0, j), o2.sample(s, j / 8, j % 8));
}

}  // namespace
}  // namespace convoy
