// CPU lists and the automatic split of a node's cores between data services.
#include <gtest/gtest.h>

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

TEST(CpuSets, ThisProcessHasCpus) { EXPECT_FALSE(allowed_cpus().empty()); }

}  // namespace
}  // namespace convoy
