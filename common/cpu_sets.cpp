// CPU sets (see cpu_sets.h).
#include "common/cpu_sets.h"

#include <dirent.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "common/error.h"

namespace convoy {

CpuList parse_cpu_list(const std::string& text, const std::string& what) {
  CpuList out;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, ',');) {
    part.erase(std::remove_if(part.begin(), part.end(), ::isspace), part.end());
    if (part.empty()) continue;
    size_t dash = part.find('-');
    try {
      size_t used = 0;
      int lo = std::stoi(part.substr(0, dash), &used);
      int hi = dash == std::string::npos ? lo : std::stoi(part.substr(dash + 1));
      if (lo < 0 || hi < lo || hi > 4095) throw std::invalid_argument(part);
      for (int c = lo; c <= hi; ++c) out.push_back(c);
    } catch (const std::exception&) {
      CONVOY_USER_ERROR(what << ": '" << text << "' is not a CPU list (e.g. 0-3,8)");
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.empty()) CONVOY_USER_ERROR(what << ": empty CPU list");
  return out;
}

std::string format_cpu_list(const CpuList& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(cpus[i]) + (j > i ? "-" + std::to_string(cpus[j]) : "");
    i = j + 1;
  }
  return out;
}

CpuList allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  CONVOY_SYSCALL(::sched_getaffinity(0, sizeof set, &set));
  CpuList out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

CpuList allowed_cpus_of_system() {
  std::ifstream in("/sys/devices/system/cpu/online");
  std::string list;
  if (std::getline(in, list) && !list.empty()) {
    try {
      return parse_cpu_list(list, "/sys/devices/system/cpu/online");
    } catch (const UserError&) {
    }
  }
  return allowed_cpus();
}

std::vector<int> numa_nodes_of(const CpuList& cpus) {
  std::map<int, int> node_of;
  const std::string root = "/sys/devices/system/node";
  if (DIR* d = ::opendir(root.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.rfind("node", 0) != 0 || name.size() < 5 || !std::isdigit(static_cast<unsigned char>(name[4]))) continue;
      std::ifstream in(root + "/" + name + "/cpulist");
      std::string list;
      if (!std::getline(in, list) || list.empty()) continue;
      try {
        for (int c : parse_cpu_list(list, name)) node_of[c] = std::stoi(name.substr(4));
      } catch (const UserError&) {
        // An unreadable node description only costs locality.
      }
    }
    ::closedir(d);
  }
  std::vector<int> out;
  for (int c : cpus) out.push_back(node_of.count(c) ? node_of[c] : 0);
  return out;
}

std::vector<CpuList> split_cpus(const CpuList& cpus, const std::vector<int>& nodes, int worker_cpus, int services) {
  CONVOY_CHECK(services > 0 && nodes.size() == cpus.size(), "split_cpus: bad arguments");
  const int n = static_cast<int>(cpus.size());
  if (n < services) return std::vector<CpuList>(services, cpus);
  int first = n >= worker_cpus + services ? worker_cpus : 0;
  std::vector<std::pair<int, int>> rest;  // (node, cpu)
  for (int i = first; i < n; ++i) rest.push_back({nodes[i], cpus[i]});
  std::stable_sort(rest.begin(), rest.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<CpuList> out(services);
  const int m = static_cast<int>(rest.size());
  for (int k = 0; k < services; ++k)
    for (int i = k * m / services; i < (k + 1) * m / services; ++i) out[k].push_back(rest[i].second);
  for (auto& s : out) std::sort(s.begin(), s.end());
  return out;
}

void pin_to(const CpuList& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  CONVOY_SYSCALL(::sched_setaffinity(0, sizeof set, &set), " (pinning to CPUs " << format_cpu_list(cpus) << ")");
  // Threads that already exist keep their own affinity: a library may have
  // started some while it was loaded (a BLAS thread pool, say). Pin them too.
  const std::string self = std::to_string(::syscall(SYS_gettid));
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.' || self == e->d_name) continue;
      // A thread that has just ended is no error (ESRCH).
      if (::sched_setaffinity(static_cast<pid_t>(std::atoi(e->d_name)), sizeof set, &set) != 0 && errno != ESRCH) {
        const int err = errno;
        ::closedir(d);
        errno = err;
        CONVOY_SYSCALL(-1, " (pinning thread " << e->d_name << " to CPUs " << format_cpu_list(cpus) << ")");
      }
    }
    ::closedir(d);
  }
}

}  // namespace convoy
