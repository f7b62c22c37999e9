// CPU lists and the automatic split of a node's cores between data services.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "common/cpu_sets.h"
#include "common/error.h"

namespace convoy {
namespace {

TEST(CpuSets, ParseAndFormatRoundTrip) {
  EXPECT_EQ(parse_cpu_list("0-3,8, 10-11", "x"), (CpuList{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(format_cpu_list(parse_cpu_list("5", "x")), "5");
  EXPECT_THROW(parse_cpu_list("3-1", "data_service.cpu_sets[0]"), UserError);
  EXPECT_THROW(parse_cpu_list("a", "x"), UserError);
  EXPECT_THROW(parse_cpu_list("", "x"), UserError);
}

TEST(CpuSets, SplitKeepsTheWorkersCoresAndFollowsNumaNodes) {
  // 16 CPUs on two nodes, interleaved numbering; 4 workers' CPUs first.
  CpuList cpus;
  std::vector<int> nodes;
  for (int c = 0; c < 16; ++c) {
    cpus.push_back(c);
    nodes.push_back(c % 2);
  }
  auto sets = split_cpus(cpus, nodes, 4, 2);
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_EQ(sets[0], (CpuList{4, 6, 8, 10, 12, 14}));  // node 0
  EXPECT_EQ(sets[1], (CpuList{5, 7, 9, 11, 13, 15}));  // node 1
  // Too few CPUs to keep the workers' share free: the services split them all.
  sets = split_cpus({0, 1}, {0, 0}, 2, 2);
  EXPECT_EQ(sets, (std::vector<CpuList>{{0}, {1}}));
  // More services than CPUs: they share.
  sets = split_cpus({0, 1}, {0, 0}, 0, 3);
  EXPECT_EQ(sets, (std::vector<CpuList>(3, CpuList{0, 1})));
}

// allowed_cpus() is the kernel's affinity: the list /proc gives. pin_to (in
// a child process, so the test keeps its CPUs) pins the caller, a thread
// that already existed (as a library's pool would) and one started after.
TEST(CpuSets, PinningReachesEveryThreadAndAllowedCpusSeesIt) {
  auto proc_list = [](const std::string& path) {
    std::ifstream f(path);
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("Cpus_allowed_list:", 0) == 0) return parse_cpu_list(line.substr(18), path);
    return CpuList{};
  };
  const CpuList mine = allowed_cpus();
  ASSERT_FALSE(mine.empty());
  EXPECT_EQ(mine, proc_list("/proc/self/status"));
  const int last = mine.back();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int failures = 0;
    std::atomic<bool> pinned{false};
    CpuList earlier;
    std::thread before([&] {
      while (!pinned.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      earlier = allowed_cpus();
    });
    pin_to({last});
    pinned = true;
    before.join();
    CpuList later;
    std::thread after([&] { later = allowed_cpus(); });
    after.join();
    failures += allowed_cpus() != CpuList{last};
    failures += proc_list("/proc/self/status") != CpuList{last};
    failures += (earlier != CpuList{last}) << 1;
    failures += (later != CpuList{last}) << 2;
    ::_exit(failures);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "bit 1: a thread started before pin_to kept its CPUs; bit 2: one started after";
  EXPECT_EQ(allowed_cpus(), mine) << "the test process kept its CPUs";
}

}  // namespace
}  // namespace convoy
