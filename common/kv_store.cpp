// The token-checked rendezvous store (see kv_store.h).
#include "common/kv_store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "common/error.h"
#include "common/job_token.h"
#include "common/net.h"

namespace convoy {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kMagic[] = "CVYS";
constexpr size_t kNonce = 32, kProof = 32;
constexpr uint32_t kMaxFrame = 64u << 20;
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

enum Op : uint8_t { kSet = 1, kGet, kAdd, kCheck, kDelete, kNumKeys, kWait, kCompareSet, kAddMany };
enum Status : uint8_t { kOk = 0, kTimedOut = 1, kFailed = 2 };

void put_u32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}
std::string i64_bytes(int64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}
int64_t bytes_i64(const std::string& s) {
  CONVOY_CHECK(s.size() == 8, "malformed integer in a store message");
  int64_t v;
  std::memcpy(&v, s.data(), 8);
  return v;
}
std::string to_string(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::vector<uint8_t> to_bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// A message: a kind byte, then length-prefixed strings.
std::string encode(uint8_t kind, const std::vector<std::string>& parts) {
  std::string body(1, static_cast<char>(kind));
  for (const auto& p : parts) {
    put_u32(&body, static_cast<uint32_t>(p.size()));
    body += p;
  }
  std::string frame;
  put_u32(&frame, static_cast<uint32_t>(body.size()));
  return frame + body;
}
bool decode(const std::string& body, uint8_t* kind, std::vector<std::string>* parts) {
  if (body.empty()) return false;
  *kind = static_cast<uint8_t>(body[0]);
  size_t at = 1;
  while (at < body.size()) {
    if (body.size() - at < 4) return false;
    uint32_t n = get_u32(body.data() + at);
    at += 4;
    if (body.size() - at < n) return false;
    parts->push_back(body.substr(at, n));
    at += n;
  }
  return true;
}

bool send_all(int fd, const std::string& data) {
  size_t at = 0;
  while (at < data.size()) {
    ssize_t n = ::send(fd, data.data() + at, data.size() - at, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    at += static_cast<size_t>(n);
  }
  return true;
}

// Reads exactly n bytes before `deadline`; false on EOF, error or timeout.
bool recv_exact(int fd, char* buf, size_t n, Clock::time_point deadline) {
  size_t at = 0;
  while (at < n) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    int r = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    ssize_t got = ::recv(fd, buf + at, n - at, 0);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) return false;
    at += static_cast<size_t>(got);
  }
  return true;
}

std::string peer_name(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return sockaddr_text(reinterpret_cast<sockaddr*>(&ss));
}

}  // namespace

// ---------------------------------------------------------------- server --

struct KvServer::State {
  struct Conn {
    int fd = -1;
    std::string peer, nonce, in;
    bool authed = false;
    Clock::time_point greeted;
    // A WAIT in progress: the keys and when it times out.
    std::vector<std::string> waiting;
    Clock::time_point wait_deadline;
  };
  State(const std::string& token, std::atomic<int>& refused) : token(token), refused(refused) {}

