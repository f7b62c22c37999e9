// Data-parallel synchronisation over a c10d group: identical initial weights
// (broadcast from rank 0) and gradients averaged across ranks after every
// backward. Gradients are flattened into buckets (reverse parameter order,
// up to bucket_bytes each) and all-reduced one bucket at a time.
// Invariant: every collective is bounded by the group's timeout, and a
// failure names the rank, the operation and the step.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>

#include "worker/dist/c10d_compat.h"
#include "worker/dist/timeline.h"

namespace convoy {

class ShmAllreduce;

// Called when a collective times out, to say which rank is at fault
// (Distributed::diagnose_peers, installed by Distributed::connect); its text
// joins the error. nullptr: none.
void set_timeout_diagnosis(std::function<std::string()> diagnose);

class GradSync {
 public:
  // `group` may be null (a single process: every call is a no-op).
  // `comm_device`: where the group's tensors must be (CUDA for NCCL); small
  // CPU values (sums, votes) travel through it. `local`: when set, gradient
  // buckets go through shared memory instead (everything else still through
  // `group`).
  GradSync(c10::intrusive_ptr<compat::Backend> group, int rank, int world_size,
           std::chrono::milliseconds timeout, size_t bucket_bytes = 25u << 20,
           torch::Device comm_device = torch::kCPU, c10::ScalarType wire = c10::kFloat,
           std::shared_ptr<ShmAllreduce> local = nullptr);

  // Copies rank 0's values of `tensors` to every rank.
  void broadcast(const std::vector<torch::Tensor>& tensors, const std::string& what);
  // Averages the gradients of `params` across ranks (absent gradients count
  // as zeros, so every rank reduces the same layout). `vote` rides along in
  // the last bucket as one extra element; returns how many ranks voted.
  // Each bucket's all-reduce is a span on `timeline` when it records.
  int average_gradients(const std::vector<torch::Tensor>& params, int64_t step, bool vote = false,
                        Timeline* timeline = nullptr);
  // Turns a collective's failure (often a timeout: a rank stuck, stopped or
  // gone) into an Error naming this rank, `what` and the step.
  [[noreturn]] void fail(const std::exception& e, const std::string& what, int64_t step) const;
  // How many ranks voted (a one-element all-reduce).
  int vote(bool vote, int64_t step);
  // Sums `values` (a small float64 tensor) across ranks in place.
  void sum(torch::Tensor values, const std::string& what, int64_t step);

 private:
  void run(const c10::intrusive_ptr<compat::Work>& work, const std::string& what, int64_t step);

  c10::intrusive_ptr<compat::Backend> group_;
  int rank_, world_size_;
  std::chrono::milliseconds timeout_;
  size_t bucket_bytes_;
  torch::Device comm_device_;
  c10::ScalarType wire_;  // gradient buckets on the network (compression)
  std::shared_ptr<ShmAllreduce> local_;
};

}  // namespace convoy
