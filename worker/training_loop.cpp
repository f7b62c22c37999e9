// The training loop (see training_loop.h).
//
// Collectives: every rank runs this loop and must call Trainer::collective_*
// (and train_step, whose gradients are all-reduced) in the same order
// (worker/dist/rendezvous.h). The functions below that call one say so;
// none of them is behind a rank test. Reporting (RunReporter) and the best
// checkpoint's bookkeeping (BestTracker) call none.
#include "worker/training_loop.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <optional>

#include "common/config.h"
#include "common/error.h"
#include "common/files.h"
#include "common/logging.h"
#include "models/checkpoint.h"
#include "worker/best_tracker.h"
#include "worker/data_client.h"
#include "worker/dist/device.h"
#include "worker/dist/rendezvous.h"
#include "worker/dist/timeline.h"
#include "worker/mask_grid.h"
#include "worker/progress.h"
#include "worker/run_reporter.h"
#include "worker/trainer.h"

namespace convoy {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Set by SIGTERM/SIGUSR1 (what Slurm and the launcher send before stopping
// a job): every rank finishes its current step, rank 0 checkpoints, and all
// exit 0. The vote travels with the step's gradient all-reduce, so all stop
// after the same step.
std::atomic<bool> g_stop_requested{false};

extern "C" void on_stop_signal(int) { g_stop_requested.store(true); }

// CRC-32 over every parameter's bytes: equal checksums mean equal weights.
std::string parameter_checksum(torch::nn::Module& model) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (const auto& p : model.parameters()) {
    auto t = p.detach().contiguous().cpu();
    crc = crc32(crc, static_cast<const Bytef*>(t.data_ptr()), static_cast<uInt>(t.nbytes()));
  }
  return fmt::format("{:08x}", static_cast<uint32_t>(crc));
}

struct EpochSummary {
  double train_loss = 0, images_per_sec = 0, seconds = 0;
  bool stopped = false;  // a stop was voted; a checkpoint holds the position
};

// What one epoch does: batches [first, end) of the train split, then
// (unless the run ends mid-epoch at train.max_steps) evaluation on `splits`.
struct EpochPlan {
  int epoch = 0;
  int64_t first = 0, end = 0;
  bool ends_mid_epoch = false;
  std::vector<std::string> splits;
};

// The batches and optimizer steps since the last train line.
struct Window {
  StepTimes times;
  double wait_ms = 0, loss = 0;
  int64_t batches = 0, steps = 0;
  Clock::time_point start = Clock::now();

  void add(const StepResult& r, double wait) {
    times.forward += r.times.forward;
    times.backward += r.times.backward;
    times.exposed_comm += r.times.exposed_comm;
    times.allreduce += r.times.allreduce;
    times.optimizer += r.times.optimizer;
    wait_ms += wait;
    loss += r.loss;
    ++batches;
  }
};

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  CONVOY_SYSCALL(::sigaction(SIGTERM, &sa, nullptr));
  CONVOY_SYSCALL(::sigaction(SIGUSR1, &sa, nullptr));
}

class TrainingLoop::Impl {
 public:
  Impl(const Config& cfg, Distributed& dist, DataClient& data, const std::string& run_dir,
       const std::string& resume_path, std::shared_ptr<DeviceRuntime> runtime)
      : cfg_(cfg), dist_(dist), data_(data), runtime_(std::move(runtime)), run_dir_(run_dir),
        reporter_(cfg, dist.rank(), run_dir),
        best_(cfg.train.best_metric, cfg.train.early_stopping_min_delta, cfg.train.early_stopping_patience,
              cfg.train.epochs),
        timeline_(dist.rank(), cfg.train.timeline_start, cfg.train.timeline_steps),
        progress_(progress_mode(dist.rank())),
        store_(join_path(run_dir, "checkpoints"), cfg.train.keep_checkpoints), last_checkpoint_(Clock::now()) {
    steps_ = train_steps_per_epoch();
    num_classes_ = cfg.model.num_classes > 0 ? cfg.model.num_classes : static_cast<int>(data.info().class_names.size());
    const int64_t k = cfg.train.accumulation_steps;  // optimizer steps per epoch: ceil(steps / k)
    trainer_ = std::make_unique<Trainer>(cfg, num_classes_, dist.group(), dist.rank(), dist.world_size(),
                                         (steps_ + k - 1) / k, runtime_, dist.local_allreduce());
    if (runtime_->prefetch())
      data_.pin_rings([rt = runtime_](void* p, size_t n) { return rt->pin_host(p, n); });
    trainer_->set_timeline(&timeline_);
    eval_splits_ = choose_eval_splits();
    if (!resume_path.empty()) resume(resume_path);
  }

