// Rank 0's reporting (see run_reporter.h).
#include "worker/run_reporter.h"

#include <spdlog/spdlog.h>

#include <cmath>

#include "common/config.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/metrics_schema.h"
#include "report/run_report.h"
#include "worker/best_tracker.h"

namespace convoy {

RunReporter::RunReporter(const Config& cfg, int rank, const std::string& run_dir)
    : cfg_(cfg), writes_(rank == 0), run_dir_(run_dir),
      metrics_(writes_ ? join_path(run_dir, "metrics.jsonl") : ""), tb_(writes_ ? run_dir : "") {}

void RunReporter::start(int world_size, int64_t steps_per_epoch, int num_classes, int64_t parameters,
                        int64_t global_step, const std::vector<std::string>& classes) {
  if (!writes_) return;
  spdlog::info("training {} ({:.2f}M parameters, {} classes) on {} rank(s) x batch {}, {} steps/epoch, {} epochs, "
               "{} thread(s)/rank, amp {}",
               cfg_.model.arch, parameters / 1e6, num_classes, world_size, cfg_.data.batch_size, steps_per_epoch,
               cfg_.train.epochs, torch::get_num_threads(), name_of(cfg_.train.amp));
  metrics_.write(JsonLine()
                     .add("event", metrics::kStart)
                     .add("world_size", world_size)
                     .add("batch_size", cfg_.data.batch_size)
                     .add("steps_per_epoch", steps_per_epoch)
                     .add("epochs", cfg_.train.epochs)
                     .add("model", cfg_.model.arch)
                     .add("amp", name_of(cfg_.train.amp))
                     .add("channels_last", cfg_.model.channels_last.value_or(false))
                     .add("conv_algorithm", name_of(cfg_.model.conv_algorithm))
                     .add("parameters", parameters)
                     .add("global_step", global_step)
                     .add("classes", classes));
}

void RunReporter::resume(const std::string& checkpoint, int64_t epoch, int64_t step, int64_t global_step) {
  if (!writes_) return;
  spdlog::info("resuming from {}: epoch {}, step {} (global step {})", checkpoint, epoch + 1, step, global_step);
  metrics_.write(JsonLine()
                     .add("event", metrics::kResume)
                     .add("checkpoint", checkpoint)
                     .add("epoch", epoch + 1)
                     .add("step", global_step));
}

void RunReporter::data_service_restarts(const std::vector<DataRestart>& restarts, int64_t global_step) {
  if (!writes_) return;
  for (const auto& r : restarts)
    metrics_.write(JsonLine()
                       .add("event", metrics::kDataServiceRestart)
                       .add("shard", r.shard)
                       .add("step", global_step)
                       .add("split", r.split)
                       .add("epoch", static_cast<int64_t>(r.epoch) + 1)
                       .add("epoch_step", static_cast<int64_t>(r.step))
                       .add("reason", r.reason));
  // Crashes apart: a bug to look into, not an outside kill.
  for (const auto& r : restarts) {
    if (r.crash.empty()) continue;
    spdlog::error("data service shard {} crashed ({}) and was restarted: {}", r.shard, r.crash, r.reason);
    metrics_.write(JsonLine()
                       .add("event", metrics::kDataServiceCrash)
                       .add("shard", r.shard)
                       .add("signal", r.crash)
                       .add("step", global_step)
                       .add("split", r.split)
                       .add("epoch", static_cast<int64_t>(r.epoch) + 1)
                       .add("epoch_step", static_cast<int64_t>(r.step)));
  }
}

void RunReporter::train_window(const TrainWindow& w) {
  if (!writes_) return;
  std::string shards_line;
  std::vector<JsonLine> shards;
  for (const auto& st : w.shards) {
    shards.push_back(JsonLine()
                         .add("shard", st.shard)
                         .add("images_per_sec", static_cast<int64_t>(std::llround(st.images_per_sec)))
                         .add("queued", static_cast<int64_t>(st.queued)));
    shards_line += fmt::format(" | shard {} {:.0f} img/s, {} queued", st.shard, st.images_per_sec, st.queued);
  }
  if (cfg_.data_service.services_per_node > 1)
    spdlog::info("epoch {} step {}: loss {:.4f}, {:.0f} img/s; data{}", w.epoch + 1, w.step + 1, w.loss,
                 w.images_per_sec, shards_line);
  // The phases add up to the step; the all-reduce total overlaps backward.
  const std::vector<std::pair<const char*, double>> phases = {{"data_wait", w.data_wait_ms},
                                                              {"forward", w.forward_ms},
                                                              {"backward", w.backward_ms},
                                                              {"exposed_comm", w.exposed_comm_ms},
                                                              {"optimizer", w.optimizer_ms}};
  JsonLine breakdown;
  for (const auto& [name, v] : phases) {
    breakdown.add(name, std::round(v * 1000) / 1000);  // microseconds are enough
    tb_.scalar(std::string("time/") + name + "_ms", w.global_step, v);
  }
  JsonLine line;
  line.add("event", metrics::kTrain)
      .add("epoch", w.epoch + 1)
      .add("step", w.global_step)
      .add("loss", w.loss)
      .add("lr", w.lr)
      .add("images_per_sec", w.images_per_sec)
      .add("breakdown_ms", breakdown)
      .add("allreduce_total_ms", w.allreduce_total_ms)
      .add("data_shards", shards);
  if (w.loss_scaling) line.add("loss_scale", w.loss_scale).add("skipped_steps", w.skipped_steps);
  metrics_.write(line);
  tb_.scalar("time/allreduce_total_ms", w.global_step, w.allreduce_total_ms);
  if (w.loss_scaling) {
    tb_.scalar("train/loss_scale", w.global_step, w.loss_scale);
    tb_.scalar("train/skipped_steps", w.global_step, static_cast<double>(w.skipped_steps));
  }
  tb_.scalar("train/loss", w.global_step, w.loss);
  tb_.scalar("train/lr", w.global_step, w.lr);
  tb_.scalar("train/images_per_sec", w.global_step, w.images_per_sec);
  for (const auto& st : w.shards)
    tb_.scalar("data/shard" + std::to_string(st.shard) + "_images_per_sec", w.global_step, st.images_per_sec);
  tb_.flush();
}

// An eval event: the headline metrics always; per-class figures and the
// confusion matrix while they stay small enough for one line.
JsonLine RunReporter::eval_event(int epoch, const std::string& split, const ClassificationReport& r) const {
  JsonLine line;
  line.add("event", metrics::kEval).add("epoch", epoch + 1).add("split", split);
  add_report_json(&line, r, /*details=*/r.per_class.size() <= 100);
  return line;
}

void RunReporter::epoch_end(const EpochReport& e) {
  if (!writes_) return;
  std::string line = fmt::format("epoch {}/{}: train loss {:.4f}", e.epoch + 1, cfg_.train.epochs, e.train_loss);
  for (const auto& [split, r] : e.evals) {
    metrics_.write(eval_event(e.epoch, split, r));
    tb_.scalar("eval/" + split + "/loss", e.global_step, r.loss);
    tb_.scalar("eval/" + split + "/accuracy", e.global_step, r.top1);
    tb_.scalar("eval/" + split + "/top5", e.global_step, r.top5);
    tb_.scalar("eval/" + split + "/macro_f1", e.global_step, r.macro_f1);
    if (r.pixels) {
      tb_.scalar("eval/" + split + "/mean_iou", e.global_step, r.mean_iou);
      line += fmt::format(" | {} loss {:.4f} pixel acc {:.4f} mIoU {:.4f} dice {:.4f}", split, r.loss, r.top1,
                          r.mean_iou, r.macro_f1);
    } else {
      line += fmt::format(" | {} loss {:.4f} acc {:.4f} f1 {:.4f}", split, r.loss, r.top1, r.macro_f1);
    }
  }
  spdlog::info("{} | {:.0f} img/s, {:.1f} s", line, e.images_per_sec, e.seconds);
  tb_.scalar("data/errors", e.global_step, static_cast<double>(e.data_errors));
  tb_.scalar("train/epoch_loss", e.global_step, e.train_loss);
  tb_.flush();
  if (e.data_errors == 0) return;
  spdlog::info("epoch {}: {} corrupt image(s) skipped", e.epoch + 1, e.data_errors);
  metrics_.write(JsonLine()
                     .add("event", metrics::kDataErrors)
                     .add("epoch", e.epoch + 1)
                     .add("count", e.data_errors)
                     .add("examples", e.error_examples));
}

void RunReporter::early_stop(int epoch, const BestTracker& best) {
  if (!writes_) return;
  spdlog::info("early stopping after epoch {}: {} has not improved for {} evaluation(s) (best {:.4f})", epoch + 1,
               name_of(best.metric()), best.evals_since_best(), best.best_value());
  metrics_.write(JsonLine()
                     .add("event", metrics::kEarlyStop)
                     .add("epoch", epoch + 1)
                     .add("metric", name_of(best.metric()))
                     .add("best_value", best.best_value())
                     .add("patience", best.patience()));
}

void RunReporter::end(double seconds, const BestTracker& best, const std::string& selection_split_asked,
                      int64_t global_step, const std::string& param_checksum) {
  if (!writes_) return;
  // A run that ended before its first evaluation (train.max_steps) has no best.
  const std::string selection_split = best.best_accuracy() < 0 ? "none" : selection_split_asked;
  metrics_.write(JsonLine()
                     .add("event", metrics::kEnd)
                     .add("seconds", seconds)
                     .add("best_accuracy", best.best_accuracy())
                     .add("best_split", selection_split)
                     .add("best_metric", name_of(best.metric()))
                     .add("best_value", best.best_value())
                     .add("global_step", global_step)
                     .add("param_checksum", param_checksum));
  // The metric best.ckpt was chosen by, and the accuracy (pixel accuracy
  // for segmentation) beside it when that is another.
  std::string best_line = fmt::format("best {} accuracy {:.4f}", selection_split, best.best_accuracy());
  if (best.metric() != BestMetric::kAccuracy && selection_split != "none")
    best_line = fmt::format("best {} {} {:.4f} (accuracy {:.4f})", selection_split, name_of(best.metric()),
                            best.best_value(), best.best_accuracy());
  spdlog::info("done in {:.1f} s; {}; parameter checksum {}; run directory {}", seconds, best_line, param_checksum,
               run_dir_);
  try {
    spdlog::info("report: {}", write_report(run_dir_));
  } catch (const std::exception& e) {
    spdlog::warn("could not write the run report: {}", e.what());  // the run itself succeeded
  }
}

void RunReporter::checkpoint_eval(const std::string& checkpoint, const std::string& split, int64_t global_step,
                                  const ClassificationReport& r, double seconds) {
  if (!writes_) return;
  JsonLine line;
  line.add("event", metrics::kEval).add("split", split).add("checkpoint", checkpoint).add("global_step", global_step);
  add_report_json(&line, r);
  line.add("seconds", seconds);
  metrics_.write(line);
  write_file_atomic(join_path(run_dir_, "eval-" + split + ".json"), line.str() + "\n");
  write_file_atomic(join_path(run_dir_, "eval-" + split + ".txt"), report_text(r, split + " split of " + checkpoint));
  std::vector<std::vector<double>> cells;
  for (const auto& row : r.confusion) cells.emplace_back(row.begin(), row.end());
  std::vector<std::string> names;
  for (const auto& c : r.per_class) names.push_back(c.name);
  write_file_atomic(join_path(run_dir_, "confusion-" + split + ".svg"),
                    svg_heat_map("Confusion matrix, " + split, cells, names) + "\n");
}

}  // namespace convoy
