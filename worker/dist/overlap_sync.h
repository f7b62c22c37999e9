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
// A comm hook of ours launches each bucket's all-reduce and marks its launch
// and completion on the step's clock (CUDA events in stream order on a GPU),
// so the step breakdown's exposed communication and one timeline span per
// bucket are known.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <vector>

#include "worker/dist/c10d_compat.h"
#include "worker/dist/device.h"

namespace c10d {
class Reducer;
}

namespace convoy {

class ShmAllreduce;

// Marks on the step's clock (StepClock::us turns them into times).
struct BucketTimes {
  size_t bucket = 0;
  int launch_mark = 0, done_mark = 0;
  int64_t bytes = 0;
};

class OverlapSync {
 public:
  // `clock` (the trainer's) must outlive this object. `wire`: the dtype the
  // buckets cross the network in (float32, or half/bfloat16 to compress).
  // `local`: when set, the buckets are summed through shared memory instead
  // of `group` (which the Reducer still uses for its own agreements).
  OverlapSync(const std::vector<torch::Tensor>& params, c10::intrusive_ptr<compat::Backend> group, int world_size,
              size_t first_bucket_bytes, size_t bucket_bytes, StepClock* clock,
              c10::ScalarType wire = c10::kFloat, std::shared_ptr<ShmAllreduce> local = nullptr);
  ~OverlapSync();

  // Before backward: this step's gradients are to be reduced (skip it for
  // the micro-batches of an accumulation, DDP's no_sync).
  void expect_backward();
  // After backward returned: each bucket's launch/completion this step.
  std::vector<BucketTimes> take_bucket_times();

  struct HookState;  // shared with the comm hook (overlap_sync.cpp)

 private:
  std::shared_ptr<HookState> state_;
  std::unique_ptr<c10d::Reducer> reducer_;
  int64_t backwards_ = 0;
};

}  // namespace convoy