  // A new connection: greeted with the magic and our nonce, then it must
  // prove the token (read_from) within kHandshakeTimeout.
  void accept_from(int listen_fd) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Conn c;
    c.fd = fd;
    c.peer = peer_name(fd);
    c.nonce = random_bytes(kNonce);
    c.greeted = Clock::now();
    if (send_all(fd, std::string(kMagic, 4) + c.nonce))
      conns.push_back(std::move(c));
    else
      ::close(fd);
  }

  // What conns[i] sent: its proof of the token first, then requests. The
  // connection may be dropped (conns shrinks).
  void read_from(size_t i) {
    auto& c = conns[i];
    char buf[65536];
    ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      drop(i, c.authed ? "" : "closed before proving the job token");
      return;
    }
    c.in.append(buf, static_cast<size_t>(n));
    if (!c.authed && !authenticate(i)) return;
    try {
      while (c.in.size() >= 4) {
        uint32_t len = get_u32(c.in.data());
        if (len > kMaxFrame) throw Error("request too large");
        if (c.in.size() < 4 + len) break;
        uint8_t op = 0;
        std::vector<std::string> args;
        if (!decode(c.in.substr(4, len), &op, &args)) throw Error("malformed request");
        c.in.erase(0, 4 + len);
        if (!handle(c, op, args)) throw Error("client went away");
      }
    } catch (const std::exception& e) {
      spdlog::warn("rendezvous: dropping {}: {}", c.peer, e.what());
      drop(i, "");
    }
  }

  // Checks conns[i]'s proof once it has arrived and proves ours back. False
  // while it is incomplete, or when it was wrong (the connection dropped).
  bool authenticate(size_t i) {
    auto& c = conns[i];
    if (c.in.size() < kNonce + kProof) return false;
    std::string theirs = c.in.substr(0, kNonce), proof = c.in.substr(kNonce, kProof);
    c.in.erase(0, kNonce + kProof);
    if (!tokens_equal(proof, token_proof(token, c.nonce + theirs + "client"))) {
      drop(i, "wrong job token (CONVOY_JOB_TOKEN must match the job's)");
      return false;
    }
    c.authed = true;
    send_all(c.fd, std::string(1, '\1') + token_proof(token, theirs + c.nonce + "server"));
    return true;
  }

  // One request; false when the answer could not be sent.
  bool handle(Conn& c, uint8_t op, const std::vector<std::string>& a) {
    auto need = [&](size_t n) {
      if (a.size() != n) throw Error("malformed request");
    };
    switch (op) {
      case kSet:
        need(2);
        kv[a[0]] = a[1];
        return send_all(c.fd, encode(kOk, {}));
      case kGet: {
        need(1);
        auto it = kv.find(a[0]);
        if (it == kv.end()) return send_all(c.fd, encode(kFailed, {"no key " + a[0]}));
        return send_all(c.fd, encode(kOk, {it->second}));
      }
      case kAdd:
        need(2);
        return send_all(c.fd, encode(kOk, {i64_bytes(add(a[0], bytes_i64(a[1])))}));
      case kAddMany: {
        if (a.size() % 2 != 0) throw Error("malformed request");
        std::vector<std::string> values;
        for (size_t i = 0; i < a.size(); i += 2) values.push_back(i64_bytes(add(a[i], bytes_i64(a[i + 1]))));
        return send_all(c.fd, encode(kOk, values));
      }
      case kCheck:
        return send_all(c.fd, encode(kOk, {has_all(a) ? "1" : "0"}));
      case kDelete:
        need(1);
        return send_all(c.fd, encode(kOk, {kv.erase(a[0]) ? "1" : "0"}));
      case kNumKeys:
        return send_all(c.fd, encode(kOk, {i64_bytes(static_cast<int64_t>(kv.size()))}));
      case kWait: {
        if (a.empty()) throw Error("malformed request");
        c.waiting.assign(a.begin() + 1, a.end());
        c.wait_deadline = Clock::now() + milliseconds(bytes_i64(a[0]));
        return true;  // answered by settle_waits
      }
      case kCompareSet: {
        need(3);
        auto it = kv.find(a[0]);
        if ((it == kv.end() && a[1].empty()) || (it != kv.end() && it->second == a[1])) {
          kv[a[0]] = a[2];
          return send_all(c.fd, encode(kOk, {a[2]}));
        }
        return send_all(c.fd, encode(kOk, {it == kv.end() ? a[1] : it->second}));
      }
      default:
        throw Error("unknown request " + std::to_string(op));
    }
  }

  int64_t add(const std::string& key, int64_t delta) {
    auto it = kv.find(key);
    const int64_t v = delta + (it != kv.end() ? std::stoll(it->second) : 0);
    kv[key] = std::to_string(v);
    return v;
  }

  bool has_all(const std::vector<std::string>& keys) const {
    for (const auto& k : keys)
      if (!kv.count(k)) return false;
    return true;
  }

  // Answers every WAIT whose keys are all there, or whose time is up.
  void settle_waits() {
    auto now = Clock::now();
    for (auto& c : conns) {
      if (c.waiting.empty()) continue;
      if (has_all(c.waiting)) {
        c.waiting.clear();
        send_all(c.fd, encode(kOk, {}));
      } else if (now >= c.wait_deadline) {
        std::string missing;
        for (const auto& k : c.waiting)
          if (!kv.count(k)) missing += (missing.empty() ? "" : ", ") + k;
        c.waiting.clear();
        send_all(c.fd, encode(kTimedOut, {missing}));
      }
    }
  }

  // Strangers that connect and say nothing are not kept around.
  void drop_silent_strangers() {
    auto now = Clock::now();
    for (size_t i = conns.size(); i-- > 0;)
      if (!conns[i].authed && now - conns[i].greeted > kHandshakeTimeout)
        drop(i, "no proof of the job token within 10 s");
  }

  // Closes conns[i]; a refused peer (non-empty why) is told why first.
  void drop(size_t i, const std::string& why) {
    if (!why.empty()) {
      ++refused;
      spdlog::warn("rendezvous: refused a connection from {}: {}; the job goes on", conns[i].peer, why);
      send_all(conns[i].fd, std::string(1, '\0') + encode(0, {why}));  // status 0, then why
    }
    ::close(conns[i].fd);
    conns.erase(conns.begin() + static_cast<long>(i));
  }

  const std::string& token;
  std::atomic<int>& refused;
  std::map<std::string, std::string> kv;
  std::vector<Conn> conns;
};

