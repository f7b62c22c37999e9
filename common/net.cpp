// Addressing and TCP helpers (see net.h).
#include "common/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "common/error.h"

namespace convoy {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// An IPv4 socket address's address, without the port.
std::string ipv4_text(const sockaddr* sa) {
  char buf[INET_ADDRSTRLEN] = {0};
  ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  return buf;
}

// IPv4 addresses of `host` (numeric or a name).
std::string resolve_ipv4(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || !res) return "";
  std::string out = ipv4_text(res->ai_addr);
  ::freeaddrinfo(res);
  return out;
}

sockaddr_in ipv4_sockaddr(const std::string& addr, int port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) {
    std::string resolved = resolve_ipv4(addr);
    if (resolved.empty() || ::inet_pton(AF_INET, resolved.c_str(), &sa.sin_addr) != 1)
      CONVOY_USER_ERROR("cannot resolve host '" << addr << "' to an IPv4 address");
  }
  return sa;
}

}  // namespace

std::string socket_ifname_from_env() {
  std::string v = env("CONVOY_SOCKET_IFNAME");
  return v.empty() ? env("GLOO_SOCKET_IFNAME") : v;
}

std::string interface_address(const std::string& ifname) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string out;
  for (ifaddrs* i = list; i; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && ifname == i->ifa_name) {
      out = ipv4_text(i->ifa_addr);
      break;
    }
  ::freeifaddrs(list);
  return out;
}

std::string bind_address(const std::string& spec) {
  if (spec.empty()) return "127.0.0.1";
  if (::if_nametoindex(spec.c_str()) != 0) {
    std::string a = interface_address(spec);
    if (a.empty()) CONVOY_USER_ERROR("network interface '" << spec << "' has no IPv4 address");
    return a;
  }
  std::string a = resolve_ipv4(spec);
  if (a.empty())
    CONVOY_USER_ERROR("'" << spec << "' is neither a network interface of this host nor a resolvable address");
  return a;
}

std::string local_address_towards(const std::string& host) {
  sockaddr_in to = ipv4_sockaddr(host, 9);
  int fd = CONVOY_SYSCALL(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) {
    sockaddr_in me{};
    socklen_t len = sizeof me;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len) == 0)
      out = ipv4_text(reinterpret_cast<sockaddr*>(&me));
  }
  ::close(fd);
  if (out.empty()) CONVOY_USER_ERROR("no route from this host to " << host);
  return out;
}

int listen_tcp(const std::string& addr, int port, int* bound_port) {
  sockaddr_in sa = ipv4_sockaddr(addr, port);
  int fd = CONVOY_SYSCALL(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 1024) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(CONVOY_STR("cannot listen on " << addr << ":" << port << ": " << detail::errno_text(err)
                                               << (err == EADDRINUSE ? " (is another job using this port?)" : "")));
  }
  sockaddr_in got{};
  socklen_t len = sizeof got;
  CONVOY_SYSCALL(::getsockname(fd, reinterpret_cast<sockaddr*>(&got), &len));
  if (bound_port) *bound_port = ntohs(got.sin_port);
  return fd;
}

int connect_tcp(const std::string& host, int port, std::chrono::steady_clock::time_point deadline) {
  using Clock = std::chrono::steady_clock;
  sockaddr_in sa = ipv4_sockaddr(host, port);
  int last = 0;
  for (;;) {
    int fd = CONVOY_SYSCALL(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    if (rc != 0 && errno == EINPROGRESS) {
      // Bounded by the deadline, not by the kernel's SYN retries (minutes).
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd pfd{fd, POLLOUT, 0};
      int r = ::poll(&pfd, 1, static_cast<int>(std::clamp<int64_t>(left, 0, 2000)));
      int err = ETIMEDOUT;
      socklen_t len = sizeof err;
      if (r > 0) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc == 0) {
      int flags = ::fcntl(fd, F_GETFL);
      ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
      return fd;
    }
    last = errno;
    ::close(fd);
    if (Clock::now() >= deadline)
      throw TimeoutError(CONVOY_STR("cannot reach " << host << ":" << port << ": " << detail::errno_text(last)));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::string sockaddr_text(const sockaddr* sa) {
  if (sa->sa_family == AF_INET)
    return ipv4_text(sa) + ":" + std::to_string(ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port));
  char buf[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET6) {
    auto* in = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(in->sin6_port));
  }
  return "?";
}

std::string host_key() {
  std::string boot;
  std::ifstream("/proc/sys/kernel/random/boot_id") >> boot;
  char ns[128] = {0};
  ssize_t n = ::readlink("/proc/self/ns/net", ns, sizeof ns - 1);
  std::string id = boot + "/" + (n > 0 ? std::string(ns, static_cast<size_t>(n)) : std::string());
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : id) h = (h ^ c) * 16777619u;
  char out[9];
  std::snprintf(out, sizeof out, "%08x", h);
  return out;
}

}  // namespace convoy