  // Returns true when a stop signal ended the run early (after a checkpoint).
  bool run() {
    int64_t params = 0;
    for (const auto& p : trainer_->model()->parameters()) params += p.numel();
    reporter_.start(dist_.world_size(), steps_, num_classes_, params, global_step_, data_.info().class_names);
    const auto start = Clock::now();
    for (int epoch = static_cast<int>(start_epoch_); epoch < cfg_.train.epochs; ++epoch) {
      const EpochPlan plan = plan_epoch(epoch);
      request_batches(plan);
      const EpochSummary train = train_epoch(epoch, plan.first, plan.end);
      if (train.stopped) return true;
      if (plan.ends_mid_epoch) {
        if (plan.end > plan.first) save_step_checkpoint(epoch, plan.end);
        log_rank0("train.max_steps ({}) reached at epoch {} step {}", cfg_.train.max_steps, epoch + 1, plan.end);
        break;
      }
      if (end_epoch(epoch, train, plan.splits)) break;  // early stopping
      if (stop_voted_at_epoch_end(epoch)) return true;
    }
    finish_run(seconds_since(start));
    return false;
  }

  // Collective (evaluation).
  void evaluate_checkpoint(const std::string& path, const std::string& split) {
    const SplitMeta* meta = data_.info().find(split);
    if (!meta) CONVOY_USER_ERROR("--split " << split << ": the dataset has no such split");
    CheckpointMeta m = load_checkpoint(path, *trainer_->model(), nullptr);
    if (m.class_names != data_.info().class_names)
      CONVOY_USER_ERROR("checkpoint " << path << " was trained on other classes than this dataset's ("
                                      << m.class_names.size() << " vs " << data_.info().class_names.size() << ")");
    log_rank0("evaluating {} (epoch {}, global step {}) on {} ({} samples) with {} rank(s)", path, m.epoch,
              m.global_step, split, meta->num_samples, dist_.world_size());
    data_.request(split, 0, 0, meta->steps_per_epoch);
    const auto t0 = Clock::now();
    const ClassificationReport r = report_of(evaluate(split, 0));
    reporter_.checkpoint_eval(path, split, m.global_step, r, seconds_since(t0));
  }

 private:
  // ---- set-up ----

  int64_t train_steps_per_epoch() const {
    const SplitMeta* train = data_.info().find("train");
    CONVOY_CHECK(train, "the data service has no train split");
    int64_t steps = static_cast<int64_t>(train->steps_per_epoch);
    if (cfg_.train.max_steps_per_epoch > 0) steps = std::min(steps, cfg_.train.max_steps_per_epoch);
    if (steps == 0)
      CONVOY_USER_ERROR("the training split (" << train->num_samples << " samples) is smaller than one global batch of "
                                               << dist_.world_size() * cfg_.data.batch_size
                                               << " with data.drop_last on; lower data.batch_size");
    return steps;
  }

  // train.eval_splits, or the dataset's val and test; "none": no evaluation.
  std::vector<std::string> choose_eval_splits() const {
    std::vector<std::string> splits = cfg_.train.eval_splits;
    if (splits == std::vector<std::string>{"none"}) return {};
    if (splits.empty())
      for (const char* s : {"val", "test"})
        if (data_.info().find(s)) splits.push_back(s);
    for (const auto& s : splits)
      if (!data_.info().find(s)) CONVOY_USER_ERROR("train.eval_splits: the dataset has no '" << s << "' split");
    return splits;
  }

  // Where best.ckpt's metric is measured: val when evaluated, else the first
  // evaluated split.
  std::string selection_split() const {
    if (eval_splits_.empty()) return "none";
    return std::find(eval_splits_.begin(), eval_splits_.end(), "val") != eval_splits_.end() ? "val" : eval_splits_[0];
  }

