// `convoy launch` (see launcher.h and README.md for the protocol).
#include "launcher/launcher.h"

#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>

#include "common/cli_args.h"
#include "common/config.h"
#include "common/control_channel.h"
#include "common/error.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/run_dir.h"
#include "launcher/output_pump.h"

namespace convoy {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kGrace = std::chrono::seconds(10);
constexpr auto kSettle = std::chrono::milliseconds(500);

struct Proc {
  std::string name;  // "worker 1", "data"
  bool is_worker = false;
  Child child;
  std::unique_ptr<OutputPump> out, err;
  bool running = true;
  int status = 0;
};

int free_port() {
  int fd = CONVOY_SYSCALL(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  CONVOY_SYSCALL(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr));
  socklen_t len = sizeof addr;
  CONVOY_SYSCALL(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len));
  ::close(fd);
  return ntohs(addr.sin_port);
}

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

class Launcher {
 public:
  Launcher(const Config& cfg, std::string config_path, int nproc, std::string run_dir, int port)
      : cfg_(cfg), config_path_(std::move(config_path)), nproc_(nproc), run_dir_(std::move(run_dir)),
        port_(port), run_id_(random_run_id()), socket_(data_socket_name(run_id_)), tty_(::isatty(1)) {}

  int run() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    CONVOY_SYSCALL(::sigprocmask(SIG_BLOCK, &set, nullptr));
    sigfd_ = CONVOY_SYSCALL(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));

    std::vector<std::pair<std::string, std::string>> common = {
        {"CONVOY_LAUNCHED", "1"},
        {"CONVOY_RUN_ID", run_id_},
        {"CONVOY_RUN_DIR", run_dir_},
        {"CONVOY_DATA_SOCKET", socket_},
        {"CONVOY_PROGRESS", tty_ ? "1" : "0"},
    };
    start("data", false,
          {self_executable(), "data-service", config_path_, "--socket", socket_, "--clients", std::to_string(nproc_)},
          common);
    for (int r = 0; r < nproc_; ++r) {
      auto env = common;
      env.insert(env.end(), {{"RANK", std::to_string(r)},
                             {"WORLD_SIZE", std::to_string(nproc_)},
                             {"LOCAL_RANK", std::to_string(r)},
                             {"LOCAL_WORLD_SIZE", std::to_string(nproc_)},
                             {"MASTER_ADDR", "127.0.0.1"},
                             {"MASTER_PORT", std::to_string(port_)}});
      start("worker " + std::to_string(r), true, {self_executable(), "worker", config_path_}, env);
    }
    spdlog::info("run {}: data service and {} worker(s) started; run directory {}", run_id_, nproc_, run_dir_);
    loop();
    if (!failed_.empty() && failure_.empty()) decide_failure();
    int swept = sweep_shared_memory(socket_);
    if (swept > 0) spdlog::warn("removed {} leftover shared-memory segment(s)", swept);
    ::close(sigfd_);
    if (!failure_.empty()) {
      spdlog::error("{}", failure_);
      return exit_code_ ? exit_code_ : 1;
    }
    if (exit_code_) return exit_code_;
    spdlog::info("all workers finished; run directory {}", run_dir_);
    return 0;
  }

 private:
  void start(const std::string& name, bool is_worker, std::vector<std::string> argv,
             const std::vector<std::pair<std::string, std::string>>& env) {
    SpawnOptions opts;
    opts.argv = std::move(argv);
    opts.env = env;
    opts.capture_output = true;
    auto p = std::make_unique<Proc>();
    p->name = name;
    p->is_worker = is_worker;
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

  void stop_all(int sig) {
    for (auto& p : procs_)
      if (p->running) ::kill(p->child.pid, sig);
  }

  // Starts an orderly stop: SIGTERM now, SIGKILL after the grace period.
  void begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    stop_deadline_ = Clock::now() + kGrace;
    stop_all(SIGTERM);
  }

  void on_exit(Proc& p) {
    p.running = false;
    bool ok = WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0;
    spdlog::debug("{} (pid {}) ended: {}", p.name, p.child.pid, describe_exit(p.status));
    if (stopping_) return;
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
      for (auto& p : procs_)
        if (p->child.pid == pid && p->running) {
          p->status = status;
          on_exit(*p);
        }
    }
  }

  void on_signal() {
    signalfd_siginfo si;
    while (::read(sigfd_, &si, sizeof si) == sizeof si) {
      if (si.ssi_signo == SIGCHLD) {
        reap();
      } else if (!stopping_) {
        spdlog::warn("received signal {}; stopping all processes", si.ssi_signo);
        exit_code_ = 128 + static_cast<int>(si.ssi_signo);
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
      if (stopping_ && now > stop_deadline_ && !killed_) {
        spdlog::warn("processes still running {} s after SIGTERM; sending SIGKILL",
                     std::chrono::duration_cast<std::chrono::seconds>(kGrace).count());
        stop_all(SIGKILL);
        killed_ = true;
      }
    }
  }

  Config cfg_;
  std::string config_path_;
  int nproc_;
  std::string run_dir_;
  int port_;
  std::string run_id_, socket_;
  bool tty_;
  int sigfd_ = -1;
  std::vector<std::unique_ptr<Proc>> procs_;
  bool stopping_ = false, killed_ = false, waiting_for_service_ = false;
  Clock::time_point stop_deadline_, service_deadline_, settle_deadline_;
  std::vector<Proc*> failed_;
  std::string failure_;
  int exit_code_ = 0;
};

}  // namespace

int launch_main(const std::vector<std::string>& argv) {
  CliArgs args("launch",
               "usage: convoy launch --nproc-per-node N CONFIG [--set field=value ...] [--run-dir DIR]\n"
               "                     [--master-port PORT]\n"
               "Starts this node's data service and N worker ranks, prefixes their output with\n"
               "role and rank, and stops them all if one fails.\n"
               "example: convoy launch --nproc-per-node 2 configs/fashion_mnist.pbtxt --set train.epochs=1\n");
  args.option("--nproc-per-node").option("--set", true).option("--run-dir").option("--master-port");
  if (!args.parse(argv)) return 0;
  if (args.positional().size() != 1)
    CONVOY_USER_ERROR("convoy launch needs exactly one CONFIG (see convoy launch --help)");
  int nproc = args.get_int("--nproc-per-node", 1);
  if (nproc < 1 || nproc > 1024) CONVOY_USER_ERROR("--nproc-per-node must be between 1 and 1024");
  // Everything the user can get wrong is checked here, before any process starts.
  Config cfg = load_config(args.positional()[0], args.all("--set"));
  init_logging("launch", -1, cfg.log_level);
  std::string run_dir = args.get("--run-dir", default_run_dir(cfg));
  std::string config_path = prepare_run_dir(run_dir, cfg);
  int port = args.get_int("--master-port", 0);
  Launcher launcher(cfg, config_path, nproc, run_dir, port > 0 ? port : free_port());
  return launcher.run();
}

}  // namespace convoy
