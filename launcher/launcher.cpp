// `convoy launch` (see launcher.h and README.md for the protocol).
#include "launcher/launcher.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include "common/cli_args.h"
#include "common/config.h"
#include "common/control_channel.h"
#include "common/cpu_sets.h"
#include "common/error.h"
#include "common/files.h"
#include "common/job_token.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/metrics_schema.h"
#include "common/process.h"
#include "common/run_dir.h"
#include "launcher/output_pump.h"

namespace convoy {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kGrace = std::chrono::seconds(10);
constexpr auto kSettle = std::chrono::milliseconds(500);
constexpr auto kQuickFailure = std::chrono::seconds(10);  // a group that fails sooner backs off

struct Proc {
  std::string name;  // "worker 1", "data", "data 2"
  bool is_worker = false;
  int shard = -1;    // data services: which shard
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  Child child;
  std::unique_ptr<OutputPump> out, err;
  bool running = true;
  int status = 0;
};

// Removes whatever this run left in /dev/shm (normally nothing: rings are
// unlinked as soon as both sides have them mapped).
int sweep_shared_memory(const std::string& socket) {
  int removed = 0;
  DIR* d = ::opendir("/dev/shm");
  if (!d) return 0;
  std::string prefix = socket + "-";
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.rfind(prefix, 0) == 0 && ::shm_unlink(("/" + name).c_str()) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

// The run directory to use: for --resume auto, the newest earlier run of
// this config (runs/<name>-<timestamp>); for a checkpoint path, the run it
// belongs to; otherwise a new one.
std::string resume_run_dir(const Config& cfg, const std::string& resume) {
  if (resume == "auto") {
    std::string latest = latest_run_dir(cfg);
    if (!latest.empty()) return latest;
  } else if (!resume.empty() && basename_of(dirname_of(resume)) == "checkpoints") {
    return dirname_of(dirname_of(resume));
  }
  return create_run_dir(cfg);
}

// Where each data-service shard runs: the config's CPU lists, or the cores
// this launcher may use split between the shards (NUMA node by node), after
// setting aside the workers' threads when there are cores enough. Empty (no
// pinning) for a single service that would have to share every core anyway.
std::vector<std::string> service_cpu_sets(const Config& cfg, int nproc) {
  const auto& ds = cfg.data_service;
  std::vector<std::string> out;
  if (!ds.cpu_sets.empty()) {
    for (size_t k = 0; k < ds.cpu_sets.size(); ++k)
      out.push_back(format_cpu_list(parse_cpu_list(ds.cpu_sets[k], "data_service.cpu_sets[" + std::to_string(k) + "]")));
    return out;
  }
  if (!ds.pin_services) return out;
  CpuList cpus = allowed_cpus();
  int worker_cpus = cfg.train.threads_per_rank > 0 ? nproc * cfg.train.threads_per_rank : static_cast<int>(cpus.size());
  int k = ds.services_per_node;
  if (k == 1 && static_cast<int>(cpus.size()) < worker_cpus + k) return out;
  for (const auto& set : split_cpus(cpus, numa_nodes_of(cpus), worker_cpus, k)) out.push_back(format_cpu_list(set));
  std::string text;
  for (const auto& o : out) text += (text.empty() ? "" : " | ") + o;
  spdlog::debug("data-service CPU sets: {}", text);
  return out;
}


// How one attempt (one group of processes) ended.
struct Outcome {
  enum Kind { kDone, kFailed, kPreempted, kInterrupted } kind = kDone;
  std::string reason;
  int exit_code = 0;
};

// One attempt: a data service and N workers, watched until they all end.
class Group {
 public:
  Group(const LaunchOptions& opts, int sigfd, bool tty, const std::string& resume)
      : opts_(opts), sigfd_(sigfd), tty_(tty), resume_(resume), run_id_(random_run_id()),
        socket_(data_socket_name(run_id_)) {}

  Outcome run() {
    int port = opts_.master_port > 0 ? opts_.master_port : free_local_port();
    std::vector<std::pair<std::string, std::string>> common = {
        {"CONVOY_LAUNCHED", "1"},
        {"CONVOY_RUN_ID", run_id_},
        {"CONVOY_RUN_DIR", opts_.run_dir},
        {"CONVOY_DATA_SOCKET", socket_},
        {"CONVOY_PROGRESS", tty_ ? "1" : "0"},
        {"CONVOY_RESUME", resume_},
        {kJobTokenEnv, opts_.job_token},
    };
    auto sockets = shard_socket_names(socket_, opts_.services);
    service_restarts_.assign(opts_.services, 0);
    for (int k = 0; k < opts_.services; ++k) {
      std::vector<std::string> argv = {self_path(), "data-service", opts_.config_path, "--socket", sockets[k],
                                       "--clients", std::to_string(opts_.nproc), "--shard", std::to_string(k),
                                       "--shards", std::to_string(opts_.services)};
      if (!opts_.service_cpus.empty()) argv.insert(argv.end(), {"--cpus", opts_.service_cpus[k]});
      start(opts_.services > 1 ? "data " + std::to_string(k) : "data", false, argv, common, k);
    }
    for (int r = 0; r < opts_.nproc; ++r) {
      const int rank = opts_.node_rank * opts_.nproc + r;
      auto env = common;
      env.insert(env.end(), {{"RANK", std::to_string(rank)},
                             {"WORLD_SIZE", std::to_string(opts_.nnodes * opts_.nproc)},
                             {"LOCAL_RANK", std::to_string(r)},
                             {"LOCAL_WORLD_SIZE", std::to_string(opts_.nproc)},
                             {"MASTER_ADDR", opts_.master_addr},
                             {"MASTER_PORT", std::to_string(port)}});
      std::vector<std::string> argv = {self_path(), "worker", opts_.config_path};
      argv.insert(argv.end(), opts_.worker_args.begin(), opts_.worker_args.end());
      start("worker " + std::to_string(rank), true, argv, env);
    }
    spdlog::info("run {}: {} and {} worker(s) started; run directory {}", run_id_,
                 opts_.services > 1 ? std::to_string(opts_.services) + " data-service shards" : "data service",
                 opts_.nproc, opts_.run_dir);
    loop();
    if (!failed_.empty() && failure_.empty()) decide_failure();
    int swept = sweep_shared_memory(socket_);
    if (swept > 0) spdlog::warn("removed {} leftover shared-memory segment(s)", swept);
    remove_socket_files(shard_socket_names(socket_, opts_.services));  // a killed service's are left

    Outcome o;
    if (interrupt_signal_) {
      o = {Outcome::kInterrupted, "interrupted by signal " + std::to_string(interrupt_signal_),
           128 + interrupt_signal_};
    } else if (!failure_.empty()) {
      o = {preempting_ ? Outcome::kPreempted : Outcome::kFailed, failure_, 1};
    } else if (preempting_) {
      o = {Outcome::kPreempted, "stopped by signal; checkpoint written", 0};
    }
    return o;
  }

 private:
  void start(const std::string& name, bool is_worker, std::vector<std::string> argv,
             const std::vector<std::pair<std::string, std::string>>& env, int shard = -1) {
    SpawnOptions opts;
    opts.program = self_executable();
    opts.argv = argv;
    opts.env = env;
    opts.capture_output = true;
    // If the launcher itself dies: workers at once, the service cleanly.
    opts.parent_death_signal = is_worker ? SIGKILL : SIGTERM;
    auto p = std::make_unique<Proc>();
    p->name = name;
    p->is_worker = is_worker;
    p->shard = shard;
    p->argv = std::move(argv);
    p->env = env;
    p->child = spawn(opts);
    p->out = std::make_unique<OutputPump>("[" + name + "] ", 1, false, tty_);
    p->err = std::make_unique<OutputPump>("[" + name + "] ", 2, true, tty_);
    spdlog::debug("started {} (pid {})", name, p->child.pid);
    procs_.push_back(std::move(p));
  }

  bool any_running() const {
    for (const auto& p : procs_)
      if (p->running || p->child.stdout_fd >= 0 || p->child.stderr_fd >= 0) return true;
    return false;
  }

  void signal_all(int sig, bool workers_only = false) {
    for (auto& p : procs_)
      if (p->running && (p->is_worker || !workers_only)) ::kill(p->child.pid, sig);
  }

  // Stops everything now: SIGINT to the workers (their SIGTERM means
  // "checkpoint first"), SIGTERM to the data service, SIGKILL after the grace
  // period.
  void begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    kill_deadline_ = Clock::now() + kGrace;
    for (auto& p : procs_)
      if (p->running) {
        ::kill(p->child.pid, p->is_worker ? SIGINT : SIGTERM);
        ::kill(p->child.pid, SIGCONT);  // a stopped process must wake to die
      }
  }

  // Preemption: workers finish their step and checkpoint (SIGUSR1); the data
  // service leaves with its clients. What is still running after
  // stop_grace_s is killed.
  void begin_preempt(int sig) {
    if (preempting_ || stopping_) return;
    spdlog::warn("received signal {}: asking the workers to checkpoint and stop (at most {} s)", sig,
                 opts_.stop_grace_s);
    preempting_ = true;
    kill_deadline_ = Clock::now() + std::chrono::seconds(opts_.stop_grace_s);
    signal_all(SIGUSR1, /*workers_only=*/true);
  }

  void on_exit(Proc& p) {
    p.running = false;
    bool ok = WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0;
    spdlog::debug("{} (pid {}) ended: {}", p.name, p.child.pid, describe_exit(p.status));
    if (stopping_) return;
    if (!p.is_worker && WIFSIGNALED(p.status) && !preempting_ && workers_running() > 0 &&
        service_restarts_[p.shard] < opts_.max_service_restarts) {
      restart_service(p);
      return;
    }
    if (!ok) {
      // Drain what the child still had to say before quoting its last error.
      drain(p);
      failed_.push_back(&p);
      if (failed_.size() == 1) settle_deadline_ = Clock::now() + kSettle;
      return;
    }
    if (p.is_worker && workers_running() == 0) {
      // Training is over; the data service leaves once its clients have.
      service_deadline_ = Clock::now() + kGrace;
      waiting_for_service_ = true;
    }
  }

  // A data-service shard killed by a signal (crash, OOM killer, kill -9) is
  // restarted alone: the workers wait for it and re-ask it for what they
  // still need. A shard that exits with an error (a corrupt image in strict
  // mode, a bad config) fails the group as before: a restart would repeat it.
  void restart_service(Proc& p) {
    drain(p);
    int n = ++service_restarts_[p.shard];
    std::string reason = p.name + " (pid " + std::to_string(p.child.pid) + ") " + describe_exit(p.status);
    // A crash is a bug (Convoy's or a library's), not an outside kill: said
    // as an error, though the shard is restarted all the same (the workers
    // give up on a second crash at the same batch).
    if (WIFSIGNALED(p.status) && is_crash_signal(WTERMSIG(p.status)))
      spdlog::error("{}: it crashed; restarting that shard alone ({}/{})", reason, n, opts_.max_service_restarts);
    else
      spdlog::warn("{}; restarting that shard alone ({}/{})", reason, n, opts_.max_service_restarts);
    std::vector<std::string> argv = p.argv;
    // The previous reason is replaced, not appended to.
    auto it = std::find(argv.begin(), argv.end(), "--restart-reason");
    if (it != argv.end()) argv.erase(it, it + 2);
    argv.insert(argv.end(), {"--restart-reason", reason});
    start(p.name, false, argv, p.env, p.shard);
  }

  // One failure usually brings down others within milliseconds (peers lose
  // their connections, rings are failed). After a short settling time, the
  // failure reported is the cause: the data service's if it failed, else a
  // worker whose error is not a lost peer, else the first one reaped.
  void decide_failure() {
    Proc* cause = failed_.front();
    for (Proc* p : failed_)
      if (!p->is_worker) cause = p;
    if (cause->is_worker && is_peer_symptom(cause->err->last_error()))
      for (Proc* p : failed_)
        if (p->is_worker && !is_peer_symptom(p->err->last_error())) {
          cause = p;
          break;
        }
    std::string last = cause->err->last_error();
    failure_ = cause->name + " (pid " + std::to_string(cause->child.pid) + ") failed with " +
               describe_exit(cause->status) + (last.empty() ? "" : ": " + last);
    if (failed_.size() > 1) failure_ += " (" + std::to_string(failed_.size() - 1) + " more process(es) failed after it)";
    begin_stop();
  }

  int workers_running() const {
    int n = 0;
    for (const auto& p : procs_) n += p->is_worker && p->running;
    return n;
  }

  void drain(Proc& p) {
    for (int* fd : {&p.child.stdout_fd, &p.child.stderr_fd}) {
      if (*fd < 0) continue;
      OutputPump& pump = fd == &p.child.stdout_fd ? *p.out : *p.err;
      pollfd pfd{*fd, POLLIN, 0};
      while (::poll(&pfd, 1, 200) > 0 && pump.pump(*fd)) {
      }
      ::close(*fd);
      *fd = -1;
    }
  }

  void reap() {
    for (;;) {
      int status;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      // on_exit may start a process (a shard restart): no iterator held across it.
      Proc* found = nullptr;
      for (auto& p : procs_)
        if (p->child.pid == pid && p->running) found = p.get();
      if (found) {
        found->status = status;
        on_exit(*found);
      }
    }
  }

  void on_signal() {
    signalfd_siginfo si;
    while (::read(sigfd_, &si, sizeof si) == sizeof si) {
      int sig = static_cast<int>(si.ssi_signo);
      if (sig == SIGCHLD) {
        reap();
      } else if (sig == SIGTERM || sig == SIGUSR1) {
        begin_preempt(sig);
      } else if (!stopping_) {
        spdlog::warn("received signal {}; stopping all processes", sig);
        interrupt_signal_ = sig;
        begin_stop();
      }
    }
  }

  void loop() {
    while (any_running()) {
      std::vector<pollfd> fds{{sigfd_, POLLIN, 0}};
      std::vector<std::pair<Proc*, bool>> owners{{nullptr, false}};
      for (auto& p : procs_) {
        if (p->child.stdout_fd >= 0) {
          fds.push_back({p->child.stdout_fd, POLLIN, 0});
          owners.push_back({p.get(), false});
        }
        if (p->child.stderr_fd >= 0) {
          fds.push_back({p->child.stderr_fd, POLLIN, 0});
          owners.push_back({p.get(), true});
        }
      }
      int r = ::poll(fds.data(), fds.size(), 200);
      if (r < 0 && errno != EINTR) CONVOY_SYSCALL(r);
      for (size_t i = 1; r > 0 && i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Proc* p = owners[i].first;
        bool is_err = owners[i].second;
        int& fd = is_err ? p->child.stderr_fd : p->child.stdout_fd;
        if (!(is_err ? p->err : p->out)->pump(fd)) {
          ::close(fd);
          fd = -1;
        }
      }
      if (r > 0 && (fds[0].revents & POLLIN)) on_signal();
      reap();  // SIGCHLD can coalesce; make sure no exit goes unnoticed
      auto now = Clock::now();
      if (!failed_.empty() && failure_.empty() && !stopping_ && now > settle_deadline_) decide_failure();
      if (waiting_for_service_ && !stopping_ && now > service_deadline_) {
        spdlog::warn("the data service did not exit after the workers; stopping it");
        begin_stop();
      }
      if ((stopping_ || preempting_) && now > kill_deadline_ && !killed_) {
        spdlog::warn("processes still running after the grace period; sending SIGKILL");
        signal_all(SIGKILL);
        killed_ = true;
      }
    }
  }

  const LaunchOptions& opts_;
  int sigfd_;
  bool tty_;
  std::string resume_;
  std::string run_id_, socket_;
  std::vector<std::unique_ptr<Proc>> procs_;
  bool stopping_ = false, preempting_ = false, killed_ = false, waiting_for_service_ = false;
  int interrupt_signal_ = 0;
  Clock::time_point kill_deadline_, service_deadline_, settle_deadline_;
  std::vector<Proc*> failed_;
  std::string failure_;
  std::vector<int> service_restarts_;  // per shard
};

// Sleeps for `delay` unless SIGINT/SIGTERM/SIGHUP/SIGUSR1 arrives first
// (then returns false). Child exits (SIGCHLD) do not count: there are none.
bool wait_or_interrupted(int sigfd, std::chrono::seconds delay) {
  auto until = Clock::now() + delay;
  while (Clock::now() < until) {
    pollfd pfd{sigfd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(0, left))) > 0) {
      signalfd_siginfo si;
      while (::read(sigfd, &si, sizeof si) == sizeof si)
        if (si.ssi_signo != SIGCHLD) return false;
    }
  }
  return true;
}

}  // namespace