  void resume(const std::string& path) {
    CheckpointMeta m = load_checkpoint(path, *trainer_->model(), &trainer_->optimizer());
    if (m.class_names != data_.info().class_names)
      CONVOY_USER_ERROR("checkpoint " << path << " was trained on other classes than this dataset's");
    if (m.world_size != dist_.world_size() && dist_.rank() == 0)
      spdlog::warn("resuming a {}-rank checkpoint with {} ranks: training continues, but not bit-identically",
                   m.world_size, dist_.world_size());
    if (!m.has_scaler_state && trainer_->scaler().enabled() && dist_.rank() == 0)
      spdlog::warn("checkpoint {} holds no loss-scaler state (an older file): loss scaling starts again at scale {} "
                   "instead of where the run was, so the resumed steps may differ from an uninterrupted run's",
                   path, m.loss_scale);
    trainer_->scaler().restore(m.loss_scale, m.scaler_good_steps);
    start_epoch_ = m.epoch;
    start_step_ = m.next_step;
    global_step_ = m.global_step;
    best_.restore_from(m);
    reporter_.resume(path, start_epoch_, start_step_, global_step_);
  }

  // ---- an epoch ----

  EpochPlan plan_epoch(int epoch) const {
    EpochPlan p;
    p.epoch = epoch;
    p.first = epoch == start_epoch_ ? start_step_ : 0;
    // train.max_steps: the run ends after that many global steps, maybe
    // mid-epoch (then with a step checkpoint and no evaluation).
    p.end = steps_;
    if (cfg_.train.max_steps > 0)
      p.end = std::min(p.end, p.first + std::max<int64_t>(0, cfg_.train.max_steps - global_step_) *
                                            cfg_.train.accumulation_steps);
    p.ends_mid_epoch = p.end < steps_;
    const bool last = epoch + 1 == cfg_.train.epochs;
    if (!p.ends_mid_epoch)
      for (const auto& s : eval_splits_)
        if (s != "test" || cfg_.train.eval_test_each_epoch || last) p.splits.push_back(s);
    return p;
  }

  // The whole epoch's batches, queued up front so the service never idles.
  void request_batches(const EpochPlan& p) {
    const auto epoch = static_cast<uint32_t>(p.epoch);
    if (p.first < p.end)
      data_.request("train", epoch, static_cast<uint64_t>(p.first), static_cast<uint64_t>(p.end - p.first));
    for (const auto& s : p.splits) data_.request(s, epoch, 0, data_.info().find(s)->steps_per_epoch);
  }

  // Collective (train_step; the train lines' and the epoch's mean loss).
  EpochSummary train_epoch(int epoch, int64_t first, int64_t end) {
    const auto t0 = Clock::now();
    const std::string label = fmt::format("epoch {}/{}", epoch + 1, cfg_.train.epochs);
    const int64_t accumulation = cfg_.train.accumulation_steps;
    double epoch_loss = 0;
    int64_t taken = 0;
    EpochSummary s;
    Window w;
    w.start = t0;
    std::optional<DeviceBatch> ahead;  // the next step's batch, already on its way to the GPU
    for (int64_t step = first; step < end; ++step) {
      timeline_.set_step(global_step_);
      const int64_t wait_start = Timeline::now_us();
      DeviceBatch batch = ahead ? std::move(*ahead) : take("train", epoch, static_cast<uint64_t>(step));
      ahead.reset();
      // On a GPU the next batch's copy runs on a side stream while this
      // step computes; waiting for it to arrive counts as data wait.
      if (runtime_->prefetch() && step + 1 < end) ahead = take("train", epoch, static_cast<uint64_t>(step + 1));
      const int64_t wait_end = Timeline::now_us();
      timeline_.span("data wait", "data", wait_start, wait_end);
      batch.ready();
      // Gradient accumulation: micro-batch `micro` of `micros` (the epoch's
      // last group may be shorter); the optimizer steps after the last.
      const int micro = static_cast<int>(step % accumulation);
      const int micros = static_cast<int>(std::min<int64_t>(accumulation, steps_ - (step - micro)));
      const StepResult r = trainer_->train_step(batch.pixels, batch.labels, global_step_, g_stop_requested.load(),
                                                micro, micros);
      w.add(r, (wait_end - wait_start) / 1e3);
      epoch_loss += r.loss;
      ++taken;
      show_progress(label, epoch, step, taken, seconds_since(t0), r);
      if (micro + 1 < micros) continue;
      ++global_step_;
      ++w.steps;
      timeline_.finish_if_done(global_step_, run_dir_);
      if ((step + 1) % (cfg_.train.log_every_steps * accumulation) == 0 || step + 1 == steps_) {
        report_window(epoch, step, r, w);
        w = Window();
      }
      if (r.stop) {
        progress_.clear();
        save_step_checkpoint(epoch, step + 1);
        log_rank0("stop requested: checkpoint at epoch {} step {} (global step {}); exiting", epoch + 1, step + 1,
                  global_step_);
        s.stopped = true;
        return s;
      }
      // The last step's checkpoint is the epoch-end one, written after eval
      // at the same global step: writing it here too would be done twice.
      if (step + 1 < steps_ && periodic_checkpoint_due()) save_step_checkpoint(epoch, step + 1);
    }
    progress_.clear();
    s.seconds = seconds_since(t0);
    s.train_loss = trainer_->collective_mean(taken ? epoch_loss / taken : 0, global_step_);
    s.images_per_sec = images_per_step() * taken / std::max(s.seconds, 1e-9);
    return s;
  }

