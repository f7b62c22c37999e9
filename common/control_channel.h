// Framed Protobuf messages over a Unix-domain stream socket: the data
// service's control plane (protocol in proto/control.proto).
// Frame: 4-byte little-endian length, then a serialized convoy.proto.Envelope.
// Sockets are files in a private directory (mode 0700, the socket 0600):
// socket_dir(), per user and host, so only this user's processes can connect,
// and the workers also present the job token in their Hello. The listener
// removes its file on exit (and a stale one left by a killed process when it
// starts); the launcher sweeps its run's names.
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
// Where sockets live: CONVOY_SOCKET_DIR, else $TMPDIR (or /tmp)/convoy-<uid>-<host key>.
std::string socket_dir();
std::string control_socket_path(const std::string& name);
// Removes the socket files of `names` (a listener killed by a signal cannot)
// and socket_dir() when nothing else is left in it.
void remove_socket_files(const std::vector<std::string>& names);
// Creates `dir` with mode 0700 unless it exists; refuses one that is not a
// directory owned by this user with no access for others.
void ensure_private_dir(const std::string& dir);
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
  std::string name_;
  int fd_;
};

}  // namespace convoy
