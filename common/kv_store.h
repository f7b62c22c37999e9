// The job's rendezvous key-value store: a small TCP server (in rank 0) and its
// clients (every rank), the backing of worker/dist/job_store.h's c10d::Store.
// LibTorch's TCPStore lets any process that reaches its port read and write
// keys; this one first makes each side prove it holds the job token:
//
//   server -> client  "CVYS" + 32-byte nonce Ns
//   client -> server  32-byte nonce Nc + HMAC-SHA256(token, Ns + Nc + "client")
//   server -> client  1 + HMAC-SHA256(token, Nc + Ns + "server")   (accepted)
//                     0 + reason                                    (refused)
//
// so the token never crosses the network and neither side can be
// impersonated. A refused connection is logged (with its address) and closed;
// the server and the job go on. Then requests, each a frame (u32 length, LE)
// holding an op byte and length-prefixed strings; replies hold a status byte
// (0 ok, 1 timed out, 2 error) and strings.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace convoy {

class KvServer {
 public:
  // Listens on bind_addr:port (port 0: a free one) and serves from a thread of
  // its own until destroyed.
  KvServer(const std::string& bind_addr, int port, std::string token);
  ~KvServer();
  KvServer(const KvServer&) = delete;
  KvServer& operator=(const KvServer&) = delete;

  int port() const { return port_; }
  const std::string& address() const { return addr_; }
  // Connections refused so far (wrong token, no proof in time, bad greeting).
  int refused() const { return refused_.load(); }

 private:
  struct State;
  void loop();

  std::string addr_, token_;
  int port_ = 0, listen_fd_ = -1, wake_[2] = {-1, -1};
  std::atomic<int> refused_{0};
  std::unique_ptr<State> state_;
  std::thread thread_;
};

class KvClient {
 public:
  // Connects to host:port (retrying until `timeout`: the server may still be
  // starting) and proves the token. Throws Error naming the address when the
  // server refuses this token or cannot be reached in time.
  KvClient(const std::string& host, int port, const std::string& token, std::chrono::milliseconds timeout);
  ~KvClient();
  KvClient(const KvClient&) = delete;
  KvClient& operator=(const KvClient&) = delete;

  void set(const std::string& key, const std::vector<uint8_t>& value);
  // Waits up to `timeout` for the key, then returns its value.
  std::vector<uint8_t> get(const std::string& key, std::chrono::milliseconds timeout);
  int64_t add(const std::string& key, int64_t delta);
  // Several adds in one request, in order; each key's new value.
  std::vector<int64_t> add_many(const std::vector<std::pair<std::string, int64_t>>& deltas);
  bool check(const std::vector<std::string>& keys);
  bool remove(const std::string& key);
  int64_t num_keys();
  // Throws TimeoutError naming the missing keys after `timeout`.
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);
  // Sets key to `desired` if its value is `expected` (or it is absent and
  // `expected` is empty); returns the value now stored.
  std::vector<uint8_t> compare_set(const std::string& key, const std::vector<uint8_t>& expected,
                                   const std::vector<uint8_t>& desired);

  const std::string& peer() const { return peer_; }
  // How long a reply may take (default 60 s; a WAIT adds its own timeout).
  void set_reply_timeout(std::chrono::milliseconds t) { reply_within_ = t; }

 private:
  std::vector<std::string> call(uint8_t op, const std::vector<std::string>& args,
                                std::chrono::milliseconds reply_within);
  std::mutex mu_;
  int fd_ = -1;
  std::string peer_;
  std::chrono::milliseconds reply_within_{60000};
};

}  // namespace convoy
