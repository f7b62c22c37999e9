// The training loop (see training_loop.h).
#include "worker/training_loop.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <limits>
#include <optional>

#include "common/config.h"
#include "common/error.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/tensorboard.h"
#include "models/checkpoint.h"
#include "report/run_report.h"
#include "worker/data_client.h"
#include "worker/dist/device.h"
#include "worker/dist/rendezvous.h"
#include "worker/dist/timeline.h"
#include "worker/progress.h"
#include "worker/trainer.h"

namespace convoy {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Set by SIGTERM/SIGUSR1 (what Slurm and the launcher send before stopping
// a job): every rank finishes its current step, rank 0 checkpoints, and all
// exit 0. The vote travels with the gradients, so all stop after one step.
std::atomic<bool> g_stop_requested{false};

extern "C" void on_stop_signal(int) { g_stop_requested.store(true); }

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  CONVOY_SYSCALL(::sigaction(SIGTERM, &sa, nullptr));
  CONVOY_SYSCALL(::sigaction(SIGUSR1, &sa, nullptr));
}

namespace {

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

}  // namespace

class TrainingLoop::Impl {
 public:
  Impl(const Config& cfg, Distributed& dist, DataClient& data, const std::string& run_dir,
         const std::string& resume_path, std::shared_ptr<DeviceRuntime> runtime)
      : cfg_(cfg), dist_(dist), data_(data), runtime_(std::move(runtime)), run_dir_(run_dir),
        metrics_(dist.rank() == 0 ? join_path(run_dir, "metrics.jsonl") : ""),
        tb_(dist.rank() == 0 ? run_dir : ""),
        timeline_(dist.rank(), cfg.train.timeline_start, cfg.train.timeline_steps),
        progress_(progress_mode(dist.rank())),
        store_(join_path(run_dir, "checkpoints"), cfg.train.keep_checkpoints), last_checkpoint_(Clock::now()) {
    const SplitMeta* train = data.info().find("train");
    CONVOY_CHECK(train, "the data service has no train split");
    steps_ = static_cast<int64_t>(train->steps_per_epoch);
    if (cfg.train.max_steps_per_epoch > 0) steps_ = std::min(steps_, cfg.train.max_steps_per_epoch);
    if (steps_ == 0)
      CONVOY_USER_ERROR("the training split (" << train->num_samples << " samples) is smaller than one global batch of "
                                               << dist.world_size() * cfg.data.batch_size
                                               << " with data.drop_last on; lower data.batch_size");
    num_classes_ = cfg.model.num_classes > 0 ? cfg.model.num_classes : static_cast<int>(data.info().class_names.size());
    const int64_t k = cfg.train.accumulation_steps;  // optimizer steps per epoch: ceil(steps / k)
    trainer_ = std::make_unique<Trainer>(cfg, num_classes_, dist.group(), dist.rank(), dist.world_size(),
                                         (steps_ + k - 1) / k, runtime_, dist.local_allreduce());
    if (runtime_->prefetch())
      data_.pin_rings([rt = runtime_](void* p, size_t n) { return rt->pin_host(p, n); });
    trainer_->set_timeline(&timeline_);
    eval_splits_ = cfg.train.eval_splits;
    if (eval_splits_ == std::vector<std::string>{"none"})
      eval_splits_.clear();
    else if (eval_splits_.empty())
      for (const char* s : {"val", "test"})
        if (data.info().find(s)) eval_splits_.push_back(s);
    for (const auto& s : eval_splits_)
      if (!data.info().find(s)) CONVOY_USER_ERROR("train.eval_splits: the dataset has no '" << s << "' split");
    if (!resume_path.empty()) resume(resume_path);
  }