  // The progress line with the epoch's ETA and the run's: the remaining
  // batches at this epoch's pace, plus the last epoch's evaluation time for
  // each evaluation still to come.
  void show_progress(const std::string& label, int epoch, int64_t step, int64_t taken, double elapsed,
                     const StepResult& r) {
    const double per_batch = elapsed / static_cast<double>(std::max<int64_t>(taken, 1));
    const int64_t epochs_after = cfg_.train.epochs - epoch - 1;
    const double run_eta = per_batch * static_cast<double>(steps_ - (step + 1) + steps_ * epochs_after) +
                           last_eval_seconds_ * static_cast<double>(epochs_after + 1);
    progress_.update(label, step + 1, steps_, elapsed, images_per_step() * taken / std::max(elapsed, 1e-9), r.loss,
                     r.lr, run_eta);
  }

  // A train line for the window ending at `step`. Collective (the window's
  // mean loss across ranks); only rank 0's reporter writes.
  void report_window(int epoch, int64_t step, const StepResult& r, const Window& w) {
    TrainWindow t;
    t.loss = trainer_->collective_mean(w.loss / static_cast<double>(w.batches), global_step_);
    t.epoch = epoch;
    t.step = step;
    t.global_step = global_step_;
    t.lr = r.lr;
    t.images_per_sec = images_per_step() * w.batches / std::max(seconds_since(w.start), 1e-9);
    // Rank 0's step time by phase: the mean per optimizer step over the
    // window (with accumulation a step holds several micro-batches).
    const double n = static_cast<double>(w.steps);
    t.data_wait_ms = w.wait_ms / n;
    t.forward_ms = w.times.forward / n;
    t.backward_ms = w.times.backward / n;
    t.exposed_comm_ms = w.times.exposed_comm / n;
    t.optimizer_ms = w.times.optimizer / n;
    t.allreduce_total_ms = w.times.allreduce / n;
    t.shards = data_.shard_stats();
    t.loss_scaling = trainer_->scaler().enabled();
    t.loss_scale = r.loss_scale;
    t.skipped_steps = static_cast<int64_t>(trainer_->scaler().skipped());
    if (cfg_.data_service.services_per_node > 1) progress_.clear();
    reporter_.train_window(t);
  }

  // Evaluates, reports, checkpoints (best.ckpt by train.best_metric on the
  // selection split). Returns true when early stopping ends the run; every
  // rank decides alike from the reduced reports. Collective (buffer sync,
  // evaluation, the data-error count).
  bool end_epoch(int epoch, const EpochSummary& train, const std::vector<std::string>& splits) {
    if (cfg_.distributed.broadcast_buffers != BufferSync::kNone) trainer_->sync_buffers();
    EpochReport e;
    e.epoch = epoch;
    e.global_step = global_step_;
    e.train_loss = train.train_loss;
    e.images_per_sec = train.images_per_sec;
    e.seconds = train.seconds;
    const auto eval_start = Clock::now();
    for (const auto& s : splits) e.evals.emplace_back(s, report_of(evaluate(s, epoch)));
    if (!splits.empty()) last_eval_seconds_ = seconds_since(eval_start);
    e.data_errors = static_cast<int64_t>(
        trainer_->collective_sum(static_cast<double>(errors_), global_step_, "data error count"));
    e.error_examples = error_examples_;
    errors_ = 0;
    error_examples_.clear();
    reporter_.epoch_end(e);

    const ClassificationReport* selected = nullptr;
    for (const auto& [split, r] : e.evals)
      if (!selected || split == selection_split()) selected = &r;
    BestTracker::Verdict verdict;
    if (selected)
      verdict = best_.observe(*selected, epoch);
    else
      best_.observe_nothing();
    if (verdict.stop) reporter_.early_stop(epoch, best_);
    save_step_checkpoint(epoch + 1, 0);
    if (verdict.best && dist_.rank() == 0) {
      store_.save_best(*trainer_->model(), trainer_->optimizer(), meta(epoch + 1, 0));
      write_mask_samples();
    }
    return verdict.stop;
  }

