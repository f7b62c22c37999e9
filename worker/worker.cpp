// `convoy worker`: the process around one rank: rendezvous, the run
// directory, the node's data service (started here under mpirun), resume
// selection, then the training loop (training_loop.h).
#include "worker/worker.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>
#include <thread>

#include "common/cli_args.h"
#include "common/config.h"
#include "common/control_channel.h"
#include "common/error.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/run_dir.h"
#include "models/checkpoint.h"
#include "models/hardware.h"
#include "models/torch_errors.h"
#include "worker/data_client.h"
#include "worker/dist/device.h"
#include "worker/dist/mpi_bootstrap.h"
#include "worker/dist/rendezvous.h"
#include "worker/training_loop.h"

namespace convoy {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// The node's data services when this worker started them (under mpirun):
// one process per shard, pinned only where data_service.cpu_sets says so
// (Open MPI's own binding decides the rest). No restarts here: a dead shard
// fails the job, which mpirun's users restart from a checkpoint.
class OwnedDataServices {
 public:
  OwnedDataServices(const std::string& config, const std::vector<std::string>& sets,
                    const std::vector<std::string>& sockets, int clients, const Config& cfg) {
    for (size_t k = 0; k < sockets.size(); ++k) {
      SpawnOptions opts;
      opts.program = self_executable();
      opts.argv = {self_path(), "data-service", config, "--socket", sockets[k], "--clients", std::to_string(clients),
                   "--shard", std::to_string(k), "--shards", std::to_string(sockets.size())};
      if (!cfg.data_service.cpu_sets.empty()) {
        opts.argv.push_back("--cpus");
        opts.argv.push_back(cfg.data_service.cpu_sets[k]);
      }
      for (const auto& s : sets) {
        opts.argv.push_back("--set");
        opts.argv.push_back(s);
      }
      procs_.push_back({spawn(opts).pid, 0, false});
      sockets_.push_back(sockets[k]);
      spdlog::info("started the node's data service{} (pid {})",
                   sockets.size() > 1 ? " shard " + std::to_string(k) : "", procs_.back().pid);
    }
  }
  ~OwnedDataServices() {
    for (auto& p : procs_) {
      // Each exits by itself once every local rank has disconnected.
      for (int i = 0; i < 300 && !exited(p); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (!exited(p)) {
        ::kill(p.pid, SIGTERM);
        ::waitpid(p.pid, &p.status, 0);
      }
    }
    remove_socket_files(sockets_);  // a killed service's are left
  }
  // Throws if a service has died.
  void check() {
    for (auto& p : procs_)
      if (exited(p)) throw Error(CONVOY_STR("the data service (pid " << p.pid << ") died: " << describe_exit(p.status)));
  }

 private:
  struct Proc {
    pid_t pid;
    int status;
    bool done;
  };
  static bool exited(Proc& p) {
    if (!p.done && ::waitpid(p.pid, &p.status, WNOHANG) == p.pid) p.done = true;
    return p.done;
  }
  std::vector<Proc> procs_;
  std::vector<std::string> sockets_;
};

// The checkpoint to resume from, decided by rank 0: `auto` is the newest
// valid one in the run directory (torn ones are skipped with a warning), or
// none; anything else is a path that must be valid.
std::string choose_resume_checkpoint(const std::string& resume, const std::string& run_dir, const Config& cfg) {
  if (resume != "auto") {
    std::string why;
    if (!checkpoint_is_valid(resume, &why)) CONVOY_USER_ERROR("--resume " << resume << ": " << why);
    return resume;
  }
  CheckpointStore store(join_path(run_dir, "checkpoints"), cfg.train.keep_checkpoints);
  std::vector<std::string> skipped;
  auto newest = store.newest_valid(&skipped);
  for (const auto& s : skipped) spdlog::warn("not resuming from {} (falling back to an older checkpoint)", s);
  if (!newest) spdlog::info("no valid checkpoint in {}; starting from the beginning", store.dir());
  return newest.value_or("");
}

// train.amp, model.channels_last and model.conv_algorithm where they are
// "auto": rank 0's device decides for every rank (one precision and layout
// per job) and logs each choice with its reason; a rank whose own device
// would have chosen otherwise says so.
void resolve_hardware_choices(Distributed& dist, const DeviceRuntime& runtime, Config* cfg) {
  const HardwareChoices mine = choose_for_hardware(*cfg, device_facts(runtime));
  const std::string mine_text = mine.values_text();
  const std::string decided = dist.share("hardware_choices", mine_text);
  HardwareChoices job = mine;
  job.parse_values(decided);
  apply_choices(job, cfg);
  if (dist.rank() == 0) {
    for (const auto& [line, warning] : mine.lines())
      if (warning) spdlog::warn("{}", line);
      else spdlog::info("{}", line);
  } else if (decided != mine_text) {
    spdlog::warn("this rank's device would have chosen amp/channels_last/conv_algorithm '{}'; the job uses rank "
                 "0's '{}' ({})",
                 mine_text, decided, mine.amp.line);
  }
}

int run_worker(const CliArgs& args, const std::vector<std::string>& sets) {
  RankInfo info = rank_info_from_env();
  init_logging("worker", info.rank);
  const std::string config_path = args.positional()[0];
  Config cfg = load_config(config_path, sets);
  if (!std::getenv("CONVOY_LOG_LEVEL")) set_log_level(cfg.log_level);

  int threads = cfg.train.threads_per_rank;
  if (threads == 0)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, info.local_world_size));
  torch::set_num_threads(threads);

