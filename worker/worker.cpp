// `convoy worker`: rendezvous, connect to (or, under mpirun, start) the
// node's data service, then train and evaluate epoch by epoch.
#include "worker/worker.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "common/cli_args.h"
#include "common/config.h"
#include "common/error.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/run_dir.h"
#include "common/control_channel.h"
#include "worker/checkpoint.h"
#include "worker/data_client.h"
#include "worker/metrics.h"
#include "worker/progress.h"
#include "worker/rendezvous.h"
#include "worker/trainer.h"

namespace convoy {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// The node's data service when this worker started it (under mpirun).
class OwnedDataService {
 public:
  OwnedDataService(const std::string& config, const std::vector<std::string>& sets, const std::string& socket,
                   int clients) {
    SpawnOptions opts;
    opts.argv = {self_executable(), "data-service", config, "--socket", socket, "--clients", std::to_string(clients)};
    for (const auto& s : sets) {
      opts.argv.push_back("--set");
      opts.argv.push_back(s);
    }
    pid_ = spawn(opts).pid;
    spdlog::info("started the node's data service (pid {})", pid_);
  }
  ~OwnedDataService() {
    if (pid_ <= 0) return;
    // It exits by itself once every local rank has disconnected.
    for (int i = 0; i < 300 && !exited(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!exited()) {
      ::kill(pid_, SIGTERM);
      int status;
      ::waitpid(pid_, &status, 0);
    }
  }
  // Throws if the service has died.
  void check() {
    if (exited()) throw Error(CONVOY_STR("the data service (pid " << pid_ << ") died: " << describe_exit(status_)));
  }

 private:
  bool exited() {
    if (done_) return true;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) done_ = true;
    return done_;
  }
  pid_t pid_ = -1;
  int status_ = 0;
  bool done_ = false;
};

struct EpochSummary {
  double train_loss = 0, images_per_sec = 0, seconds = 0;
};

class Worker {
 public:
  Worker(const Config& cfg, Distributed& dist, DataClient& data, const std::string& run_dir)
      : cfg_(cfg), dist_(dist), data_(data), run_dir_(run_dir),
        metrics_(dist.rank() == 0 ? join_path(run_dir, "metrics.jsonl") : ""),
        progress_(progress_wanted(dist.rank())) {
    const SplitMeta* train = data.info().find("train");
    CONVOY_CHECK(train, "the data service has no train split");
    steps_ = static_cast<int64_t>(train->steps_per_epoch);
    if (cfg.train.max_steps_per_epoch > 0) steps_ = std::min(steps_, cfg.train.max_steps_per_epoch);
    if (steps_ == 0)
      CONVOY_USER_ERROR("the training split (" << train->num_samples << " samples) is smaller than one global batch of "
                                               << dist.world_size() * cfg.data.batch_size
                                               << " with data.drop_last on; lower data.batch_size");
    num_classes_ = cfg.model.num_classes > 0 ? cfg.model.num_classes : static_cast<int>(data.info().class_names.size());
    trainer_ = std::make_unique<Trainer>(cfg, num_classes_, dist.group(), dist.rank(), dist.world_size(), steps_);
    eval_splits_ = cfg.train.eval_splits;
    if (eval_splits_.empty())
      for (const char* s : {"val", "test"})
        if (data.info().find(s)) eval_splits_.push_back(s);
    for (const auto& s : eval_splits_)
      if (!data.info().find(s)) CONVOY_USER_ERROR("train.eval_splits: the dataset has no '" << s << "' split");
  }

