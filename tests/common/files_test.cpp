// Crash-safe writes: a failed write leaves the previous file intact and no
// temp file behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "common/error.h"
#include "common/files.h"
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

}  // namespace
}  // namespace convoy