  // A stop asked for during evaluation is honoured at the epoch boundary
  // (the epoch-end checkpoint already holds the position). Collective.
  bool stop_voted_at_epoch_end(int epoch) {
    if (trainer_->collective_sum(g_stop_requested.load() ? 1 : 0, global_step_, "stop vote") == 0) return false;
    log_rank0("stop requested: checkpoint at the end of epoch {}; exiting", epoch + 1);
    return true;
  }

  // Collective (the timeline parts).
  void finish_run(double seconds) {
    finish_timeline();
    reporter_.end(seconds, best_, selection_split(), global_step_, parameter_checksum(*trainer_->model()));
  }

  // ---- batches and evaluation ----

  int64_t images_per_step() const { return static_cast<int64_t>(cfg_.data.batch_size) * dist_.world_size(); }

  // The batch (split, epoch, step) from the data service, on its way to the
  // training device; its slot goes back once the device has it.
  DeviceBatch take(const std::string& split, int epoch, uint64_t step) {
    auto host = std::make_shared<Batch>(data_.next(split, static_cast<uint32_t>(epoch), step));
    note_data_errors(*host);
    if (!trainer_->segmentation()) return runtime_->upload(host->pixels, host->labels, host);
    // A segmentation model learns from the masks (padding: all unlabelled).
    const CropBatch crops = crop_batch(*host, cfg_.data.image.channels);
    return runtime_->upload(crops.images, crops.masks, host);
  }

  // Segmentation evaluation's batch: whole images of their own sizes, on the
  // host (the trainer moves each group of them to the device).
  std::vector<ScoredSample> take_scored(const std::string& split, int epoch, uint64_t step) {
    const Batch host = data_.next(split, static_cast<uint32_t>(epoch), step);
    note_data_errors(host);
    return scored_samples(host, cfg_.data.image.channels);
  }

  void note_data_errors(const Batch& batch) {
    reporter_.data_service_restarts(data_.take_restarts(), global_step_);
    errors_ += batch.header.errors;
    for (const auto& f : batch.corrupt_files)
      if (error_examples_.size() < 5 &&
          std::find(error_examples_.begin(), error_examples_.end(), f) == error_examples_.end())
        error_examples_.push_back(f);
  }

  ClassificationReport report_of(const EvalSums& sums) const {
    ClassificationReport r = summarize(sums, data_.info().class_names);
    r.pixels = trainer_->segmentation();
    return r;
  }

  // Segmentation, rank 0: the first samples of the selection split's first
  // batch, as the model evaluating them saw and labelled them; written to
  // mask-samples.png (the report's grid) when that evaluation is the best.
  static constexpr size_t kMaskSamples = 4;
  std::vector<MaskSample> mask_samples_;

  void write_mask_samples() {
    if (mask_samples_.empty()) return;
    try {
      write_file_atomic(join_path(run_dir_, "mask-samples.png"),
                        mask_grid_png(mask_samples_, cfg_.data.segmentation.ignore_index));
    } catch (const std::exception& e) {
      spdlog::warn("could not write mask-samples.png: {}", e.what());
    }
  }

