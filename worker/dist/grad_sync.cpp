// Gradient averaging and parameter broadcast (see grad_sync.h).
#include "worker/dist/grad_sync.h"

#include <mutex>

#include "common/error.h"
#include "models/torch_errors.h"
#include "worker/dist/shm_allreduce.h"

namespace convoy {
namespace {
std::mutex diagnosis_mu;
std::function<std::string()> diagnosis;
}  // namespace

void set_timeout_diagnosis(std::function<std::string()> diagnose) {
  std::lock_guard<std::mutex> lock(diagnosis_mu);
  diagnosis = std::move(diagnose);
}

GradSync::GradSync(c10::intrusive_ptr<compat::Backend> group, int rank, int world_size,
                   std::chrono::milliseconds timeout, size_t bucket_bytes, torch::Device comm_device,
                   c10::ScalarType wire, std::shared_ptr<ShmAllreduce> local)
    : group_(std::move(group)), rank_(rank), world_size_(world_size), timeout_(timeout),
      bucket_bytes_(bucket_bytes), comm_device_(comm_device), wire_(wire), local_(std::move(local)) {}

void GradSync::fail(const std::exception& e, const std::string& what, int64_t step) const {
  std::string text = error_text(e);
  bool timed_out = dynamic_cast<const TimeoutError*>(&e) || text.find("timed out") != std::string::npos ||
                   text.find("Timed out") != std::string::npos;
  // Which rank is at fault, when the store can tell: for a timeout, and for
  // a peer that closed its connection (it may have failed on its own
  // timeout first, and the closing is all this rank sees).
  std::string found;
  if (timed_out || text.find("closed") != std::string::npos || text.find("reset") != std::string::npos) {
    std::function<std::string()> diagnose;
    {
      std::lock_guard<std::mutex> lock(diagnosis_mu);
      diagnose = diagnosis;
    }
    if (diagnose) found = diagnose();
  }
  std::string note;
  if (timed_out)
    note = CONVOY_STR(" (after " << timeout_.count() / 1000.0 << " s: "
                                 << (found.empty() ? "another rank is stuck, stopped or gone" : found) << ")");
  else if (!found.empty())
    note = " (" + found + ")";
  throw Error(CONVOY_STR("rank " << rank_ << ": " << what << " at step " << step << " failed: " << text << note));
}

void GradSync::run(const c10::intrusive_ptr<compat::Work>& work, const std::string& what, int64_t step) {
  try {
    if (!work->wait(timeout_))
      throw TimeoutError(CONVOY_STR("no result after " << timeout_.count() / 1000.0 << " s"));
  } catch (const std::exception& e) {
    fail(e, what, step);
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

int GradSync::average_gradients(const std::vector<torch::Tensor>& params, int64_t step, bool vote,
                                Timeline* timeline) {
  if (!group_ || world_size_ == 1) return vote ? 1 : 0;
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
  int votes = 0;
  for (size_t b = 0; b < buckets.size(); ++b) {
    auto& grads = buckets[b];
    std::vector<torch::Tensor> flat;
    for (auto& g : grads) flat.push_back(g.reshape(-1));
    const bool last = b + 1 == buckets.size();
    if (last) flat.push_back(torch::full({1}, vote ? 1.0 : 0.0, grads.front().options()));
    std::vector<torch::Tensor> buf{torch::cat(flat)};
    const c10::ScalarType dtype = buf[0].scalar_type();
    if (wire_ != dtype) buf[0] = buf[0].to(wire_);  // compressed: the vote (a small integer) stays exact
    const int64_t bytes = buf[0].numel() * buf[0].element_size();  // on the wire
    int64_t t0 = timeline && timeline->active() ? Timeline::now_us() : 0;
    if (local_) {
      try {
        local_->allreduce_now(buf[0]);
      } catch (const std::exception& e) {
        fail(e, "all-reduce of gradients", step);
      }
    } else {
      run(group_->allreduce(buf), "all-reduce of gradients", step);
    }
    if (wire_ != dtype) buf[0] = buf[0].to(dtype);
    if (t0) timeline->bucket_span(b, t0, Timeline::now_us(), bytes);
    if (last) votes = static_cast<int>(std::lround(buf[0][-1].item<double>()));
    buf[0].div_(world_size_);
    int64_t offset = 0;
    for (auto& g : grads) {
      g.copy_(buf[0].narrow(0, offset, g.numel()).view(g.sizes()));
      offset += g.numel();
    }
  }
  return votes;
}

int GradSync::vote(bool vote, int64_t step) {
  auto t = torch::full({1}, vote ? 1.0 : 0.0, torch::kFloat64);
  sum(t, "stop vote", step);
  return static_cast<int>(std::lround(t.item<double>()));
}

void GradSync::sum(torch::Tensor values, const std::string& what, int64_t step) {
  if (!group_ || world_size_ == 1) return;
  std::vector<torch::Tensor> buf{values.to(comm_device_)};
  run(group_->allreduce(buf), "all-reduce of " + what, step);
  if (!buf[0].is_same(values)) values.copy_(buf[0]);
}

}  // namespace convoy