  void run() {
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
                       .add("parameters", params));
    auto start = Clock::now();
    for (int epoch = 0; epoch < cfg_.train.epochs; ++epoch) {
      bool last = epoch + 1 == cfg_.train.epochs;
      std::vector<std::string> splits;
      for (const auto& s : eval_splits_)
        if (s != "test" || cfg_.train.eval_test_each_epoch || last) splits.push_back(s);
      // Queue the whole epoch's batches up front, so the service never idles.
      data_.request("train", static_cast<uint32_t>(epoch), 0, static_cast<uint64_t>(steps_));
      for (const auto& s : splits)
        data_.request(s, static_cast<uint32_t>(epoch), 0, data_.info().find(s)->steps_per_epoch);
      EpochSummary train = train_epoch(epoch);
      trainer_->sync_buffers();
      std::string line = fmt::format("epoch {}/{}: train loss {:.4f}", epoch + 1, cfg_.train.epochs, train.train_loss);
      double select_acc = -1, select_loss = 0;
      for (const auto& s : splits) {
        EvalSums r = evaluate(s, epoch);
        metrics_.write(JsonLine()
                           .add("event", "eval")
                           .add("epoch", epoch + 1)
                           .add("split", s)
                           .add("loss", r.loss())
                           .add("accuracy", r.accuracy())
                           .add("samples", r.count));
        line += fmt::format(" | {} loss {:.4f} acc {:.4f}", s, r.loss(), r.accuracy());
        if (select_acc < 0 || s == "val") {
          select_acc = r.accuracy();
          select_loss = r.loss();
        }
      }
      log_rank0("{} | {:.0f} img/s, {:.1f} s", line, train.images_per_sec, train.seconds);
      if (dist_.rank() == 0) save(epoch, select_acc, select_loss);
    }
    double total = seconds_since(start);
    metrics_.write(JsonLine().add("event", "end").add("seconds", total).add("best_accuracy", best_acc_));
    log_rank0("done in {:.1f} s; best {} accuracy {:.4f}; run directory {}", total,
              eval_splits_.empty() ? "-" : (data_.info().find("val") ? "val" : eval_splits_[0]), best_acc_, run_dir_);
  }

 private:
  EpochSummary train_epoch(int epoch) {
    auto t0 = Clock::now();
    double window_loss = 0, epoch_loss = 0;
    int64_t window = 0;
    const int64_t images_per_step = static_cast<int64_t>(cfg_.data.batch_size) * dist_.world_size();
    auto window_start = t0;
    std::string label = fmt::format("epoch {}/{}", epoch + 1, cfg_.train.epochs);
    for (int64_t step = 0; step < steps_; ++step) {
      Batch batch = data_.next("train", static_cast<uint32_t>(epoch), static_cast<uint64_t>(step));
      if (batch.header.errors > 0 && dist_.rank() == 0)
        spdlog::warn("step {}: {} corrupt image(s) skipped by the data service", step, batch.header.errors);
      StepResult r = trainer_->train_step(batch.pixels, batch.labels, global_step_);
      ++global_step_;
      window_loss += r.loss;
      epoch_loss += r.loss;
      ++window;
      double elapsed = seconds_since(t0);
      progress_.update(label, step + 1, steps_, elapsed, images_per_step * (step + 1) / std::max(elapsed, 1e-9),
                       r.loss, r.lr);
      if ((step + 1) % cfg_.train.log_every_steps == 0 || step + 1 == steps_) {
        double loss = trainer_->mean_across_ranks(window_loss / window, global_step_);
        double ips = images_per_step * window / std::max(seconds_since(window_start), 1e-9);
        metrics_.write(JsonLine()
                           .add("event", "train")
                           .add("epoch", epoch + 1)
                           .add("step", global_step_)
                           .add("loss", loss)
                           .add("lr", r.lr)
                           .add("images_per_sec", ips));
        window_loss = 0;
        window = 0;
        window_start = Clock::now();
      }
    }
    progress_.clear();
    EpochSummary s;
    s.seconds = seconds_since(t0);
    s.train_loss = trainer_->mean_across_ranks(epoch_loss / steps_, global_step_);
    s.images_per_sec = images_per_step * steps_ / s.seconds;
    return s;
  }

  EvalSums evaluate(const std::string& split, int epoch) {
    EvalSums sums;
    uint64_t steps = data_.info().find(split)->steps_per_epoch;
    for (uint64_t step = 0; step < steps; ++step) {
      Batch batch = data_.next(split, static_cast<uint32_t>(epoch), step);
      trainer_->eval_batch(batch.pixels, batch.labels, &sums);
    }
    return trainer_->reduce(sums, global_step_);
  }