  // Returns true when a stop signal ended the run early (after a checkpoint).
  bool run() {
    int64_t params = 0;
    for (const auto& p : trainer_->model()->parameters()) params += p.numel();
    log_rank0("training {} ({:.2f}M parameters, {} classes) on {} rank(s) x batch {}, {} steps/epoch, {} epochs, "
              "{} thread(s)/rank, amp {}",
              cfg_.model.arch, params / 1e6, num_classes_, dist_.world_size(), cfg_.data.batch_size, steps_,
              cfg_.train.epochs, torch::get_num_threads(), cfg_.train.amp);
    metrics_.write(JsonLine()
                       .add("event", "start")
                       .add("world_size", dist_.world_size())
                       .add("batch_size", cfg_.data.batch_size)
                       .add("steps_per_epoch", steps_)
                       .add("epochs", cfg_.train.epochs)
                       .add("model", cfg_.model.arch)
                       .add("amp", cfg_.train.amp)
                       .add("channels_last", cfg_.model.channels_last.value_or(false))
                       .add("conv_algorithm", cfg_.model.conv_algorithm)
                       .add("parameters", params)
                       .add("global_step", global_step_)
                       .add("classes", data_.info().class_names));
    auto start = Clock::now();
    for (int epoch = static_cast<int>(start_epoch_); epoch < cfg_.train.epochs; ++epoch) {
      bool last = epoch + 1 == cfg_.train.epochs;
      int64_t first = epoch == start_epoch_ ? start_step_ : 0;
      std::vector<std::string> splits;
      for (const auto& s : eval_splits_)
        if (s != "test" || cfg_.train.eval_test_each_epoch || last) splits.push_back(s);
      // train.max_steps: the run ends after that many global steps, maybe
      // mid-epoch (then with a step checkpoint and no evaluation).
      int64_t end = steps_;
      if (cfg_.train.max_steps > 0)
        end = std::min(end, first + std::max<int64_t>(0, cfg_.train.max_steps - global_step_) *
                                        cfg_.train.accumulation_steps);
      // Queue the whole epoch's batches up front, so the service never idles.
      if (first < end)
        data_.request("train", static_cast<uint32_t>(epoch), static_cast<uint64_t>(first),
                      static_cast<uint64_t>(end - first));
      if (end < steps_) {
        train_epoch(epoch, first, end);
        if (dist_.rank() == 0 && end > first) save_step_checkpoint(epoch, end);
        log_rank0("train.max_steps ({}) reached at epoch {} step {}", cfg_.train.max_steps, epoch + 1, end);
        break;
      }
      for (const auto& s : splits)
        data_.request(s, static_cast<uint32_t>(epoch), 0, data_.info().find(s)->steps_per_epoch);
      EpochSummary train = train_epoch(epoch, first, end);
      if (train.stopped) return true;
      if (end_epoch(epoch, train, splits)) break;  // early stopping
      // A stop asked for during evaluation is honoured here, at the boundary
      // (the epoch-end checkpoint already holds the position).
      if (trainer_->collective_sum(g_stop_requested.load() ? 1 : 0, global_step_, "stop vote") > 0) {
        log_rank0("stop requested: checkpoint at the end of epoch {}; exiting", epoch + 1);
        return true;
      }
    }
    double total = seconds_since(start);
    finish_timeline();
    std::string checksum = parameter_checksum(*trainer_->model());
    metrics_.write(JsonLine()
                       .add("event", "end")
                       .add("seconds", total)
                       .add("best_accuracy", best_acc_)
                       .add("best_metric", cfg_.train.best_metric)
                       .add("best_value", best_value_)
                       .add("global_step", global_step_)
                       .add("param_checksum", checksum));
    log_rank0("done in {:.1f} s; best {} accuracy {:.4f}; parameter checksum {}; run directory {}", total,
              eval_splits_.empty() ? "-" : (data_.info().find("val") ? "val" : eval_splits_[0]), best_acc_, checksum,
              run_dir_);
    if (dist_.rank() == 0) {
      try {
        log_rank0("report: {}", write_report(run_dir_));
      } catch (const std::exception& e) {
        spdlog::warn("could not write the run report: {}", e.what());  // the run itself succeeded
      }
    }
    return false;
  }

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
    auto t0 = Clock::now();
    ClassificationReport r = summarize(evaluate(split, 0), data_.info().class_names);
    if (dist_.rank() != 0) return;
    JsonLine line;
    line.add("event", "eval").add("split", split).add("checkpoint", path).add("global_step", m.global_step);
    add_report_json(&line, r);
    line.add("seconds", seconds_since(t0));
    metrics_.write(line);
    write_file_atomic(join_path(run_dir_, "eval-" + split + ".json"), line.str() + "\n");
    write_file_atomic(join_path(run_dir_, "eval-" + split + ".txt"), report_text(r, split + " split of " + path));
    std::vector<std::vector<double>> cells;
    for (const auto& row : r.confusion) cells.emplace_back(row.begin(), row.end());
    std::vector<std::string> names;
    for (const auto& c : r.per_class) names.push_back(c.name);
    write_file_atomic(join_path(run_dir_, "confusion-" + split + ".svg"),
                      svg_heat_map("Confusion matrix, " + split, cells, names) + "\n");
  }

