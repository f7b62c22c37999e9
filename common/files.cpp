// Filesystem helpers (see files.h).
#include "common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <fstream>
#include <sstream>

#include "common/error.h"

namespace convoy {

void write_file_atomic(const std::string& path,
                       const std::function<void(const ChunkSink&)>& write) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = CONVOY_SYSCALL(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644),
                          " (" << tmp << ")");
  try {
    write([&](const void* data, size_t size) {
      auto p = static_cast<const char*>(data);
      while (size > 0) {
        ssize_t n = ::write(fd, p, size);
        if (n < 0 && errno == EINTR) continue;
        CONVOY_SYSCALL(n, " writing " << tmp);
        p += n;
        size -= static_cast<size_t>(n);
      }
    });
    CONVOY_SYSCALL(::fsync(fd), " (" << tmp << ")");
    CONVOY_SYSCALL(::close(fd));
    fd = -1;
    CONVOY_SYSCALL(::rename(tmp.c_str(), path.c_str()), " (" << tmp << " -> " << path << ")");
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  int dfd = ::open(dirname_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const std::string& content) {
  write_file_atomic(path, [&](const ChunkSink& sink) { sink(content.data(), content.size()); });
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) CONVOY_USER_ERROR("cannot read " << path << ": " << detail::errno_text(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void make_dirs(const std::string& path) {
  if (path.empty() || is_directory(path)) return;
  make_dirs(dirname_of(path));
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    CONVOY_USER_ERROR("cannot create folder " << path << ": " << detail::errno_text(errno));
}

std::string dirname_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string basename_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string join_path(const std::string& a, const std::string& b) {
  if (b.empty()) return a;
  if (a.empty() || b[0] == '/') return b;
  return a.back() == '/' ? a + b : a + "/" + b;
}

std::string absolute_path(const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  char* cwd = ::getcwd(nullptr, 0);
  std::string out = join_path(cwd ? cwd : ".", p);
  std::free(cwd);
  return out;
}

}  // namespace convoy
