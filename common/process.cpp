// Child processes (see process.h).
#include "common/process.h"

#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

#include "common/error.h"

extern char** environ;

namespace convoy {

Child spawn(const SpawnOptions& options) {
  CONVOY_CHECK(!options.argv.empty(), "spawn needs a program");
  // Everything the child needs is prepared before fork: after fork only
  // async-signal-safe calls are allowed (we may have threads).
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq) env[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
  }
  for (const auto& [k, v] : options.env) env[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, argv;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = options.argv;
  const std::string program = options.program.empty() ? options.argv[0] : options.program;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);

  int out[2] = {-1, -1}, err[2] = {-1, -1};
  if (options.capture_output) {
    CONVOY_SYSCALL(::pipe2(out, O_CLOEXEC));
    CONVOY_SYSCALL(::pipe2(err, O_CLOEXEC));
  }
  pid_t parent = ::getpid();
  pid_t pid = CONVOY_SYSCALL(::fork());
  if (pid == 0) {
    if (options.capture_output) {
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
    }
    become_child(parent, options.parent_death_signal);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGPIPE, SIG_DFL);
    ::execve(program.c_str(), argv.data(), envp.data());
    const char msg[] = "convoy: exec failed\n";
    ssize_t ignored = ::write(2, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(127);
  }
  Child child;
  child.pid = pid;
  if (options.capture_output) {
    ::close(out[1]);
    ::close(err[1]);
    child.stdout_fd = out[0];
    child.stderr_fd = err[0];
  }
  return child;
}

void become_child(pid_t parent, int death_signal) {
  ::prctl(PR_SET_PDEATHSIG, death_signal);
  if (::getppid() != parent) ::_exit(1);  // the parent died before prctl
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

StopSignals::StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, sig);
  CONVOY_SYSCALL(::sigprocmask(SIG_BLOCK, &set, &old_mask_));
  fd_ = CONVOY_SYSCALL(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
}

StopSignals::~StopSignals() {
  ::close(fd_);
  ::sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
}

void StopSignals::forward() {
  signalfd_siginfo si;
  while (::read(fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    const int sig = static_cast<int>(si.ssi_signo);
    const int send = first_ ? SIGKILL : sig;
    if (!first_) first_ = sig;
    for (pid_t pid : children_) ::kill(pid, send);
  }
}

int StopSignals::wait(pid_t pid) {
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) CONVOY_SYSCALL(r);
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) forward();
  }
}

std::string self_executable() { return "/proc/self/exe"; }

std::string self_path() {
  char buf[4096];
  ssize_t n = CONVOY_SYSCALL(::readlink("/proc/self/exe", buf, sizeof buf - 1));
  buf[n] = '\0';
  return buf;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return "killed by signal " + std::to_string(sig) + (name ? std::string(" (SIG") + name + ")" : "");
  }
  return "status " + std::to_string(status);
}

bool is_crash_signal(int sig) {
  for (int s : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGSYS, SIGTRAP})
    if (sig == s) return true;
  return false;
}

std::string crash_signal_in(const std::string& text) {
  for (int s : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGSYS, SIGTRAP}) {
    const char* name = sigabbrev_np(s);
    if (name && text.find(std::string("(SIG") + name + ")") != std::string::npos) return std::string("SIG") + name;
  }
  return "";
}

int free_local_port() {
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

void tune_malloc() {
  for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"})
    if (std::getenv(v)) return;
  const char* opt = std::getenv("CONVOY_MALLOC_TUNING");
  if (opt && std::strcmp(opt, "0") == 0) return;
  ::mallopt(M_MMAP_THRESHOLD, 1 << 30);
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
  ::mallopt(M_TOP_PAD, 64 << 20);
}

}  // namespace convoy