 private:
  void resume(const std::string& path) {
    CheckpointMeta m = load_checkpoint(path, *trainer_->model(), &trainer_->optimizer());
    if (m.class_names != data_.info().class_names)
      CONVOY_USER_ERROR("checkpoint " << path << " was trained on other classes than this dataset's");
    if (m.world_size != dist_.world_size() && dist_.rank() == 0)
      spdlog::warn("resuming a {}-rank checkpoint with {} ranks: training continues, but not bit-identically",
                   m.world_size, dist_.world_size());
    trainer_->scaler().restore(m.loss_scale, m.scaler_good_steps);
    start_epoch_ = m.epoch;
    start_step_ = m.next_step;
    global_step_ = m.global_step;
    best_acc_ = m.best_accuracy;
    if (m.best_metric == cfg_.train.best_metric) {  // else the best so far is unknown
      best_value_ = m.best_value;
      evals_since_best_ = m.evals_since_best;
    }
    last_acc_ = m.val_accuracy;
    last_loss_ = m.val_loss;
    log_rank0("resuming from {}: epoch {}, step {} (global step {})", path, start_epoch_ + 1, start_step_,
              global_step_);
    metrics_.write(JsonLine()
                       .add("event", "resume")
                       .add("checkpoint", path)
                       .add("epoch", start_epoch_ + 1)
                       .add("step", global_step_));
  }

  CheckpointMeta meta(int64_t epoch, int64_t next_step) const {
    CheckpointMeta m;
    m.epoch = epoch;
    m.next_step = next_step;
    m.global_step = global_step_;
    m.world_size = dist_.world_size();
    m.val_accuracy = last_acc_;
    m.val_loss = last_loss_;
    m.best_accuracy = best_acc_;
    m.best_metric = cfg_.train.best_metric;
    m.best_value = best_value_;
    m.evals_since_best = evals_since_best_;
    m.class_names = data_.info().class_names;
    m.config_text = cfg_.resolved_text;
    m.loss_scale = trainer_->scaler().scale();
    m.scaler_good_steps = trainer_->scaler().good_steps();
    return m;
  }

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

  void note_data_errors(const Batch& batch) {
    for (const auto& r : data_.take_restarts()) {
      metrics_.write(JsonLine()
                         .add("event", "data_service_restart")
                         .add("shard", r.shard)
                         .add("step", global_step_)
                         .add("split", r.split)
                         .add("epoch", static_cast<int64_t>(r.epoch) + 1)
                         .add("epoch_step", static_cast<int64_t>(r.step))
                         .add("reason", r.reason));
    }
    errors_ += batch.header.errors;
    for (const auto& f : batch.corrupt_files)
      if (error_examples_.size() < 5 &&
          std::find(error_examples_.begin(), error_examples_.end(), f) == error_examples_.end())
        error_examples_.push_back(f);
  }

  // This rank's view of each data-service shard since the last train line:
  // its decode rate while filling, and how many batches wait in the ring.
  std::vector<JsonLine> shard_stats_json(std::string* line) {
    std::vector<JsonLine> out;
    last_shard_stats_ = data_.shard_stats();
    for (const auto& st : last_shard_stats_) {
      out.push_back(JsonLine()
                        .add("shard", st.shard)
                        .add("images_per_sec", static_cast<int64_t>(std::llround(st.images_per_sec)))
                        .add("queued", static_cast<int64_t>(st.queued)));
      *line += fmt::format(" | shard {} {:.0f} img/s, {} queued", st.shard, st.images_per_sec, st.queued);
    }
    return out;
  }

  // What a train line summarises: the batches and optimizer steps since the
  // previous line.
  struct Window {
    StepTimes times;
    double wait_ms = 0, loss = 0;
    int64_t batches = 0, steps = 0;
    Clock::time_point start = Clock::now();
  };

