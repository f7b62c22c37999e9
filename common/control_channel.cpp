// Control channel over Unix sockets in a private directory (see control_channel.h).
#include "common/control_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/error.h"
#include "common/net.h"
#include "proto/control.pb.h"

namespace convoy {
namespace {

constexpr uint32_t kMaxFrame = 64u << 20;

socklen_t socket_address(const std::string& name, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  std::string path = control_socket_path(name);
  CONVOY_CHECK(path.size() < sizeof addr->sun_path,
               "socket path too long: " << path << " (set CONVOY_SOCKET_DIR to a shorter directory)");
  std::memcpy(addr->sun_path, path.data(), path.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
}

int poll_ms(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(left.count(), 100)));
}

}  // namespace

std::string data_socket_name(const std::string& run_id) { return "convoy-" + run_id; }
std::vector<std::string> shard_socket_names(const std::string& base, int shards) {
  if (shards <= 1) return {base};
  std::vector<std::string> out;
  for (int k = 0; k < shards; ++k) out.push_back(base + "-s" + std::to_string(k));
  return out;
}
std::string socket_dir() {
  const char* set = std::getenv("CONVOY_SOCKET_DIR");
  if (set && *set) return set;
  const char* tmp = std::getenv("TMPDIR");
  std::string base = tmp && *tmp ? tmp : "/tmp";
  return base + "/convoy-" + std::to_string(::getuid()) + "-" + host_key();
}

std::string control_socket_path(const std::string& name) { return socket_dir() + "/" + name; }

void remove_socket_files(const std::vector<std::string>& names) {
  for (const auto& name : names) ::unlink(control_socket_path(name).c_str());
  ::rmdir(socket_dir().c_str());  // fails, harmlessly, while another run has a socket there
}

void ensure_private_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw Error(CONVOY_STR("cannot create " << dir << ": " << detail::errno_text(errno)));
  struct stat st;
  CONVOY_SYSCALL(::lstat(dir.c_str(), &st), "lstat " << dir);
  // Another user's directory (or a link planted in /tmp) is never used.
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::getuid() || (st.st_mode & 077) != 0)
    CONVOY_USER_ERROR(dir << " is not a private directory of this user (mode 0700): remove it, or set "
                          << "CONVOY_SOCKET_DIR to one");
}

std::string ring_name(const std::string& socket_name, int rank) {
  return "/" + socket_name + "-r" + std::to_string(rank);
}

std::unique_ptr<ControlChannel> ControlChannel::connect(const std::string& name,
                                                        std::chrono::milliseconds timeout,
                                                        const Check& check) {
  sockaddr_un addr;
  socklen_t len = socket_address(name, &addr);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int fd = CONVOY_SYSCALL(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0)
      return std::make_unique<ControlChannel>(fd);
    int err = errno;
    ::close(fd);
    CONVOY_CHECK(err == ECONNREFUSED || err == ENOENT || err == EAGAIN,
                 "connect to data service " << addr.sun_path << ": " << detail::errno_text(err));
    if (check) check();
    if (std::chrono::steady_clock::now() >= deadline)
      throw TimeoutError(CONVOY_STR("no data service listening on " << addr.sun_path << " after "
                                                                     << timeout.count() / 1000.0
                                                                     << " s"));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

ControlChannel::~ControlChannel() { ::close(fd_); }

void ControlChannel::send(const proto::Envelope& msg) {
  std::string body;
  CONVOY_CHECK(msg.SerializeToString(&body), "cannot serialize control message");
  uint32_t n = static_cast<uint32_t>(body.size());
  unsigned char len[4] = {static_cast<unsigned char>(n), static_cast<unsigned char>(n >> 8),
                          static_cast<unsigned char>(n >> 16), static_cast<unsigned char>(n >> 24)};
  std::string frame(reinterpret_cast<char*>(len), 4);
  frame += body;
  const char* p = frame.data();
  size_t left = frame.size();
  while (left > 0) {
    ssize_t w = ::send(fd_, p, left, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    CONVOY_SYSCALL(w, " (control channel send)");
    p += w;
    left -= static_cast<size_t>(w);
  }
}

void ControlChannel::read_exact(void* buf, size_t n, std::chrono::steady_clock::time_point deadline,
                                const Check& check, bool* eof) {
  auto* p = static_cast<char*>(buf);
  size_t got = 0;
  while (got < n) {
    pollfd pfd{fd_, POLLIN, 0};
    int r = ::poll(&pfd, 1, poll_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    CONVOY_SYSCALL(r, " (control channel poll)");
    if (r == 0) {
      if (check) check();
      if (std::chrono::steady_clock::now() >= deadline)
        throw TimeoutError("control channel: no message before the timeout");
      continue;
    }
    ssize_t k = ::recv(fd_, p + got, n - got, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0 && (k == 0 || errno == ECONNRESET)) {
      CONVOY_CHECK(got == 0, "control channel closed in the middle of a message");
      *eof = true;
      return;
    }
    CONVOY_SYSCALL(k, " (control channel recv)");
    got += static_cast<size_t>(k);
  }
}

bool ControlChannel::receive(proto::Envelope* msg, std::chrono::milliseconds timeout,
                             const Check& check) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  unsigned char len[4];
  bool eof = false;
  read_exact(len, 4, deadline, check, &eof);
  if (eof) return false;
  uint32_t n = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint32_t>(len[3]) << 24);
  CONVOY_CHECK(n <= kMaxFrame, "control message of " << n << " bytes exceeds the limit");
  std::string body(n, '\0');
  read_exact(body.data(), n, deadline, check, &eof);
  CONVOY_CHECK(!eof, "control channel closed in the middle of a message");
  CONVOY_CHECK(msg->ParseFromString(body), "malformed control message");
  return true;
}

bool ControlChannel::readable(std::chrono::milliseconds wait) const {
  pollfd pfd{fd_, POLLIN, 0};
  return ::poll(&pfd, 1, static_cast<int>(wait.count())) > 0;
}

bool ControlChannel::peer_closed() const {
  pollfd pfd{fd_, POLLRDHUP, 0};
  return ::poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

ControlListener::ControlListener(const std::string& name) : name_(name) {
  ensure_private_dir(socket_dir());
  sockaddr_un addr;
  socklen_t len = socket_address(name, &addr);
  fd_ = CONVOY_SYSCALL(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len);
  if (rc != 0 && errno == EADDRINUSE) {
    // A socket file left by a process that died: remove it if nobody answers.
    int probe = CONVOY_SYSCALL(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), len) == 0;
    ::close(probe);
    if (!live) {
      ::unlink(addr.sun_path);
      rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len);
    } else {
      errno = EADDRINUSE;
    }
  }
  if (rc != 0) {
    int err = errno;
    ::close(fd_);
    throw Error(CONVOY_STR("bind " << addr.sun_path << ": " << detail::errno_text(err)
                                    << (err == EADDRINUSE ? " (another data service of this run?)" : "")));
  }
  CONVOY_SYSCALL(::chmod(addr.sun_path, 0600));
  CONVOY_SYSCALL(::listen(fd_, 64));
}

ControlListener::~ControlListener() {
  ::close(fd_);
  remove_socket_files({name_});
}

std::unique_ptr<ControlChannel> ControlListener::accept(std::chrono::milliseconds timeout) {
  pollfd pfd{fd_, POLLIN, 0};
  int r = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  if (r <= 0) return nullptr;
  int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return nullptr;
  return std::make_unique<ControlChannel>(fd);
}

}  // namespace convoy