  install_stop_handlers();
  // The device first: NCCL's communicators belong to the GPU chosen here.
  auto runtime = make_device_runtime(cfg.device, info.local_rank, cfg.train.cudnn_benchmark);
  auto dist = Distributed::connect(info, cfg, *runtime);
  const bool launched = std::getenv("CONVOY_DATA_SOCKET") != nullptr;
  std::string run_id = dist->share("run_id", env_or("CONVOY_RUN_ID", random_run_id()));
  // Rank 0's is the one: only it makes a new folder when none is named.
  std::string run_dir = env_or("CONVOY_RUN_DIR", args.get("--run-dir", ""));
  if (run_dir.empty() && dist->rank() == 0) run_dir = create_run_dir(cfg);
  run_dir = dist->share("run_dir", run_dir);
  if (dist->rank() == 0 && !launched) prepare_run_dir(run_dir, cfg);

  resolve_hardware_choices(*dist, *runtime, &cfg);

  std::string resume = args.get("--resume", env_or("CONVOY_RESUME", ""));
  std::string resume_path;
  if (!resume.empty())
    resume_path = dist->share("resume_path", dist->rank() == 0 ? choose_resume_checkpoint(resume, run_dir, cfg) : "");

  std::string socket = env_or("CONVOY_DATA_SOCKET", data_socket_name(run_id));
  auto sockets = shard_socket_names(socket, cfg.data_service.services_per_node);
  if (!args.has("--eval-checkpoint")) dist->connect_local_allreduce(cfg, "/" + socket + "-allreduce");
  std::unique_ptr<OwnedDataServices> service;
  if (!launched && dist->info().local_rank == 0)
    service = std::make_unique<OwnedDataServices>(config_path, sets, sockets,
                                                  dist->info().local_world_size, cfg);
  {
    auto alive = [&] {
      if (service) service->check();
    };
    // Under convoy launch a dead shard is restarted; wait for it.
    DataClient data(sockets, dist->rank(), dist->world_size(), dist->info().local_rank,
                    std::chrono::seconds(cfg.data_service.timeout_s), alive,
                    /*await_restarts=*/launched && cfg.data_service.max_restarts > 0);
    spdlog::info("rank {} of {} ready (local rank {}, pid {}, {} torch thread(s), device {})", dist->rank(),
                 dist->world_size(), dist->info().local_rank, ::getpid(), threads, runtime->describe());
    TrainingLoop loop(cfg, *dist, data, run_dir, resume_path, runtime);
    if (args.has("--eval-checkpoint"))
      loop.evaluate_checkpoint(args.get("--eval-checkpoint"), args.get("--eval-split", "val"));
    else
      loop.run();
  }
  dist->barrier("end of training");
  return 0;
}

}  // namespace

std::string torch_build_info() {
  std::string s = std::string("LibTorch ") + TORCH_VERSION + "; CUDA: " + (at::hasCUDA() ? "yes" : "no");
#ifdef USE_C10D_NCCL
  s += "; c10d NCCL: yes";
#else
  s += "; c10d NCCL: no";
#endif
#ifdef USE_C10D_GLOO
  s += "; c10d Gloo: yes";
#else
  s += "; c10d Gloo: no";
#endif
  return s + "; " + cuda_build_info() + "; " + mpi_build_info();
}

int worker_main(const std::vector<std::string>& argv) {
  CliArgs args("worker",
               "usage: convoy worker CONFIG [--set field=value ...] [--run-dir DIR] [--resume auto|PATH]\n"
               "                     [--timeline STEPS] [--eval-checkpoint CKPT [--eval-split SPLIT]]\n"
               "Runs one training rank. Rank and rendezvous come from RANK/WORLD_SIZE/LOCAL_RANK/\n"
               "MASTER_ADDR/MASTER_PORT (set by convoy launch) or from Open MPI under mpirun.\n"
               "SIGTERM or SIGUSR1: finish the current step, checkpoint, exit 0.\n"
               "--eval-checkpoint: evaluate CKPT on SPLIT (default val) instead of training\n"
               "(what convoy eval runs; under mpirun every rank takes its share).\n"
               "example: mpirun -np 2 convoy worker configs/fashion_mnist.pbtxt\n");
  args.option("--set", true).option("--run-dir").option("--resume").option("--timeline");
  args.option("--eval-checkpoint").option("--eval-split");
  if (!args.parse(argv)) return 0;
  auto sets = args.all("--set");
  if (args.has("--timeline")) sets.push_back("train.timeline_steps=" + args.get("--timeline"));
  if (args.positional().size() != 1)
    CONVOY_USER_ERROR("convoy worker needs exactly one CONFIG (see convoy worker --help)");
  try {
    return run_worker(args, sets);
  } catch (const c10::Error& e) {
    throw Error(error_text(e));  // without LibTorch's C++ backtrace
  }
}

}  // namespace convoy