  // A train line: metrics.jsonl, TensorBoard and (with several shards) the
  // log, for the window ending at `step`. Collective (the window's mean
  // loss): every rank calls it, not only rank 0, which writes.
  void write_train_line(int epoch, int64_t step, const StepResult& r, const Window& w) {
    const int64_t images_per_step = static_cast<int64_t>(cfg_.data.batch_size) * dist_.world_size();
    double loss = trainer_->collective_mean(w.loss / w.batches, global_step_);
    double ips = images_per_step * w.batches / std::max(seconds_since(w.start), 1e-9);
    std::string shards_line;
    std::vector<JsonLine> shards_json = shard_stats_json(&shards_line);
    if (cfg_.data_service.services_per_node > 1) {
      progress_.clear();
      log_rank0("epoch {} step {}: loss {:.4f}, {:.0f} img/s; data{}", epoch + 1, step + 1, loss, ips, shards_line);
    }
    // Rank 0's step time, split by phase (mean per optimizer step over
    // the window; with accumulation a step holds several micro-batches).
    const double n = static_cast<double>(w.steps);
    // The phases add up to the step; the all-reduce total overlaps backward.
    const std::vector<std::pair<const char*, double>> phases = {
        {"data_wait", w.wait_ms / n},
        {"forward", w.times.forward / n},
        {"backward", w.times.backward / n},
        {"exposed_comm", w.times.exposed_comm / n},
        {"optimizer", w.times.optimizer / n}};
    JsonLine breakdown;
    for (const auto& [name, v] : phases) {
      breakdown.add(name, std::round(v * 1000) / 1000);  // microseconds are enough
      tb_.scalar(std::string("time/") + name + "_ms", global_step_, v);
    }
    JsonLine line;
    line.add("event", "train")
        .add("epoch", epoch + 1)
        .add("step", global_step_)
        .add("loss", loss)
        .add("lr", r.lr)
        .add("images_per_sec", ips)
        .add("breakdown_ms", breakdown)
        .add("allreduce_total_ms", w.times.allreduce / n)
        .add("data_shards", shards_json);
    if (trainer_->scaler().enabled())
      line.add("loss_scale", r.loss_scale).add("skipped_steps", static_cast<int64_t>(trainer_->scaler().skipped()));
    metrics_.write(line);
    tb_.scalar("time/allreduce_total_ms", global_step_, w.times.allreduce / n);
    if (trainer_->scaler().enabled()) {
      tb_.scalar("train/loss_scale", global_step_, r.loss_scale);
      tb_.scalar("train/skipped_steps", global_step_, static_cast<double>(trainer_->scaler().skipped()));
    }
    tb_.scalar("train/loss", global_step_, loss);
    tb_.scalar("train/lr", global_step_, r.lr);
    tb_.scalar("train/images_per_sec", global_step_, ips);
    for (const auto& st : last_shard_stats_)
      tb_.scalar("data/shard" + std::to_string(st.shard) + "_images_per_sec", global_step_, st.images_per_sec);
    tb_.flush();
  }

  EpochSummary train_epoch(int epoch, int64_t first, int64_t end) {
    auto t0 = Clock::now();
    double epoch_loss = 0;
    int64_t taken = 0;
    const int64_t images_per_step = static_cast<int64_t>(cfg_.data.batch_size) * dist_.world_size();
    std::string label = fmt::format("epoch {}/{}", epoch + 1, cfg_.train.epochs);
    EpochSummary s;
    Window w;
    w.start = t0;
    const int64_t accumulation = cfg_.train.accumulation_steps;
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
      w.wait_ms += (wait_end - wait_start) / 1e3;
      batch.ready();
      // Gradient accumulation: micro-batch `micro` of `micros` (the epoch's
      // last group may be shorter); the optimizer steps after the last.
      const int micro = static_cast<int>(step % accumulation);
      const int micros = static_cast<int>(std::min<int64_t>(accumulation, steps_ - (step - micro)));
      StepResult r = trainer_->train_step(batch.pixels, batch.labels, global_step_, g_stop_requested.load(), micro,
                                          micros);
      w.times.forward += r.times.forward;
      w.times.backward += r.times.backward;
      w.times.exposed_comm += r.times.exposed_comm;
      w.times.allreduce += r.times.allreduce;
      w.times.optimizer += r.times.optimizer;
      w.loss += r.loss;
      epoch_loss += r.loss;
      ++w.batches;
      ++taken;
      double elapsed = seconds_since(t0);
      progress_.update(label, step + 1, steps_, elapsed, images_per_step * taken / std::max(elapsed, 1e-9), r.loss,
                       r.lr);
      if (micro + 1 < micros) continue;
      ++global_step_;
      ++w.steps;
      timeline_.finish_if_done(global_step_, run_dir_);
      if ((step + 1) % (cfg_.train.log_every_steps * accumulation) == 0 || step + 1 == steps_) {
        write_train_line(epoch, step, r, w);
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
      if (step + 1 < steps_ && dist_.rank() == 0 && periodic_checkpoint_due()) save_step_checkpoint(epoch, step + 1);
    }
    progress_.clear();
    s.seconds = seconds_since(t0);
    s.train_loss = trainer_->collective_mean(taken ? epoch_loss / taken : 0, global_step_);
    s.images_per_sec = images_per_step * taken / std::max(s.seconds, 1e-9);
    return s;
  }

