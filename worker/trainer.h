// One rank's training and evaluation steps: normalisation of uint8 batches,
// forward/backward under optional bf16 autocast, gradient averaging, the
// optimizer and LR schedule, and evaluation sums reduced across ranks.
// Batches come in as tensors, so tests drive the trainer without a data
// service.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "common/config.h"
#include "models/models.h"
#include "worker/dist/device.h"
#include "worker/dist/grad_sync.h"
#include "worker/dist/overlap_sync.h"
#include "worker/eval_metrics.h"
#include "worker/mask_grid.h"
#include "worker/segmentation_batch.h"
#include "worker/loss_scaler.h"
#include "worker/optimizer.h"

namespace convoy {

// Where a step's time went, in milliseconds, on the device's clock (the CPU's,
// or CUDA events in stream order on a GPU).
// forward + backward + exposed_comm + optimizer is the step (without the data
// wait). allreduce is the buckets' total all-reduce time, most of which ran
// during backward when overlapped; exposed_comm is the part after it.
struct StepTimes {
  double forward = 0, backward = 0, exposed_comm = 0, optimizer = 0, allreduce = 0;
};

struct StepResult {
  double loss = 0;        // this rank's mean loss over its valid samples
  int64_t samples = 0;    // valid samples
  double lr = 0;
  bool stop = false;      // some rank voted to stop after this step
  bool skipped = false;   // the loss scaler found inf/NaN gradients: no update
  double loss_scale = 1;  // the scale this step used (1 without scaling)
  StepTimes times;
};


class Trainer {
 public:
  // `group` may be null for a single process. The model is built from the
  // seeded generator (or model.init_from's weights, with a fresh head when
  // the class count differs) and then broadcast from rank 0. With
  // model.freeze_backbone only the head's parameters train (with
  // model.freeze_batch_norm not BatchNorm's, its layers kept in eval mode).
  // `runtime`: the device (null: the one cfg.device names, as local rank 0). `local`: the
  // gradients' shared-memory all-reduce (null: they go through `group`).
  Trainer(const Config& cfg, int num_classes, c10::intrusive_ptr<compat::Backend> group, int rank,
          int world_size, int64_t steps_per_epoch, std::shared_ptr<DeviceRuntime> runtime = nullptr,
          std::shared_ptr<ShmAllreduce> local = nullptr);

  // pixels: uint8 (N, C, H, W); labels: int64 (N), -1 = ignore; or, for a
  // segmentation model, the masks: uint8 (N, H, W) class ids,
  // data.segmentation.ignore_index = unlabelled (seg_loss.h); on the
  // CPU or already on the trainer's device. Dropout
  // draws are seeded by (seed, rank, global_step), so a resumed run repeats
  // them exactly. `stop_vote` travels with the gradients: if any rank votes,
  // every rank's result says stop, after the same step.
  //
  // Gradient accumulation: call it for micro-batches 0..micros-1 of one
  // step, in order; gradients are reduced across ranks only after the last
  // (DDP's no_sync for the others), and the optimizer steps once. Each
  // micro-batch's loss is weighted by its valid samples / (micros x batch),
  // so K micro-batches of B equal one batch of K x B (without BatchNorm).
  // Before the last micro-batch the result has no optimizer step.
  StepResult train_step(const torch::Tensor& pixels, const torch::Tensor& labels, int64_t global_step,
                        bool stop_vote = false, int micro = 0, int micros = 1);
  // Adds one classifier's eval batch to `sums` (this rank only;
  // EvalSums(eval_classes())). A segmentation model goes through
  // eval_segmentation.
  void eval_batch(const torch::Tensor& pixels, const torch::Tensor& labels, EvalSums* sums);
  // Segmentation evaluation as the data service delivers it: each sample a
  // whole image of its own size (segmentation_batch.h), scored at its
  // mask's (original) size: the logits of the picture resized to it
  // (logits_at_size), the loss and the counts taken there. Samples of the
  // same padded size go through the model together, and only those, so a
  // sample's logits never depend on which others share its batch. `grid`:
  // when given, up to `grid_max` rows for the report's mask grid (at the
  // size the model saw, the truth resized nearest).
  void eval_segmentation(const std::vector<ScoredSample>& samples, EvalSums* sums,
                         std::vector<MaskSample>* grid = nullptr, size_t grid_max = 0);

  // Collectives. Every rank must call each of these, in the same order, with
  // the same `what` (the rule in worker/dist/rendezvous.h): one called by some
  // ranks only, inside `if (rank == 0)` say, hangs the others until
  // distributed.timeout_s. train_step is one too (the gradient all-reduce).
  //
  // Sums across ranks; every rank gets the totals.
  EvalSums collective_reduce(const EvalSums& local, int64_t step);
  // Mean / sum of `value` across ranks.
  double collective_mean(double value, int64_t step);
  double collective_sum(double value, int64_t step, const std::string& what);
  // Rank 0's BatchNorm statistics to every rank (before evaluation, as DDP).
  void sync_buffers();

  Classifier model() const { return model_; }
  bool segmentation() const { return segmentation_; }
  // The classes evaluation counts: the model's, or 2 for a binary (one
  // channel) segmentation model (background and foreground).
  int eval_classes() const { return eval_classes_; }
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  const LrSchedule& schedule() const { return schedule_; }
  torch::Device device() const { return device_; }
  LossScaler& scaler() { return scaler_; }
  // Spans of each step go here when it records (may be null).
  void set_timeline(Timeline* t) { timeline_ = t; }
  // The last step's gradient buckets as the overlapped all-reduce timed
  // them: (bucket index, launched, done), Timeline::now_us's clock. Empty
  // when the gradients are all-reduced after backward (or with one rank).
  struct BucketSpan {
    size_t bucket = 0;
    int64_t launch_us = 0, done_us = 0;
  };
  const std::vector<BucketSpan>& bucket_spans() const { return bucket_spans_; }

 private:
  // uint8 -> float, (x / 255 - mean) / std, in one pass on the device (into
  // channels_last directly when the model is).
  torch::Tensor normalize(const torch::Tensor& pixels) const;
  void init_from(const std::string& path);
  int backward_and_reduce(const torch::Tensor& objective, int64_t global_step, bool stop_vote, int start,
                          StepTimes* times);
  // A timeline span between two of the clock's marks (when recording).
  void span(const char* name, const char* category, int from, int to);

  std::shared_ptr<DeviceRuntime> runtime_;
  Config cfg_;  // with amp and channels_last resolved (never "auto")
  int rank_, world_size_;
  std::unique_ptr<StepClock> clock_;
  torch::Device device_;
  Classifier model_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  LrSchedule schedule_;
  GradSync sync_;
  std::unique_ptr<OverlapSync> overlap_;  // when overlapping (world > 1)
  bool overlap_wanted_ = false;
  c10::intrusive_ptr<compat::Backend> group_;
  std::shared_ptr<ShmAllreduce> local_;
  torch::Tensor scale_, shift_;  // per-channel normalisation: x * scale + shift
  bool bf16_, fp16_;
  bool channels_last_ = cfg_.model.channels_last.value_or(false);
  LossScaler scaler_;
  Timeline* timeline_ = nullptr;
  std::vector<BucketSpan> bucket_spans_;
  bool segmentation_ = false;
  LossKind seg_loss_ = LossKind::kAuto;  // resolved (seg_loss.h)
  int64_t ignore_index_ = 255;
  int eval_classes_ = 0;
};

}  // namespace convoy
