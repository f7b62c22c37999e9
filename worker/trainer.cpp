// Training and evaluation steps (see trainer.h).
#include "worker/trainer.h"

#include <map>

#include <set>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/sample_rng.h"
#include "models/autocast.h"
#include "models/hardware.h"
#include "models/state_dict.h"
#include "worker/seg_loss.h"

namespace convoy {
namespace {

// The dtype gradients cross the network in (distributed.grad_compression).
c10::ScalarType wire_dtype(const Config& cfg) {
  switch (cfg.distributed.grad_compression) {
    case GradCompression::kFp16: return c10::kHalf;
    case GradCompression::kBf16: return c10::kBFloat16;
    case GradCompression::kNone: break;
  }
  return c10::kFloat;
}

// A config whose hardware-dependent settings are still "auto" (a trainer
// made outside a worker: tests, tools) gets this device's choices, silently;
// the worker resolves them before, logging why (worker.cpp).
Config with_hardware_choices(Config cfg, const DeviceRuntime& runtime) {
  if (cfg.train.amp == Amp::kAuto || !cfg.model.channels_last)
    apply_choices(choose_for_hardware(cfg, device_facts(runtime)), &cfg);
  return cfg;
}

// The model's BatchNorm2d layers.
std::vector<torch::nn::Module*> batch_norms(torch::nn::Module& model) {
  std::vector<torch::nn::Module*> out;
  for (auto& m : model.modules(/*include_self=*/false))
    if (m->as<torch::nn::BatchNorm2dImpl>()) out.push_back(m.get());
  return out;
}

// `w` (K, C, H, W) with exactly the strides of channels_last. contiguous()
// keeps a tensor's strides where a size-1 dimension makes both layouts
// equally valid (the first convolution of a grey-scale model, C = 1), but
// convolution gradients come in these strides, and the Reducer warns when
// a gradient's strides differ from its parameter's.
torch::Tensor exactly_channels_last(const torch::Tensor& w) {
  const int64_t c = w.size(1), h = w.size(2), wd = w.size(3);
  auto out = torch::empty_strided(w.sizes(), {h * wd * c, 1, wd * c, c}, w.options());
  return out.copy_(w);
}

}  // namespace

Trainer::Trainer(const Config& cfg, int num_classes, c10::intrusive_ptr<compat::Backend> group, int rank,
                 int world_size, int64_t steps_per_epoch, std::shared_ptr<DeviceRuntime> runtime,
                 std::shared_ptr<ShmAllreduce> local)
    : runtime_(runtime ? std::move(runtime) : make_device_runtime(cfg.device, 0, cfg.train.cudnn_benchmark)),
      cfg_(with_hardware_choices(cfg, *runtime_)), rank_(rank), world_size_(world_size),
      clock_(runtime_->make_clock()), device_(runtime_->device()),
      schedule_(cfg.optim, steps_per_epoch, cfg.train.epochs),
      sync_(group, rank, world_size, std::chrono::seconds(cfg.distributed.timeout_s),
            static_cast<size_t>(cfg.distributed.bucket_mb * (1 << 20)), device_, wire_dtype(cfg), local),
      bf16_(cfg_.train.amp == Amp::kBf16), fp16_(cfg_.train.amp == Amp::kFp16),
      scaler_(cfg.train.loss_scaling == LossScaling::kDynamic || (cfg.train.loss_scaling == LossScaling::kAuto && fp16_)) {
  if (fp16_ && !device_.is_cuda())
    CONVOY_USER_ERROR("train.amp: fp16 needs a CUDA device (this run is on the CPU); use bf16");
  // Gloo would sum the buckets: not in shared memory, not for one rank.
  if (cfg.distributed.grad_compression == GradCompression::kBf16 && device_.is_cpu() && world_size > 1 && !local &&
      !compat::gloo_sums_bf16())
    CONVOY_USER_ERROR("distributed.grad_compression: Gloo in this LibTorch ("
                      << TORCH_VERSION << ") cannot sum bf16; use fp16 or none (ranks on one host sum bf16 in shared "
                      << "memory, distributed.grad_transport auto or shm)");
  torch::manual_seed(cfg.seed);
  model_ = make_model(cfg_.model, cfg.data.image, num_classes);
  segmentation_ = is_segmentation_arch(cfg.model.arch);
  eval_classes_ = segmentation_ && num_classes == 1 ? 2 : num_classes;
  if (segmentation_) {
    seg_loss_ = resolve_segmentation_loss(cfg.train.loss, num_classes);
    ignore_index_ = cfg.data.segmentation.ignore_index;
  } else if (cfg.train.loss != LossKind::kAuto && cfg.train.loss != LossKind::kCe) {
    CONVOY_USER_ERROR("train.loss " << name_of(cfg.train.loss) << " is for segmentation models; a classifier "
                                    << "trains with ce");
  }
  if (!cfg.model.init_from.empty()) init_from(cfg.model.init_from);
  model_->to(device_);
  if (channels_last_)
    for (auto& p : model_->parameters())
      if (p.dim() == 4) p.set_data(exactly_channels_last(p));
  std::vector<torch::Tensor> state = model_->parameters();
  std::set<const void*> frozen_bn;  // model.freeze_batch_norm: their weights and biases
  for (auto* bn : batch_norms(*model_))
    if (cfg.model.freeze_batch_norm)
      for (auto& p : bn->parameters()) frozen_bn.insert(p.unsafeGetTensorImpl());
  for (auto& p : model_->named_parameters())
    if ((!cfg.model.freeze_backbone || p.key().rfind(model_->head + ".", 0) == 0) &&
        !frozen_bn.count(p.value().unsafeGetTensorImpl()))
      params_.push_back(p.value());
    else
      p.value().set_requires_grad(false);
  for (auto& b : model_->buffers()) state.push_back(b);
  sync_.broadcast(state, "initial weights");
  overlap_wanted_ = group && world_size > 1 && cfg.distributed.overlap_grad_sync;
  group_ = group;
  local_ = std::move(local);
  optimizer_ = make_optimizer(cfg.optim, params_);

  const auto& d = cfg.data;
  auto mean = torch::tensor(std::vector<float>(d.mean.begin(), d.mean.end()));
  auto std = torch::tensor(std::vector<float>(d.std.begin(), d.std.end()));
  scale_ = (1.0 / (255.0 * std)).view({1, -1, 1, 1}).to(device_);
  shift_ = (-mean / std).view({1, -1, 1, 1}).to(device_);
}

void Trainer::init_from(const std::string& path) {
  auto sd = read_state_dict(path);
  // A U-Net from torchvision's ResNet weights (conv1.*, layer*.*, fc.*):
  // they are its encoder's (SMP's ResNetEncoder is that ResNet without fc);
  // the decoder and the head keep their fresh initialisation.
  if (segmentation_ && !sd.count("encoder.conv1.weight") && sd.count("conv1.weight")) {
    for (auto it = sd.begin(); it != sd.end();) it = it->first.rfind("fc.", 0) == 0 ? sd.erase(it) : std::next(it);
    load_state_dict(*model_->named_children()["encoder"], sd);
    if (rank_ == 0) spdlog::info("encoder weights from {} (a ResNet's, fc left out); decoder and head fresh", path);
    return;
  }
  auto fresh = load_state_dict(*model_, sd, model_->head, /*new_head=*/true);
  if (rank_ != 0) return;
  std::string head;
  for (const auto& n : fresh) head += (head.empty() ? "" : ", ") + n;
  spdlog::info("weights from {}{}{}", path, fresh.empty() ? "" : "; new head (another class count): " + head,
               cfg_.model.freeze_backbone ? "; backbone frozen" : "");
}

torch::Tensor Trainer::normalize(const torch::Tensor& pixels) const {
  auto u8 = pixels.to(device_);  // no copy when the batch is already there
  auto x = torch::empty(u8.sizes(), u8.options().dtype(torch::kFloat).memory_format(
                                        channels_last_ ? torch::MemoryFormat::ChannelsLast
                                                       : torch::MemoryFormat::Contiguous));
  // shift + u8 * scale: one kernel on a GPU, reading bytes, writing floats.
  return torch::addcmul_out(x, shift_, u8, scale_);
}

StepResult Trainer::train_step(const torch::Tensor& pixels, const torch::Tensor& labels, int64_t global_step,
                               bool stop_vote, int micro, int micros) {
  if (timeline_) timeline_->set_step(global_step);
  model_->train();
  if (cfg_.model.freeze_batch_norm)
    for (auto* bn : batch_norms(*model_)) bn->eval();
  if (micro == 0 && cfg_.distributed.broadcast_buffers == BufferSync::kStep) sync_buffers();
  torch::manual_seed(mix_seed(cfg_.seed, kSaltDropout, static_cast<uint64_t>(rank_), static_cast<uint64_t>(global_step)) +
                     static_cast<uint64_t>(micro));
  clock_->reset();
  const int m0 = clock_->mark();
  torch::Tensor loss;
  int64_t valid = 0;
  {
    auto x = normalize(pixels);
    auto y = labels.to(device_);
    if (segmentation_) y = y.to(torch::kLong);
    // Samples: a segmentation sample counts when any of its pixels is labelled.
    valid = segmentation_ ? y.ne(ignore_index_).flatten(1).any(1).sum().item<int64_t>() : (y >= 0).sum().item<int64_t>();
    compat::AutocastGuard autocast(device_.type(), bf16_ || fp16_, fp16_ ? torch::kHalf : torch::kBFloat16);
    auto logits = model_->forward(x).to(torch::kFloat);
    if (segmentation_) {
      // Collective: the loss's sums are all-reduced in the forward pass (see
      // seg_loss.h), on every rank, labelled pixels or not.
      const auto terms = segmentation_loss_terms(logits, y, seg_loss_, ignore_index_);
      auto totals = terms.pack();
      if (world_size_ > 1) sync_.sum(totals, "segmentation loss sums", global_step);
      loss = segmentation_loss(terms, totals, world_size_);
    } else if (valid > 0) {
      namespace F = torch::nn::functional;
      loss = F::cross_entropy(logits, y,
                              F::CrossEntropyFuncOptions().ignore_index(-1).label_smoothing(cfg_.optim.label_smoothing));
    } else {
      loss = logits.sum() * 0;  // still take part in the all-reduce
    }
  }
  const int m1 = clock_->mark();
  if (overlap_wanted_ && !overlap_)
    overlap_ = std::make_unique<OverlapSync>(params_, group_, world_size_,
                                             static_cast<size_t>(cfg_.distributed.first_bucket_mb * (1 << 20)),
                                             static_cast<size_t>(cfg_.distributed.bucket_mb * (1 << 20)),
                                             clock_.get(), wire_dtype(cfg_), local_);
  const bool last = micro + 1 >= micros;
  // One batch: the mean over its valid samples. Micro-batches: their share of
  // the accumulated batch (see trainer.h).
  torch::Tensor objective =
      micros == 1 ? loss : loss * (static_cast<double>(valid) / (static_cast<double>(micros) * cfg_.data.batch_size));
  objective = scaler_.scale_loss(objective);
  StepTimes times;
  if (micro == 0) {
    // The gradients are views into the Reducer's buckets when overlapping:
    // zeroed in place.
    if (overlap_) {
      for (auto& p : params_)
        if (p.grad().defined()) p.mutable_grad().zero_();
    } else {
      optimizer_->zero_grad();
    }
  }
  if (!last) {
    objective.backward();  // no all-reduce: DDP's no_sync
    const int m2 = clock_->mark();
    span("forward", "compute", m0, m1);
    span("backward (accumulating)", "compute", m1, m2);
    times.forward = clock_->ms(m0, m1);
    times.backward = clock_->ms(m1, m2);
    return StepResult{loss.item<double>(), valid, schedule_.at(global_step), false, false, 1.0, times};
  }
  int votes = backward_and_reduce(objective, global_step, stop_vote, m1, &times);
  const int m3 = clock_->mark();
  const double scale_used = scaler_.enabled() ? scaler_.scale() : 1.0;
  // On the averaged gradients, so every rank decides the same.
  const bool finite = scaler_.unscale_and_update(params_);
  schedule_.apply(*optimizer_, global_step);
  if (finite) optimizer_->step();
  const int m4 = clock_->mark();
  StepResult r{loss.item<double>(), valid, schedule_.at(global_step), votes > 0, !finite, scale_used, times};
  span("forward", "compute", m0, m1);
  span("optimizer", "compute", m3, m4);
  r.times.forward = clock_->ms(m0, m1);
  r.times.optimizer = clock_->ms(m3, m4);
  return r;
}

void Trainer::span(const char* name, const char* category, int from, int to) {
  if (timeline_ && timeline_->active()) timeline_->span(name, category, clock_->us(from), clock_->us(to));
}

// The last (or only) backward of a step, with the gradients averaged across
// ranks: overlapped through the Reducer, or all-reduced after backward.
// `start` is the clock's mark where backward begins. Returns how many ranks
// voted to stop.
int Trainer::backward_and_reduce(const torch::Tensor& objective, int64_t global_step, bool stop_vote, int start,
                                 StepTimes* times) {
  if (overlap_) {
    overlap_->expect_backward();
    try {
      objective.backward();  // returns once every bucket is all-reduced
    } catch (const std::exception& e) {
      sync_.fail(e, "all-reduce of gradients (overlapped with backward)", global_step);
    }
    const int end = clock_->mark();
    const int64_t b0 = clock_->us(start), b1 = clock_->us(end);
    int64_t last_launch = b0;
    bucket_spans_.clear();
    for (const auto& bt : overlap_->take_bucket_times()) {
      const int64_t launch = clock_->us(bt.launch_mark), done = clock_->us(bt.done_mark);
      bucket_spans_.push_back({bt.bucket, launch, done});
      last_launch = std::max(last_launch, launch);
      times->allreduce += (done - launch) / 1e3;
      if (timeline_) timeline_->bucket_span(bt.bucket, launch, done, bt.bytes);
    }
    // Backward's compute ends when its last gradient is ready, which is when
    // the last bucket is launched; what remains of backward() is waiting.
    times->backward = (last_launch - b0) / 1e3;
    times->exposed_comm = (b1 - last_launch) / 1e3;
    if (timeline_ && timeline_->active()) {
      timeline_->span("backward", "compute", b0, last_launch);
      timeline_->span("exposed all-reduce wait", "comm", last_launch, b1);
    }
    return sync_.vote(stop_vote, global_step);
  }
  objective.backward();
  const int done = clock_->mark();
  span("backward", "compute", start, done);
  int votes = sync_.average_gradients(params_, global_step, stop_vote, timeline_);
  const int reduced = clock_->mark();
  times->backward = clock_->ms(start, done);
  times->exposed_comm = times->allreduce = clock_->ms(done, reduced);
  return votes;
}

void Trainer::eval_batch(const torch::Tensor& pixels, const torch::Tensor& labels, EvalSums* sums) {
  CONVOY_CHECK(!segmentation_, "eval_batch: a segmentation model is evaluated by eval_segmentation");
  model_->eval();
  torch::NoGradGuard no_grad;
  auto x = normalize(pixels);
  auto y = labels.to(device_);
  torch::Tensor logits;
  {
    compat::AutocastGuard autocast(device_.type(), bf16_ || fp16_, fp16_ ? torch::kHalf : torch::kBFloat16);
    logits = model_->forward(x).to(torch::kFloat);
  }
  namespace F = torch::nn::functional;
  auto per_sample = F::cross_entropy(logits, y.clamp_min(0), F::CrossEntropyFuncOptions().reduction(torch::kNone));
  sums->add(logits, y, per_sample);
}

void Trainer::eval_segmentation(const std::vector<ScoredSample>& samples, EvalSums* sums,
                                std::vector<MaskSample>* grid, size_t grid_max) {
  CONVOY_CHECK(segmentation_, "eval_segmentation: not a segmentation model");
  model_->eval();
  torch::NoGradGuard no_grad;
  namespace F = torch::nn::functional;
  // The grid's rows: the first samples, in batch order.
  const size_t grid_start = grid ? grid->size() : 0;
  const size_t grid_rows = grid ? std::min(samples.size(), grid_max > grid_start ? grid_max - grid_start : 0) : 0;
  if (grid) grid->resize(grid_start + grid_rows);
  std::map<std::pair<int64_t, int64_t>, std::vector<size_t>> by_size;
  for (size_t k = 0; k < samples.size(); ++k)
    by_size[{samples[k].image.size(1), samples[k].image.size(2)}].push_back(k);
  for (const auto& [size, members] : by_size) {
    std::vector<torch::Tensor> images;
    for (size_t k : members) images.push_back(samples[k].image);
    torch::Tensor logits;
    {
      compat::AutocastGuard autocast(device_.type(), bf16_ || fp16_, fp16_ ? torch::kHalf : torch::kBFloat16);
      logits = model_->forward(normalize(torch::stack(images))).to(torch::kFloat);
    }
    for (size_t m = 0; m < members.size(); ++m) {
      const ScoredSample& s = samples[members[m]];
      const auto seen = logits.narrow(0, static_cast<int64_t>(m), 1);
      const auto l = logits_at_size(seen, s.content_h, s.content_w, s.mask.size(0), s.mask.size(1));
      const auto y = s.mask.to(device_).to(torch::kLong).unsqueeze(0);
      const bool any = y.ne(ignore_index_).any().item<bool>();
      const double loss = any ? segmentation_loss(l, y, seg_loss_, ignore_index_).item<double>() : 0.0;
      sums->add_pixels(l, y, ignore_index_, loss);
      if (members[m] < grid_rows) {
        MaskSample& g = (*grid)[grid_start + members[m]];
        g.pixels = s.image.narrow(1, 0, s.content_h).narrow(2, 0, s.content_w).cpu().clone();
        g.predicted = predicted_classes(seen.narrow(2, 0, s.content_h).narrow(3, 0, s.content_w))
                          .squeeze(0)
                          .to(torch::kUInt8)
                          .cpu();
        g.truth = F::interpolate(s.mask.cpu().to(torch::kFloat).unsqueeze(0).unsqueeze(0),
                                 F::InterpolateFuncOptions()
                                     .size(std::vector<int64_t>{s.content_h, s.content_w})
                                     .mode(torch::kNearest))
                      .squeeze(0)
                      .squeeze(0)
                      .to(torch::kUInt8);
      }
    }
  }
}

EvalSums Trainer::collective_reduce(const EvalSums& local, int64_t step) {
  auto t = local.pack();
  sync_.sum(t, "evaluation metrics", step);
  return EvalSums::unpack(t, local.classes);
}

double Trainer::collective_mean(double value, int64_t step) {
  return collective_sum(value, step, "training loss") / world_size_;
}

double Trainer::collective_sum(double value, int64_t step, const std::string& what) {
  auto t = torch::tensor({value}, torch::kFloat64);
  sync_.sum(t, what, step);
  return t.item<double>();
}

void Trainer::sync_buffers() {
  auto buffers = model_->buffers();
  sync_.broadcast(buffers, "BatchNorm buffers");
}

}  // namespace convoy