  void save(int epoch, double accuracy, double loss) {
    CheckpointMeta meta;
    meta.epoch = epoch + 1;
    meta.global_step = global_step_;
    meta.val_accuracy = accuracy;
    meta.val_loss = loss;
    meta.class_names = data_.info().class_names;
    meta.config_text = cfg_.resolved_text;
    std::string dir = join_path(run_dir_, "checkpoints");
    save_checkpoint(join_path(dir, "last.pt"), *trainer_->model(), trainer_->optimizer(), meta);
    if (accuracy > best_acc_) {
      best_acc_ = accuracy;
      save_checkpoint(join_path(dir, "best.pt"), *trainer_->model(), trainer_->optimizer(), meta);
    }
  }

  const Config& cfg_;
  Distributed& dist_;
  DataClient& data_;
  std::string run_dir_;
  MetricsLog metrics_;
  ProgressLine progress_;
  int64_t steps_ = 0;
  int num_classes_ = 0;
  int64_t global_step_ = 0;
  double best_acc_ = -1;
  std::vector<std::string> eval_splits_;
  std::unique_ptr<Trainer> trainer_;
};

int run_worker(const CliArgs& args) {
  RankInfo info = rank_info_from_env();
  init_logging("worker", info.rank);
  const std::string config_path = args.positional()[0];
  Config cfg = load_config(config_path, args.all("--set"));
  if (!std::getenv("CONVOY_LOG_LEVEL")) set_log_level(cfg.log_level);

  int threads = cfg.train.threads_per_rank;
  if (threads == 0)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, info.local_world_size));
  torch::set_num_threads(threads);

  auto dist = Distributed::connect(info, cfg);
  const bool launched = std::getenv("CONVOY_DATA_SOCKET") != nullptr;
  std::string run_id = dist->share("run_id", env_or("CONVOY_RUN_ID", random_run_id()));
  std::string run_dir = dist->share("run_dir", env_or("CONVOY_RUN_DIR", args.get("--run-dir", default_run_dir(cfg))));
  if (dist->rank() == 0 && !launched) prepare_run_dir(run_dir, cfg);

  std::string socket = env_or("CONVOY_DATA_SOCKET", data_socket_name(run_id));
  std::unique_ptr<OwnedDataService> service;
  if (!launched && dist->info().local_rank == 0)
    service = std::make_unique<OwnedDataService>(config_path, args.all("--set"), socket, dist->info().local_world_size);
  {
    auto alive = [&] {
      if (service) service->check();
    };
    DataClient data(socket, dist->rank(), dist->world_size(), dist->info().local_rank,
                    std::chrono::seconds(cfg.data_service.timeout_s), alive);
    spdlog::info("rank {} of {} ready (local rank {}, pid {}, {} torch thread(s), device {})", dist->rank(),
                 dist->world_size(), dist->info().local_rank, ::getpid(), threads, cfg.device);
    Worker worker(cfg, *dist, data, run_dir);
    worker.run();
  }
  dist->barrier("end of training");
  return 0;
}

}  // namespace

int worker_main(const std::vector<std::string>& argv) {
  CliArgs args("worker",
               "usage: convoy worker CONFIG [--set field=value ...] [--run-dir DIR]\n"
               "Runs one training rank. Rank and rendezvous come from RANK/WORLD_SIZE/LOCAL_RANK/\n"
               "MASTER_ADDR/MASTER_PORT (set by convoy launch) or from Open MPI under mpirun.\n"
               "example: mpirun -np 2 convoy worker configs/fashion_mnist.pbtxt\n");
  args.option("--set", true).option("--run-dir");
  if (!args.parse(argv)) return 0;
  if (args.positional().size() != 1)
    CONVOY_USER_ERROR("convoy worker needs exactly one CONFIG (see convoy worker --help)");
  try {
    return run_worker(args);
  } catch (const c10::Error& e) {
    // LibTorch errors carry a C++ backtrace; the first line is what matters.
    std::string msg = e.what_without_backtrace();
    throw Error(msg.substr(0, msg.find('\n')));
  }
}

}  // namespace convoy
