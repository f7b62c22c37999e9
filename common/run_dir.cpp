// Run directory helpers (see run_dir.h).
#include "common/run_dir.h"

#include <unistd.h>

#include <ctime>
#include <random>

#include "common/files.h"

namespace convoy {

std::string default_run_dir(const Config& cfg) {
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::tm tm;
  localtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  return join_path(cfg.run_root, cfg.name + "-" + stamp);
}

std::string prepare_run_dir(const std::string& dir, const Config& cfg) {
  make_dirs(join_path(dir, "checkpoints"));
  std::string path = join_path(dir, "config.pbtxt");
  write_file_atomic(path, "# Resolved config of this run (overrides applied, paths made absolute).\n" +
                              cfg.resolved_text);
  return path;
}

std::string random_run_id() {
  std::random_device rd;
  uint64_t x = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(::getpid());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%012llx", static_cast<unsigned long long>(x & 0xffffffffffffULL));
  return buf;
}

}  // namespace convoy
