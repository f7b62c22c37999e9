// Crash-safe writes: a failed write leaves the previous file intact and no
// temp file behind. Run directories: never shared, the newest one found.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <set>

#include "common/error.h"
#include "common/files.h"
#include "common/run_dir.h"
#include "tests/tools/temp_dir.h"

namespace convoy {
namespace {

TEST(Files, FailedWriteLeavesThePreviousFileIntact) {
  std::string dir = testing::make_temp_dir("convoy-files");
  std::string path = dir + "/state";
  write_file_atomic(path, "version 1");
  EXPECT_THROW(write_file_atomic(path,
                                 [](const ChunkSink& sink) {
                                   sink("version 2, half written", 10);
                                   throw Error("disk full");  // what a failing write looks like to us
                                 }),
               Error);
  EXPECT_EQ(read_file(path), "version 1");
  EXPECT_FALSE(path_exists(path + ".tmp." + std::to_string(::getpid())));
  write_file_atomic(path, "version 3");
  EXPECT_EQ(read_file(path), "version 3");
}

TEST(Files, UnwritableFolderIsAnError) {
  // /proc accepts no new files, even from root.
  EXPECT_THROW(write_file_atomic("/proc/convoy-cannot-exist", "x"), Error);
}

// Runs started within one second (as `convoy bench scaling` twice in a row
// can be) get folders of their own, and --resume auto finds the last one.
TEST(RunDir, RunsStartedTogetherGetTheirOwnFolderAndTheNewestIsFound) {
  Config cfg;
  cfg.name = "job";
  cfg.run_root = testing::make_temp_dir("convoy-runs") + "/runs";
  make_dirs(cfg.run_root + "/job-extra-29991231-235959");  // another config's
  make_dirs(cfg.run_root + "/job-29991231-235959-07");      // not one of ours (leading zero)
  std::vector<std::string> dirs;
  for (int i = 0; i < 12; ++i) dirs.push_back(create_run_dir(cfg));
  std::set<std::string> distinct(dirs.begin(), dirs.end());
  EXPECT_EQ(distinct.size(), dirs.size());
  for (const auto& d : dirs) EXPECT_TRUE(is_directory(d)) << d;
  EXPECT_EQ(latest_run_dir(cfg), dirs.back());
}

}  // namespace
}  // namespace convoy
