// Counter-based random numbers for sampling, augmentation and dropout. Every draw for
// sample i in epoch e comes from a generator seeded by (seed, epoch, i) alone
// (docs/ARCHITECTURE.md, invariant 1), and the arithmetic is our own (not <random>'s
// distributions, which differ between standard libraries), so batches are
// bit-identical across thread counts, runs and machines.
#pragma once

#include <cmath>
#include <cstdint>

namespace convoy {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Hashes several words into one seed.
inline uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  return splitmix64(splitmix64(splitmix64(splitmix64(a) ^ b) ^ c) ^ d);
}

class SampleRng {
 public:
  explicit SampleRng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return splitmix64(state_);
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), unbiased (rejection).
  uint64_t below(uint64_t n) {
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next(); while (x >= limit);
    return x % n;
  }

 private:
  uint64_t state_;
};

// Salts that keep the streams of different uses apart.
enum RngSalt : uint64_t { kSaltEpochOrder = 1, kSaltAugment = 2, kSaltSplit = 3, kSaltDropout = 4 };

}  // namespace convoy
