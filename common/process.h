// Starting child processes (fork + exec) that die with their parent, and
// finding our own executable. Used by the launcher and by a worker that
// starts its node's data service under mpirun.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace convoy {

struct SpawnOptions {
  std::string program;                                      // what to exec; empty: argv[0]
  std::vector<std::string> argv;                            // argv[0] is what `ps` shows
  std::vector<std::pair<std::string, std::string>> env;     // added to (or replacing in) ours
  bool capture_output = false;                              // pipe stdout and stderr back
  int parent_death_signal = 15;                             // SIGTERM when the parent dies
};

struct Child {
  pid_t pid = -1;
  int stdout_fd = -1;  // when captured
  int stderr_fd = -1;
};

// In a process just forked from `parent`: it gets `death_signal` when the
// parent dies (PR_SET_PDEATHSIG; _exit(1) at once if the parent is already
// gone) and no signal stays blocked (a parent holding StopSignals blocks
// some). Async-signal-safe, for use between fork and exec. spawn's children
// and forked workers (bench data's shards) start with it.
void become_child(pid_t parent, int death_signal);

// Throws Error when fork or the pipes fail; a failed exec ends the child
// with exit code 127 and a message on its stderr.
Child spawn(const SpawnOptions& options);

// While it lives, a command that started children is stopped the way it
// stops them: SIGINT, SIGTERM and SIGHUP are blocked and read from a
// signalfd instead, each is forwarded to every child added (a second one as
// SIGKILL, for a child that takes too long), and the command goes on waiting
// for them, so it exits only after they have (exit status 128 + signal(),
// by convention). Children die with the command in any case (spawn's
// parent_death_signal; prctl(PR_SET_PDEATHSIG) in a forked child).
// One at a time per process; the constructor must run before the children
// are started, so that no signal falls between.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  void add(pid_t pid) { children_.push_back(pid); }
  // A descriptor to poll beside others (POLLIN: call forward()).
  int fd() const { return fd_; }
  // Forwards the signals that arrived since the last call.
  void forward();
  // Waits for a child, forwarding signals meanwhile; its waitpid() status.
  int wait(pid_t pid);
  // The first stop signal received, 0 if none.
  int signal() const { return first_; }

 private:
  int fd_ = -1;
  int first_ = 0;
  sigset_t old_mask_;
  std::vector<pid_t> children_;
};

// How to exec the running program again: "/proc/self/exe", which stays
// valid even when the file on disk is replaced or deleted (a rebuild during
// a run), so every process of a run is the same build.
std::string self_executable();
// The running program's path, for display (argv[0] of children).
std::string self_path();

// A TCP port free on the loopback interface right now, for a rendezvous
// store the children will use (the kernel picks it; it can be taken again
// before they bind, which their bind error then says).
int free_local_port();

// Keeps memory that the process frees for reuse instead of handing it back
// to the kernel (glibc malloc: no mmap below 1 GiB, no trimming below 1 GiB).
// A training step allocates and frees the same large activation and
// gradient buffers every step; by default each one above 32 MB is a fresh
// mmap whose pages fault in zeroed, which cost ResNet-50 at batch 32 about
// 40% of its step (20 M page faults in 13 steps). The peak stays resident
// instead. Skipped when CONVOY_MALLOC_TUNING=0 or when the user set glibc's
// own MALLOC_* / GLIBC_TUNABLES variables.
void tune_malloc();

// A human-readable description of a waitpid() status ("exit code 1",
// "killed by signal 9 (SIGKILL)").
std::string describe_exit(int status);
// Whether a process killed by `sig` crashed (SIGSEGV, SIGBUS, SIGABRT,
// SIGFPE, SIGILL, SIGSYS, SIGTRAP) rather than being killed (SIGKILL by
// hand or the OOM killer, SIGTERM).
bool is_crash_signal(int sig);
// The crash signal a describe_exit() text names ("SIGSEGV"), "" for none.
std::string crash_signal_in(const std::string& text);

}  // namespace convoy
