// Temporary folders for tests: made under /tmp, removed with everything in
// them when the test program exits, so test runs leave nothing behind.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

namespace convoy::testing {

class TempDirRegistry {
 public:
  ~TempDirRegistry() {
    for (const auto& p : paths_) {
      std::error_code ec;
      std::filesystem::remove_all(p, ec);
    }
  }
  std::string make(const std::string& prefix) {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    std::string path = ::mkdtemp(tmpl.data()) ? tmpl : std::string();
    std::lock_guard<std::mutex> lock(mu_);
    if (!path.empty()) paths_.push_back(path);
    return path;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> paths_;
};

// A new empty folder /tmp/<prefix>-XXXXXX, removed at exit.
inline std::string make_temp_dir(const std::string& prefix) {
  static TempDirRegistry registry;
  return registry.make(prefix);
}

}  // namespace convoy::testing
