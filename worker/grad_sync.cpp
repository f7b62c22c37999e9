// Gradient averaging and parameter broadcast (see grad_sync.h).
#include "worker/grad_sync.h"

#include "common/error.h"

namespace convoy {

GradSync::GradSync(c10::intrusive_ptr<compat::Backend> group, int rank, int world_size,
                   std::chrono::milliseconds timeout, size_t bucket_bytes)
    : group_(std::move(group)), rank_(rank), world_size_(world_size), timeout_(timeout),
      bucket_bytes_(bucket_bytes) {}

void GradSync::run(const c10::intrusive_ptr<compat::Work>& work, const std::string& what, int64_t step) {
  try {
    if (!work->wait(timeout_))
      throw TimeoutError(CONVOY_STR("no result after " << timeout_.count() / 1000.0 << " s"));
  } catch (const std::exception& e) {
    throw Error(CONVOY_STR("rank " << rank_ << ": " << what << " at step " << step << " failed: " << e.what()));
  }
}

void GradSync::broadcast(const std::vector<torch::Tensor>& tensors, const std::string& what) {
  if (!group_ || world_size_ == 1 || tensors.empty()) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> flat_parts;
  for (const auto& t : tensors) flat_parts.push_back(t.detach().reshape(-1).to(torch::kFloat64));
  std::vector<torch::Tensor> buf{torch::cat(flat_parts)};
  c10d::BroadcastOptions opts;
  opts.rootRank = 0;
  run(group_->broadcast(buf, opts), "broadcast of " + what, 0);
  int64_t offset = 0;
  for (const auto& t : tensors) {
    auto n = t.numel();
    t.detach().copy_(buf[0].narrow(0, offset, n).view(t.sizes()));
    offset += n;
  }
}

void GradSync::average_gradients(const std::vector<torch::Tensor>& params, int64_t step) {
  if (!group_ || world_size_ == 1) return;
  torch::NoGradGuard no_grad;
  // Buckets in reverse parameter order: the order backward produces them.
  std::vector<std::vector<torch::Tensor>> buckets(1);
  size_t bytes = 0;
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    auto& p = const_cast<torch::Tensor&>(*it);
    if (!p.mutable_grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    size_t b = p.numel() * p.element_size();
    if (bytes > 0 && bytes + b > bucket_bytes_) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(p.mutable_grad());
    bytes += b;
  }
  for (auto& grads : buckets) {
    std::vector<torch::Tensor> flat;
    for (auto& g : grads) flat.push_back(g.reshape(-1));
    std::vector<torch::Tensor> buf{torch::cat(flat)};
    run(group_->allreduce(buf), "all-reduce of gradients", step);
    buf[0].div_(world_size_);
    int64_t offset = 0;
    for (auto& g : grads) {
      g.copy_(buf[0].narrow(0, offset, g.numel()).view(g.sizes()));
      offset += g.numel();
    }
  }
}

void GradSync::sum(torch::Tensor values, const std::string& what, int64_t step) {
  if (!group_ || world_size_ == 1) return;
  std::vector<torch::Tensor> buf{values};
  run(group_->allreduce(buf), "all-reduce of " + what, step);
}

}  // namespace convoy
