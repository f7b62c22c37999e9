// Overlapped gradient all-reduce (see overlap_sync.h).
#include "worker/dist/overlap_sync.h"

#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#include "common/error.h"
#include "worker/dist/shm_allreduce.h"

namespace convoy {

// What the completion callbacks write. It holds no reference to the process
// group: a callback can run last on one of Gloo's own threads, and dropping
// the group's last reference there would make it join that very thread.
struct OverlapSync::HookState {
  std::mutex mu;
  std::vector<BucketTimes> times;
  StepClock* clock = nullptr;
};

namespace {

// Averages a bucket: divide first (as DDP's hooks do), then all-reduce the
// sum, in place or, compressed, as a half-size copy cast back into the
// bucket afterwards (DDP's fp16/bf16_compress_hook); marks when it was
// launched and when it completed. On CUDA the
// completion callback runs on a stream that waits for NCCL's work, so its
// mark falls where the all-reduce ends. With `local` the sum goes through
// shared memory (ShmAllreduce) and the callback runs on its thread.
class TimedAllreduceHook : public c10d::CommHookInterface {
 public:
  TimedAllreduceHook(std::shared_ptr<OverlapSync::HookState> state, c10::intrusive_ptr<compat::Backend> group,
                     int world_size, c10::ScalarType wire, std::shared_ptr<ShmAllreduce> local)
      : state_(std::move(state)), group_(std::move(group)), world_size_(world_size), wire_(wire),
        local_(std::move(local)) {}

  // The all-reduce's future holds the list of reduced tensors (one here).
  // Written out because LibTorch 1.13 does not export its own helper.
  at::Tensor parseHookResult(const c10::IValue& result) override { return result.toTensorVector()[0]; }

  c10::intrusive_ptr<c10::ivalue::Future> runHook(c10d::GradBucket& bucket) override {
    auto st = state_;
    at::Tensor buffer = bucket.getBufferRef();
    buffer.div_(world_size_);
    at::Tensor wire = buffer.scalar_type() == wire_ ? buffer : buffer.to(wire_);
    std::vector<at::Tensor> tensors = {wire};
    const size_t index = bucket.getIndex();
    const int64_t bytes = wire.numel() * wire.element_size();
    const int launch = st->clock->mark();
    auto fut = local_ ? local_->allreduce(wire) : group_->allreduce(tensors)->getFuture();
    // The Reducer waits for the future returned here, so the completion is
    // marked before backward returns (a plain callback could run after it,
    // on Gloo's thread, in the next step).
    return fut->then(
        [st, index, launch, bytes, buffer, wire](c10::ivalue::Future& done_fut) {
          c10::IValue value = done_fut.value();  // rethrows the all-reduce's error
          if (!wire.is_same(buffer)) {
            buffer.copy_(wire);
            value = c10::IValue(std::vector<at::Tensor>{buffer});
          }
          const int done = st->clock->mark();
          {
            std::lock_guard<std::mutex> lock(st->mu);
            st->times.push_back({index, launch, done, bytes});
          }
          return value;
        },
        fut->elementType());
  }

 private:
  std::shared_ptr<OverlapSync::HookState> state_;
  c10::intrusive_ptr<compat::Backend> group_;
  int world_size_;
  c10::ScalarType wire_;
  std::shared_ptr<ShmAllreduce> local_;
};

}  // namespace

OverlapSync::OverlapSync(const std::vector<torch::Tensor>& params, c10::intrusive_ptr<compat::Backend> group,
                         int world_size, size_t first_bucket_bytes, size_t bucket_bytes, StepClock* clock,
                         c10::ScalarType wire, std::shared_ptr<ShmAllreduce> local)
    : state_(std::make_shared<HookState>()) {
  state_->clock = clock;
  // As DistributedDataParallel does: buckets by size in parameter order,
  // then reversed, since backward produces gradients last layer first.
  auto [indices, limits] =
      c10d::compute_bucket_assignment_by_size(params, {first_bucket_bytes, bucket_bytes}, std::vector<bool>(params.size(), false));
  std::reverse(indices.begin(), indices.end());
  std::reverse(limits.begin(), limits.end());
  std::unordered_map<size_t, std::string> names;
  reducer_ = std::make_unique<c10d::Reducer>(params, indices, limits, compat::reducer_group(group),
                                             std::vector<bool>(params.size(), false),
                                             static_cast<int64_t>(bucket_bytes), /*find_unused_parameters=*/false,
                                             /*gradient_as_bucket_view=*/true, names,
                                             static_cast<int64_t>(first_bucket_bytes));
  reducer_->register_comm_hook(std::make_unique<TimedAllreduceHook>(state_, group, world_size, wire, std::move(local)));
}

OverlapSync::~OverlapSync() = default;

void OverlapSync::expect_backward() {
  // As DDP's forward does: after the first backward, the buckets are rebuilt
  // in the order the gradients actually became ready (rank 0's order,
  // broadcast). Until then the Reducer records that order on every
  // backward, so skipping this would also grow its memory step by step.
  if (backwards_ == 1) reducer_->rebuild_buckets();
  ++backwards_;
  reducer_->prepare_for_backward({});
}

std::vector<BucketTimes> OverlapSync::take_bucket_times() {
  std::lock_guard<std::mutex> lock(state_->mu);
  std::vector<BucketTimes> out;
  out.swap(state_->times);
  return out;
}

}  // namespace convoy