KvServer::KvServer(const std::string& bind_addr, int port, std::string token)
    : addr_(bind_addr), token_(std::move(token)), state_(std::make_unique<State>(token_, refused_)) {
  CONVOY_CHECK(!token_.empty(), "the rendezvous store needs a job token");
  listen_fd_ = listen_tcp(bind_addr, port, &port_);
  CONVOY_SYSCALL(::pipe2(wake_, O_CLOEXEC | O_NONBLOCK));
  thread_ = std::thread([this] { loop(); });
}

KvServer::~KvServer() {
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  if (thread_.joinable()) thread_.join();
  for (auto& c : state_->conns) ::close(c.fd);
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void KvServer::loop() {
  auto& st = *state_;
  for (;;) {
    std::vector<pollfd> fds = {{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (const auto& c : st.conns) fds.push_back({c.fd, POLLIN, 0});
    int r = ::poll(fds.data(), fds.size(), 100);
    if (r < 0 && errno != EINTR) {
      spdlog::error("rendezvous: poll failed: {}", detail::errno_text(errno));
      return;
    }
    if (fds[0].revents) return;
    if (fds[1].revents & POLLIN) st.accept_from(listen_fd_);
    // fds[2 + i] matches conns[i] as they were when polled; walk backwards so
    // dropping one keeps the earlier indices valid.
    for (size_t i = fds.size() - 2; i-- > 0;) {
      if (i >= st.conns.size() || fds[2 + i].fd != st.conns[i].fd) continue;
      if (fds[2 + i].revents & (POLLIN | POLLHUP | POLLERR)) st.read_from(i);
    }
    st.drop_silent_strangers();
    st.settle_waits();
  }
}

// ---------------------------------------------------------------- client --

KvClient::KvClient(const std::string& host, int port, const std::string& token, milliseconds timeout) {
  CONVOY_CHECK(!token.empty(), "joining the rendezvous needs a job token (" << kJobTokenEnv << ")");
  peer_ = host + ":" + std::to_string(port);
  auto deadline = Clock::now() + timeout;
  fd_ = connect_tcp(host, port, deadline);  // retries until the deadline
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto hs_deadline = std::min(deadline, Clock::now() + kHandshakeTimeout) + std::chrono::seconds(5);
  char greet[4 + kNonce];
  if (!recv_exact(fd_, greet, sizeof greet, hs_deadline) || std::memcmp(greet, kMagic, 4) != 0) {
    ::close(fd_);
    throw Error(CONVOY_STR(peer_ << " is not a Convoy rendezvous store (no greeting)"));
  }
  std::string server_nonce(greet + 4, kNonce), mine = random_bytes(kNonce);
  send_all(fd_, mine + token_proof(token, server_nonce + mine + "client"));
  char status = 0;
  if (!recv_exact(fd_, &status, 1, hs_deadline)) {
    ::close(fd_);
    throw Error(CONVOY_STR("the rendezvous store at " << peer_ << " closed the connection during the handshake"));
  }
  if (status != 1) {
    // A refusal: a frame whose string says why.
    std::string why = "refused";
    char len[4];
    if (recv_exact(fd_, len, 4, hs_deadline)) {
      std::string body(std::min<uint32_t>(get_u32(len), 4096), '\0');
      uint8_t kind;
      std::vector<std::string> parts;
      if (recv_exact(fd_, body.data(), body.size(), hs_deadline) && decode(body, &kind, &parts) && !parts.empty())
        why = parts[0];
    }
    ::close(fd_);
    throw UserError(CONVOY_STR("the rendezvous store at " << peer_ << " refused this process: " << why));
  }
  char proof[kProof];
  if (!recv_exact(fd_, proof, kProof, hs_deadline) ||
      !tokens_equal(std::string(proof, kProof), token_proof(token, mine + server_nonce + "server"))) {
    ::close(fd_);
    throw UserError(CONVOY_STR("the process at " << peer_ << " could not prove the job token: not this job's store"));
  }
}

KvClient::~KvClient() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<std::string> KvClient::call(uint8_t op, const std::vector<std::string>& args, milliseconds reply_within) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!send_all(fd_, encode(op, args)))
    throw Error(CONVOY_STR("lost the rendezvous store at " << peer_ << ": " << detail::errno_text(errno)));
  auto deadline = Clock::now() + reply_within;
  char len[4];
  if (!recv_exact(fd_, len, 4, deadline))
    throw Error(CONVOY_STR("lost the rendezvous store at " << peer_ << " (rank 0 gone or unreachable)"));
  uint32_t n = get_u32(len);
  CONVOY_CHECK(n >= 1 && n <= kMaxFrame, "malformed reply from the rendezvous store");
  std::string body(n, '\0');
  if (!recv_exact(fd_, body.data(), n, deadline))
    throw Error(CONVOY_STR("lost the rendezvous store at " << peer_ << " (rank 0 gone or unreachable)"));
  uint8_t status;
  std::vector<std::string> parts;
  CONVOY_CHECK(decode(body, &status, &parts), "malformed reply from the rendezvous store");
  if (status == kTimedOut)
    throw TimeoutError(CONVOY_STR("timed out waiting for " << (parts.empty() ? "keys" : parts[0])
                                                          << " in the rendezvous store at " << peer_));
  if (status != kOk) throw Error("rendezvous store: " + (parts.empty() ? std::string("error") : parts[0]));
  return parts;
}

void KvClient::set(const std::string& key, const std::vector<uint8_t>& value) {
  call(kSet, {key, to_string(value)}, reply_within_);
}

std::vector<uint8_t> KvClient::get(const std::string& key, milliseconds timeout) {
  wait({key}, timeout);
  auto r = call(kGet, {key}, reply_within_);
  return to_bytes(r.at(0));
}

int64_t KvClient::add(const std::string& key, int64_t delta) {
  return bytes_i64(call(kAdd, {key, i64_bytes(delta)}, reply_within_).at(0));
}

std::vector<int64_t> KvClient::add_many(const std::vector<std::pair<std::string, int64_t>>& deltas) {
  std::vector<std::string> args;
  for (const auto& [key, delta] : deltas) {
    args.push_back(key);
    args.push_back(i64_bytes(delta));
  }
  const auto r = call(kAddMany, args, reply_within_);
  CONVOY_CHECK(r.size() == deltas.size(), "rendezvous store: " << r.size() << " values for " << deltas.size() << " keys");
  std::vector<int64_t> out;
  for (const auto& v : r) out.push_back(bytes_i64(v));
  return out;
}

bool KvClient::check(const std::vector<std::string>& keys) { return call(kCheck, keys, reply_within_).at(0) == "1"; }

bool KvClient::remove(const std::string& key) { return call(kDelete, {key}, reply_within_).at(0) == "1"; }

int64_t KvClient::num_keys() { return bytes_i64(call(kNumKeys, {}, reply_within_).at(0)); }

void KvClient::wait(const std::vector<std::string>& keys, milliseconds timeout) {
  std::vector<std::string> args = {i64_bytes(timeout.count())};
  args.insert(args.end(), keys.begin(), keys.end());
  call(kWait, args, timeout + reply_within_);
}

std::vector<uint8_t> KvClient::compare_set(const std::string& key, const std::vector<uint8_t>& expected,
                                           const std::vector<uint8_t>& desired) {
  return to_bytes(call(kCompareSet, {key, to_string(expected), to_string(desired)}, reply_within_).at(0));
}

}  // namespace convoy
