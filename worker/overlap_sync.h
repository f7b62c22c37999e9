// Gradient all-reduce overlapped with backward, through c10d's own Reducer
// (the engine of PyTorch's DistributedDataParallel), driven from C++:
// gradients are grouped into buckets (the first ~1 MB, then ~25 MB, in
// reverse parameter order); an autograd hook marks each gradient ready and
// a bucket's all-reduce starts as soon as its last gradient is, while
// backward goes on; the gradients live as views into the buckets (no copy).
// Backward returns once every bucket is reduced and averaged.
// Build it after any checkpoint was loaded into the parameters (LibTorch's
// load replaces their storage with set_): built before, a resumed run
// diverged from the uninterrupted one (Trainer builds it at the first step).
// A comm hook of ours launches each bucket's all-reduce, so its launch and
// completion times are known: the step breakdown's exposed communication,
// and one timeline span per bucket.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <vector>

#include "worker/timeline.h"
#include "worker/torch_compat.h"

namespace c10d {
class Reducer;
}

namespace convoy {

struct BucketTimes {
  size_t bucket = 0;
  int64_t launch_us = 0, done_us = 0;
};

class OverlapSync {
 public:
  OverlapSync(const std::vector<torch::Tensor>& params, c10::intrusive_ptr<compat::Backend> group, int world_size,
              size_t first_bucket_bytes, size_t bucket_bytes);
  ~OverlapSync();

  // Before backward: this step's gradients are to be reduced (skip it for
  // the micro-batches of an accumulation, DDP's no_sync).
  void expect_backward(Timeline* timeline);
  // After backward returned: each bucket's launch/completion this step.
  std::vector<BucketTimes> take_bucket_times();

  struct HookState;  // shared with the comm hook (overlap_sync.cpp)

 private:
  std::shared_ptr<HookState> state_;
  std::unique_ptr<c10d::Reducer> reducer_;
  int64_t backwards_ = 0;
};

}  // namespace convoy
