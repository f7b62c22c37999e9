// Child output relay (see output_pump.h).
#include "launcher/output_pump.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace convoy {
namespace {

// Shared by all pumps of the process: whether a progress line is on screen.
bool g_in_place_shown = false;

void write_all(int fd, const std::string& s) {
  const char* p = s.data();
  size_t left = s.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

std::string strip_escapes(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\033') {
      while (i < s.size() && !std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
      continue;
    }
    out += s[i];
  }
  return out;
}

bool looks_like_error(std::string line) {
  std::transform(line.begin(), line.end(), line.begin(), ::tolower);
  return line.find("error") != std::string::npos || line.find("critical") != std::string::npos ||
         line.find("terminate called") != std::string::npos;
}

}  // namespace

OutputPump::OutputPump(std::string prefix, int out_fd, bool is_stderr, bool tty)
    : prefix_(std::move(prefix)), out_fd_(out_fd), is_stderr_(is_stderr), tty_(tty) {}

void OutputPump::emit(const std::string& line, bool in_place) {
  if (in_place) {
    if (!tty_) return;
    std::string text = strip_escapes(line);
    write_all(1, text.empty() ? "\r\033[K" : "\r\033[K" + prefix_ + text);
    g_in_place_shown = !text.empty();
    return;
  }
  if (g_in_place_shown) {
    write_all(1, "\r\033[K");
    g_in_place_shown = false;
  }
  write_all(out_fd_, prefix_ + line + "\n");
  if (is_stderr_ && !line.empty() && looks_like_error(line)) last_error_ = line;
}

std::string OutputPump::last_error() const {
  // Only error lines: a process killed without a word has no "last error".
  std::string line = last_error_;
  // Children log "HH:MM:SS.mmm level message" under the launcher.
  if (line.size() > 13 && line[2] == ':' && line[5] == ':' && line[8] == '.' && line[12] == ' ') {
    auto space = line.find(' ', 13);
    if (space != std::string::npos) line = line.substr(space + 1);
  }
  return line;
}

bool is_peer_symptom(const std::string& error) {
  // A rank that lost rank 0's store is a symptom too: rank 0 exiting on its
  // own error closes the store, and the other ranks may report first. So is
  // a data service that closed a handshake: it was stopped, or it failed
  // and says why itself.
  for (const char* s : {"Connection closed by peer", "Connection reset", "Broken pipe", "the data service exited",
                        "data service was stopped", "lost the rendezvous store",
                        "closed the connection during the handshake"})
    if (error.find(s) != std::string::npos) return true;
  return false;
}

bool OutputPump::pump(int fd) {
  char chunk[8192];
  ssize_t n = ::read(fd, chunk, sizeof chunk);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) {
    flush();
    return false;
  }
  buf_.append(chunk, static_cast<size_t>(n));
  size_t start = 0;
  for (size_t i = 0; i < buf_.size(); ++i) {
    if (buf_[i] == '\n' || buf_[i] == '\r') {
      emit(buf_.substr(start, i - start), buf_[i] == '\r');
      start = i + 1;
    }
  }
  buf_.erase(0, start);
  return true;
}

void OutputPump::flush() {
  if (!buf_.empty()) emit(buf_, false);
  buf_.clear();
}

}  // namespace convoy
