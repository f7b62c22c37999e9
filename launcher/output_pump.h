// Relays children's output line by line with a "[role rank] " prefix, so
// every line says who wrote it. Segments ending in '\r' are progress
// snapshots: redrawn in place when our stdout is a terminal, else dropped.
// Remembers each stream's last error line for the failure report.
#pragma once

#include <string>

namespace convoy {

class OutputPump {
 public:
  OutputPump(std::string prefix, int out_fd, bool is_stderr, bool tty);
  // Reads what is available from `fd`; returns false at end of file.
  bool pump(int fd);
  void flush();  // emits a trailing partial line
  // The last line that looks like an error ("" if none), without the child's
  // timestamp and level.
  std::string last_error() const;

 private:
  void emit(const std::string& line, bool in_place);
  std::string prefix_;
  int out_fd_;
  bool is_stderr_, tty_;
  std::string buf_;
  std::string last_error_;
};

// True for errors that are consequences of another process dying (a peer's
// connection closed or reset, rank 0's store lost), not causes.
bool is_peer_symptom(const std::string& error);

}  // namespace convoy
