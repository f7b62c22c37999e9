// Run directory helpers (see run_dir.h).
#include "common/run_dir.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>

#include <ctime>
#include <random>

#include "common/error.h"
#include "common/files.h"

namespace convoy {

namespace {

constexpr size_t kStampSize = 15;  // YYYYmmdd-HHMMSS

// For <name>-YYYYmmdd-HHMMSS[-N]: the stamp and N (1 without a suffix), or
// {"", 0} for anything else, e.g. another config whose name extends ours.
std::pair<std::string, long> parse_run_name(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0 || name.size() < prefix.size() + kStampSize) return {"", 0};
  std::string stamp = name.substr(prefix.size(), kStampSize);
  bool ok = stamp[8] == '-';
  for (size_t i = 0; i < stamp.size(); ++i)
    if (i != 8) ok = ok && std::isdigit(static_cast<unsigned char>(stamp[i]));
  std::string rest = name.substr(prefix.size() + kStampSize);
  long n = 1;
  if (!rest.empty()) {
    ok = ok && rest.size() >= 2 && rest.size() <= 8 && rest[0] == '-' && rest[1] != '0';
    for (size_t i = 1; i < rest.size(); ++i) ok = ok && std::isdigit(static_cast<unsigned char>(rest[i]));
    if (ok) n = std::stol(rest.substr(1));
  }
  return ok ? std::make_pair(stamp, n) : std::make_pair(std::string(), 0L);
}

}  // namespace

std::string create_run_dir(const Config& cfg) {
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::tm tm;
  localtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  make_dirs(cfg.run_root);
  const std::string base = join_path(cfg.run_root, cfg.name + "-" + stamp);
  for (int n = 1;; ++n) {
    std::string dir = n == 1 ? base : base + "-" + std::to_string(n);
    if (::mkdir(dir.c_str(), 0777) == 0) return dir;
    if (errno != EEXIST) throw Error(CONVOY_STR("cannot create " << dir << ": " << detail::errno_text(errno)));
  }
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
  const std::string prefix = cfg.name + "-";
  std::string latest;
  std::pair<std::string, long> newest{"", 0};
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    auto key = parse_run_name(name, prefix);
    if (key.second > 0 && key > newest && is_directory(join_path(cfg.run_root, name))) {
      newest = key;
      latest = name;
    }
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