  // The value of train.best_metric in a report, and whether `v` beats `best`
  // by more than early_stopping_min_delta.
  double metric_of(const ClassificationReport& r) const {
    const auto& m = cfg_.train.best_metric;
    return m == "loss" ? r.loss : m == "macro_f1" ? r.macro_f1 : r.top1;
  }
  bool improves(double v, double best) const {
    if (std::isnan(best)) return true;
    const double d = cfg_.train.early_stopping_min_delta;
    return cfg_.train.best_metric == "loss" ? v < best - d : v > best + d;
  }

  // An eval event: the headline metrics always; per-class figures and the
  // confusion matrix while they stay small enough for one line.
  JsonLine eval_event(int epoch, const std::string& split, const ClassificationReport& r) const {
    JsonLine line;
    line.add("event", "eval").add("epoch", epoch + 1).add("split", split);
    add_report_json(&line, r, /*details=*/num_classes_ <= 100);
    return line;
  }

  // Evaluates, logs, checkpoints (best.ckpt by train.best_metric on the
  // selection split: val when there is one). Returns true when early
  // stopping ends the run; every rank decides alike from the reduced sums.
  // Collective (evaluation, the data-error count): every rank calls it.
  bool end_epoch(int epoch, const EpochSummary& train, const std::vector<std::string>& splits) {
    if (cfg_.distributed.broadcast_buffers != "none") trainer_->sync_buffers();
    std::string line = fmt::format("epoch {}/{}: train loss {:.4f}", epoch + 1, cfg_.train.epochs, train.train_loss);
    std::optional<ClassificationReport> selected;
    for (const auto& s : splits) {
      ClassificationReport r = summarize(evaluate(s, epoch), data_.info().class_names);
      metrics_.write(eval_event(epoch, s, r));
      tb_.scalar("eval/" + s + "/loss", global_step_, r.loss);
      tb_.scalar("eval/" + s + "/accuracy", global_step_, r.top1);
      tb_.scalar("eval/" + s + "/top5", global_step_, r.top5);
      tb_.scalar("eval/" + s + "/macro_f1", global_step_, r.macro_f1);
      line += fmt::format(" | {} loss {:.4f} acc {:.4f} f1 {:.4f}", s, r.loss, r.top1, r.macro_f1);
      if (!selected || s == "val") selected = r;
    }
    log_rank0("{} | {:.0f} img/s, {:.1f} s", line, train.images_per_sec, train.seconds);
    int64_t errors = static_cast<int64_t>(trainer_->collective_sum(static_cast<double>(errors_), global_step_,
                                                                      "data error count"));
    tb_.scalar("data/errors", global_step_, static_cast<double>(errors));
    tb_.scalar("train/epoch_loss", global_step_, train.train_loss);
    tb_.flush();
    if (errors > 0) {
      log_rank0("epoch {}: {} corrupt image(s) skipped", epoch + 1, errors);
      metrics_.write(JsonLine()
                         .add("event", "data_errors")
                         .add("epoch", epoch + 1)
                         .add("count", errors)
                         .add("examples", error_examples_));
    }
    errors_ = 0;
    error_examples_.clear();
    last_acc_ = selected ? selected->top1 : -1;
    last_loss_ = selected ? selected->loss : 0;
    if (selected) best_acc_ = std::max(best_acc_, selected->top1);
    const bool best = selected && improves(metric_of(*selected), best_value_);
    if (best) {
      best_value_ = metric_of(*selected);
      evals_since_best_ = 0;
    } else if (selected) {
      ++evals_since_best_;
    }
    const int patience = cfg_.train.early_stopping_patience;
    const bool stop = selected && patience > 0 && evals_since_best_ >= patience && epoch + 1 < cfg_.train.epochs;
    if (stop) {
      log_rank0("early stopping after epoch {}: {} has not improved for {} evaluation(s) (best {:.4f})", epoch + 1,
                cfg_.train.best_metric, evals_since_best_, best_value_);
      metrics_.write(JsonLine()
                         .add("event", "early_stop")
                         .add("epoch", epoch + 1)
                         .add("metric", cfg_.train.best_metric)
                         .add("best_value", best_value_)
                         .add("patience", patience));
    }
    if (dist_.rank() != 0) return stop;
    save_step_checkpoint(epoch + 1, 0);
    if (best) store_.save_best(*trainer_->model(), trainer_->optimizer(), meta(epoch + 1, 0));
    return stop;
  }