  // Collective (the sums, reduced across ranks).
  EvalSums evaluate(const std::string& split, int epoch) {
    EvalSums sums(trainer_->eval_classes());
    const uint64_t steps = data_.info().find(split)->steps_per_epoch;
    const auto t0 = Clock::now();
    const std::string label = fmt::format("eval {} {}/{}", split, epoch + 1, cfg_.train.epochs);
    const bool keep = dist_.rank() == 0 && trainer_->segmentation() && split == selection_split();
    if (keep) mask_samples_.clear();
    for (uint64_t step = 0; step < steps; ++step) {
      if (trainer_->segmentation()) {
        trainer_->eval_segmentation(take_scored(split, epoch, step), &sums, keep ? &mask_samples_ : nullptr,
                                    kMaskSamples);
      } else {
        DeviceBatch batch = take(split, epoch, step);
        batch.ready();
        trainer_->eval_batch(batch.pixels, batch.labels, &sums);
      }
      const double elapsed = seconds_since(t0);
      progress_.update(label, static_cast<int64_t>(step + 1), static_cast<int64_t>(steps), elapsed,
                       static_cast<double>(images_per_step()) * (step + 1) / std::max(elapsed, 1e-9), NAN, NAN, NAN);
    }
    progress_.clear();
    return trainer_->collective_reduce(sums, global_step_);
  }

  // ---- checkpoints ----

  CheckpointMeta meta(int64_t epoch, int64_t next_step) const {
    CheckpointMeta m;
    m.epoch = epoch;
    m.next_step = next_step;
    m.global_step = global_step_;
    m.world_size = dist_.world_size();
    best_.save_to(&m);
    m.class_names = data_.info().class_names;
    m.config_text = cfg_.resolved_text;
    m.loss_scale = trainer_->scaler().scale();
    m.scaler_good_steps = trainer_->scaler().good_steps();
    return m;
  }

  // Rank 0 writes; other ranks return at once.
  void save_step_checkpoint(int64_t epoch, int64_t next_step) {
    if (dist_.rank() != 0) return;
    store_.save_step(*trainer_->model(), trainer_->optimizer(), meta(epoch, next_step));
    last_checkpoint_ = Clock::now();
  }

  bool periodic_checkpoint_due() const {
    const auto& t = cfg_.train;
    if (t.checkpoint_every_steps > 0 && global_step_ % t.checkpoint_every_steps == 0) return true;
    return t.checkpoint_every_minutes > 0 && seconds_since(last_checkpoint_) >= 60.0 * t.checkpoint_every_minutes;
  }

  // Every rank writes its part of the timeline once its window is over (or
  // the run ends first); the all-reduce tells rank 0 when all parts exist.
  // Collective.
  void finish_timeline() {
    if (cfg_.train.timeline_steps <= 0) return;
    timeline_.finish_if_done(std::numeric_limits<int64_t>::max(), run_dir_);
    const double parts = trainer_->collective_sum(timeline_.written() ? 1 : 0, global_step_, "timeline parts");
    if (dist_.rank() == 0 && static_cast<int>(parts) == dist_.world_size()) {
      std::string path = merge_timelines(run_dir_, dist_.world_size());
      if (!path.empty())
        log_rank0("timeline of steps {}-{}: {}", cfg_.train.timeline_start,
                  cfg_.train.timeline_start + cfg_.train.timeline_steps - 1, path);
    }
  }

  const Config& cfg_;
  Distributed& dist_;
  DataClient& data_;
  std::shared_ptr<DeviceRuntime> runtime_;
  std::string run_dir_;
  RunReporter reporter_;
  BestTracker best_;
  Timeline timeline_;
  ProgressLine progress_;
  CheckpointStore store_;
  Clock::time_point last_checkpoint_;
  int64_t steps_ = 0;  // train batches per epoch (per rank)
  int num_classes_ = 0;
  int64_t start_epoch_ = 0, start_step_ = 0;
  int64_t global_step_ = 0;
  double last_eval_seconds_ = 0;  // the last epoch's evaluation, for the run's ETA
  int64_t errors_ = 0;
  std::vector<std::string> error_examples_;
  std::vector<std::string> eval_splits_;
  std::unique_ptr<Trainer> trainer_;
};

TrainingLoop::TrainingLoop(const Config& cfg, Distributed& dist, DataClient& data, const std::string& run_dir,
                           const std::string& resume_path, std::shared_ptr<DeviceRuntime> runtime)
    : impl_(std::make_unique<Impl>(cfg, dist, data, run_dir, resume_path, std::move(runtime))) {}

TrainingLoop::~TrainingLoop() = default;

bool TrainingLoop::run() { return impl_->run(); }

void TrainingLoop::evaluate_checkpoint(const std::string& checkpoint, const std::string& split) {
  impl_->evaluate_checkpoint(checkpoint, split);
}

}  // namespace convoy