void prepare_launch(const Config& cfg, const std::string& run_dir, LaunchOptions* opts) {
  opts->run_dir = run_dir;
  opts->config_path = prepare_run_dir(run_dir, cfg);
  opts->stop_grace_s = cfg.train.stop_grace_s;
  opts->services = cfg.data_service.services_per_node;
  opts->max_service_restarts = cfg.data_service.max_restarts;
  opts->service_cpus = service_cpu_sets(cfg, opts->nproc);
}

int run_with_restarts(const LaunchOptions& options) {
  LaunchOptions opts = options;
  // One token for every attempt: CONVOY_JOB_TOKEN, else a fresh one.
  if (opts.job_token.empty()) opts.job_token = job_token_from_env();
  if (opts.job_token.empty()) opts.job_token = generate_job_token();
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&set, sig);
  CONVOY_SYSCALL(::sigprocmask(SIG_BLOCK, &set, nullptr));
  int sigfd = CONVOY_SYSCALL(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  const bool tty = ::isatty(1);
  std::string resume = opts.resume;
  Outcome o;
  int quick_failures = 0;
  for (int attempt = 0;; ++attempt) {
    auto started = Clock::now();
    o = Group(opts, sigfd, tty, resume).run();
    if (o.kind != Outcome::kFailed) break;
    if (attempt >= opts.max_restarts) {
      if (opts.max_restarts > 0) o.reason = "giving up after " + std::to_string(attempt) + " restart(s): " + o.reason;
      break;
    }
    // Back off when groups fail right away (a broken node, a missing file):
    // 1 s, then doubling with each quick failure up to 30 s; a group that
    // ran for a while resets it.
    quick_failures = Clock::now() - started < kQuickFailure ? quick_failures + 1 : 0;
    auto delay = std::chrono::seconds(std::min(30, 1 << std::min(quick_failures, 5)));
    spdlog::warn("restart {}/{} from the newest valid checkpoint in {} s: {}", attempt + 1, opts.max_restarts,
                 delay.count(), o.reason);
    if (!wait_or_interrupted(sigfd, delay)) {
      o = {Outcome::kInterrupted, "interrupted while waiting to restart", 130};
      break;
    }
    // Rank 0 is gone by now, so the launcher's line cannot interleave with its.
    if (opts.node_rank == 0)
      MetricsLog(join_path(opts.run_dir, "metrics.jsonl"))
          .write(JsonLine().add("event", metrics::kRestart).add("attempt", attempt + 1).add("reason", o.reason));
    resume = "auto";
  }
  ::close(sigfd);
  switch (o.kind) {
    case Outcome::kDone:
      spdlog::info("all workers finished; run directory {}", opts.run_dir);
      break;
    case Outcome::kPreempted:
      if (o.exit_code == 0)
        spdlog::info("stopped with a checkpoint; continue with --resume auto --run-dir {}", opts.run_dir);
      else
        spdlog::error("{}", o.reason);
      break;
    default:
      spdlog::error("{}", o.reason);
  }
  return o.exit_code;
}