  // The batch (split, epoch, step) from the data service, on its way to the
  // training device; its slot goes back once the device has it.
  DeviceBatch take(const std::string& split, int epoch, uint64_t step) {
    auto host = std::make_shared<Batch>(data_.next(split, static_cast<uint32_t>(epoch), step));
    note_data_errors(*host);
    return runtime_->upload(host->pixels, host->labels, host);
  }

  EvalSums evaluate(const std::string& split, int epoch) {
    EvalSums sums(num_classes_);
    uint64_t steps = data_.info().find(split)->steps_per_epoch;
    auto t0 = Clock::now();
    const std::string label = fmt::format("eval {} {}/{}", split, epoch + 1, cfg_.train.epochs);
    const double images_per_step = static_cast<double>(cfg_.data.batch_size) * dist_.world_size();
    for (uint64_t step = 0; step < steps; ++step) {
      DeviceBatch batch = take(split, epoch, step);
      batch.ready();
      trainer_->eval_batch(batch.pixels, batch.labels, &sums);
      double elapsed = seconds_since(t0);
      progress_.update(label, static_cast<int64_t>(step + 1), static_cast<int64_t>(steps), elapsed,
                       images_per_step * (step + 1) / std::max(elapsed, 1e-9), NAN, NAN);
    }
    progress_.clear();
    return trainer_->collective_reduce(sums, global_step_);
  }

  // Every rank writes its part of the timeline once its window is over (or
  // the run ends first); the all-reduce tells rank 0 when all parts exist.
  void finish_timeline() {
    if (cfg_.train.timeline_steps <= 0) return;
    timeline_.finish_if_done(std::numeric_limits<int64_t>::max(), run_dir_);
    double parts = trainer_->collective_sum(timeline_.written() ? 1 : 0, global_step_, "timeline parts");
    if (dist_.rank() == 0 && static_cast<int>(parts) == dist_.world_size()) {
      std::string path = merge_timelines(run_dir_, dist_.world_size());
      if (!path.empty()) log_rank0("timeline of steps {}-{}: {}", cfg_.train.timeline_start,
                                   cfg_.train.timeline_start + cfg_.train.timeline_steps - 1, path);
    }
  }

  const Config& cfg_;
  Distributed& dist_;
  DataClient& data_;
  std::shared_ptr<DeviceRuntime> runtime_;
  std::vector<DataShardStats> last_shard_stats_;
  std::string run_dir_;
  MetricsLog metrics_;
  TensorBoardWriter tb_;
  Timeline timeline_;
  ProgressLine progress_;
  CheckpointStore store_;
  Clock::time_point last_checkpoint_;
  int64_t steps_ = 0;
  int num_classes_ = 0;
  int64_t start_epoch_ = 0, start_step_ = 0;
  int64_t global_step_ = 0;
  double best_acc_ = -1, last_acc_ = -1, last_loss_ = 0;
  double best_value_ = std::numeric_limits<double>::quiet_NaN();  // of train.best_metric
  int64_t evals_since_best_ = 0;
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
