// Run directory helpers (see run_dir.h).
#include "common/run_dir.h"

#include <dirent.h>
#include <unistd.h>

#include <cctype>

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

std::string latest_run_dir(const Config& cfg) {
  DIR* d = ::opendir(cfg.run_root.c_str());
  if (!d) return "";
  std::string prefix = cfg.name + "-", latest;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    // Only <name>-YYYYmmdd-HHMMSS: not another config whose name extends ours.
    if (name.rfind(prefix, 0) != 0 || name.size() != prefix.size() + 15) continue;
    std::string stamp = name.substr(prefix.size());
    bool ok = stamp[8] == '-';
    for (size_t i = 0; i < stamp.size(); ++i)
      if (i != 8) ok = ok && std::isdigit(static_cast<unsigned char>(stamp[i]));
    if (ok && is_directory(join_path(cfg.run_root, name)) && name > latest) latest = name;
  }
  ::closedir(d);
  return latest.empty() ? "" : join_path(cfg.run_root, latest);
}

std::string random_run_id() {
  std::random_device rd;
  uint64_t x = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(::getpid());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%012llx", static_cast<unsigned long long>(x & 0xffffffffffffULL));
  return buf;
}

}  // namespace convoy