int launch_main(const std::vector<std::string>& argv) {
  CliArgs args("launch",
               "usage: convoy launch --nproc-per-node N CONFIG [--set field=value ...] [--run-dir DIR]\n"
               "                     [--resume auto|PATH] [--max-restarts R] [--checkpoint-every-steps N]\n"
               "                     [--master-port PORT] [--data-services-per-node K] [--timeline STEPS]\n"
               "                     [--init-from WEIGHTS.pt]\n"
               "                     [--nnodes N --node-rank I --master-addr HOST --master-port PORT]\n"
               "Starts this node's data service and N worker ranks, prefixes their output with\n"
               "role and rank, and stops them all if one fails; with --max-restarts, restarts\n"
               "the group from its newest valid checkpoint instead. SIGTERM/SIGUSR1: every rank\n"
               "finishes its step, rank 0 checkpoints, all exit 0. SIGINT: stop at once.\n"
               "--data-services-per-node K runs K data-service processes, each producing a disjoint\n"
               "shard of every batch, pinned to its own cores; one that dies is restarted alone.\n"
               "--timeline STEPS writes timeline.json (Chrome trace, every rank) of STEPS steps\n"
               "from train.timeline_start (default 10).\n"
               "--init-from starts from a state_dict (convoy export output, or torchvision's weights\n"
               "saved with torch.save(dict(m.state_dict()), PATH)); a head of another class count is\n"
               "re-initialised (model.init_from; model.freeze_backbone trains the head only).\n"
               "Several nodes (torchrun's flags): run one launch per node with the same --nnodes,\n"
               "--master-addr (node 0's address), --master-port, --run-dir (shared storage) and\n"
               "CONVOY_JOB_TOKEN (the same secret on every node); node I starts ranks I*N..I*N+N-1.\n"
               "CONVOY_SOCKET_IFNAME / GLOO_SOCKET_IFNAME pick the interface (see cluster/README.md).\n"
               "example: convoy launch --nproc-per-node 2 configs/fashion_mnist.pbtxt --max-restarts 2\n");
  args.option("--nproc-per-node").option("--set", true).option("--run-dir").option("--master-port");
  args.option("--resume").option("--max-restarts").option("--checkpoint-every-steps");
  args.option("--data-services-per-node").option("--timeline").option("--init-from");
  args.option("--nnodes").option("--node-rank").option("--master-addr");
  if (!args.parse(argv)) return 0;
  if (args.positional().size() != 1)
    CONVOY_USER_ERROR("convoy launch needs exactly one CONFIG (see convoy launch --help)");
  LaunchOptions opts;
  opts.nproc = args.get_int("--nproc-per-node", 1);
  if (opts.nproc < 1 || opts.nproc > 1024) CONVOY_USER_ERROR("--nproc-per-node must be between 1 and 1024");
  opts.max_restarts = args.get_int("--max-restarts", 0);
  if (opts.max_restarts < 0) CONVOY_USER_ERROR("--max-restarts must be >= 0");
  auto sets = args.all("--set");
  if (args.has("--checkpoint-every-steps"))
    sets.push_back("train.checkpoint_every_steps=" + std::to_string(args.get_int("--checkpoint-every-steps", 0)));
  if (args.has("--timeline")) sets.push_back("train.timeline_steps=" + args.get("--timeline"));
  if (args.has("--init-from")) sets.push_back("model.init_from=" + args.get("--init-from"));
  if (args.has("--data-services-per-node"))
    sets.push_back("data_service.services_per_node=" + args.get("--data-services-per-node"));
  // Everything the user can get wrong is checked here, before any process starts.
  Config cfg = load_config(args.positional()[0], sets);
  init_logging("launch", -1, cfg.log_level);
  opts.resume = args.get("--resume");
  if (!opts.resume.empty() && opts.resume != "auto" && !path_exists(opts.resume))
    CONVOY_USER_ERROR("--resume " << opts.resume << ": no such checkpoint (use a path or 'auto')");
  opts.nnodes = args.get_int("--nnodes", 1);
  opts.node_rank = args.get_int("--node-rank", 0);
  opts.master_addr = args.get("--master-addr", "127.0.0.1");
  opts.master_port = args.get_int("--master-port", 0);
  opts.job_token = job_token_from_env();
  if (opts.nnodes < 1) CONVOY_USER_ERROR("--nnodes must be >= 1");
  if (opts.node_rank < 0 || opts.node_rank >= opts.nnodes)
    CONVOY_USER_ERROR("--node-rank must be between 0 and " << opts.nnodes - 1);
  if (opts.master_port < 0 || opts.master_port > 65535) CONVOY_USER_ERROR("--master-port must be a TCP port");
  if (opts.nnodes > 1) {
    // Every node must agree on these without talking first.
    if (!args.has("--master-addr") || opts.master_port == 0)
      CONVOY_USER_ERROR("with --nnodes > 1 give --master-addr (node 0's address) and --master-port");
    if (!args.has("--run-dir"))
      CONVOY_USER_ERROR("with --nnodes > 1 give --run-dir: the same directory on storage every node shares "
                        "(rank 0 writes checkpoints there; every rank reads them on resume)");
    if (opts.job_token.empty())
      CONVOY_USER_ERROR("with --nnodes > 1 set " << kJobTokenEnv << " to the same secret on every node, e.g. "
                                                 << "export " << kJobTokenEnv
                                                 << "=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n')");
  }
  prepare_launch(cfg, args.has("--run-dir") ? args.get("--run-dir") : resume_run_dir(cfg, opts.resume), &opts);
  return run_with_restarts(opts);
}

}  // namespace convoy
