// Framed Protobuf messages over a Unix-domain stream socket: the data
// service's control plane (protocol in proto/control.proto).
// Frame: 4-byte little-endian length, then a serialized convoy.proto.Envelope.
// Sockets live in the abstract namespace ("\0convoy-<run id>"), so no file is
// left behind on any exit path.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace convoy {
namespace proto {
class Envelope;
}

// Names shared by the data service and the workers: the control socket of a
// run, and each rank's ring in /dev/shm (the launcher sweeps this prefix).
std::string data_socket_name(const std::string& run_id);
// The socket of each of a node's K data-service shards: the base name when
// K is 1, else base + "-s<k>".
std::vector<std::string> shard_socket_names(const std::string& base, int shards);
std::string ring_name(const std::string& socket_name, int rank);

class ControlChannel {
 public:
  using Check = std::function<void()>;

  // Connects to the listener NAME, retrying until `timeout` (the service may
  // still be starting); `check` runs between tries and may throw.
  static std::unique_ptr<ControlChannel> connect(const std::string& name,
                                                 std::chrono::milliseconds timeout,
                                                 const Check& check = {});
  explicit ControlChannel(int fd) : fd_(fd) {}
  ~ControlChannel();
  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;

  void send(const proto::Envelope& msg);
  // Waits up to `timeout` for a message. Returns false when the peer closed
  // the connection; throws TimeoutError when nothing arrives in time.
  bool receive(proto::Envelope* msg, std::chrono::milliseconds timeout, const Check& check = {});
  // True once the peer has closed its end (or the connection broke).
  bool peer_closed() const;
  // True when a message (or EOF) can be read without blocking.
  bool readable(std::chrono::milliseconds wait = std::chrono::milliseconds(0)) const;
  int fd() const { return fd_; }

 private:
  void read_exact(void* buf, size_t n, std::chrono::steady_clock::time_point deadline,
                  const Check& check, bool* eof);
  int fd_;
};

class ControlListener {
 public:
  explicit ControlListener(const std::string& name);
  ~ControlListener();
  // Waits up to `timeout` for a connection; nullptr on timeout.
  std::unique_ptr<ControlChannel> accept(std::chrono::milliseconds timeout);
  int fd() const { return fd_; }

 private:
  int fd_;
};

}  // namespace convoy
