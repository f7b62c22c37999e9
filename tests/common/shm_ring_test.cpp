// Shared-memory ring: order, back-pressure, failure delivery, timeouts and
// that nothing is left in /dev/shm.
#include <gtest/gtest.h>

#include <cstring>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "common/error.h"
#include "common/files.h"
#include "common/shm_ring.h"

namespace convoy {
namespace {

using std::chrono::milliseconds;

std::string unique_name() { return "/convoy-test-" + std::to_string(::getpid()) + "-" + std::to_string(rand()); }

TEST(ShmRing, DeliversInOrderAcrossProcesses) {
  auto producer = ShmRing::create(unique_name(), 3, 1000);
  pid_t pid = ::fork();
  if (pid == 0) {
    auto consumer = ShmRing::open(producer->name());
    for (uint64_t i = 0; i < 20; ++i) {
      auto slot = consumer->acquire_read(milliseconds(5000));
      auto* h = reinterpret_cast<SlotHeader*>(slot.data);
      if (h->step != i || slot.data[sizeof(SlotHeader) + 999] != static_cast<uint8_t>(i)) ::_exit(1);
      consumer->release(slot.index);
    }
    ::_exit(0);
  }
  for (uint64_t i = 0; i < 20; ++i) {
    uint8_t* slot = producer->acquire_write(milliseconds(5000));
    reinterpret_cast<SlotHeader*>(slot)->step = i;
    slot[sizeof(SlotHeader) + 999] = static_cast<uint8_t>(i);
    producer->publish();
  }
  int status;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(ShmRing, BackPressureBlocksAndTimesOut) {
  auto producer = ShmRing::create(unique_name(), 2, 64);
  auto consumer = ShmRing::open(producer->name());
  producer->acquire_write(milliseconds(100));
  producer->publish();
  producer->acquire_write(milliseconds(100));
  producer->publish();
  // Full: the third write must wait, and give up after its timeout.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(producer->acquire_write(milliseconds(300)), TimeoutError);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(290));
  // Releasing out of order returns slots in FIFO order once the first is back.
  auto a = consumer->acquire_read(milliseconds(100));
  auto b = consumer->acquire_read(milliseconds(100));
  consumer->release(b.index);
  EXPECT_THROW(producer->acquire_write(milliseconds(150)), TimeoutError);
  consumer->release(a.index);
  EXPECT_NO_THROW(producer->acquire_write(milliseconds(100)));
}

TEST(ShmRing, FailureReachesConsumerAfterPublishedBatches) {
  auto producer = ShmRing::create(unique_name(), 4, 64);
  auto consumer = ShmRing::open(producer->name());
  producer->acquire_write(milliseconds(100));
  producer->publish();
  producer->fail("decoder exploded");
  EXPECT_NO_THROW(consumer->acquire_read(milliseconds(100)));
  try {
    consumer->acquire_read(milliseconds(1000));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "decoder exploded");
  }
}

TEST(ShmRing, CheckAbortsAWait) {
  auto producer = ShmRing::create(unique_name(), 1, 64);
  auto consumer = ShmRing::open(producer->name());
  int calls = 0;
  EXPECT_THROW(consumer->acquire_read(milliseconds(10000),
                                      [&] {
                                        if (++calls == 2) throw Error("peer died");
                                      }),
               Error);
  EXPECT_EQ(calls, 2);
}

TEST(ShmRing, UnlinkLeavesNothingBehind) {
  std::string name = unique_name();
  {
    auto producer = ShmRing::create(name, 1, 64);
    auto consumer = ShmRing::open(name);
    producer->unlink_name();
    EXPECT_FALSE(path_exists("/dev/shm" + name));
    // Still usable after unlink.
    producer->acquire_write(milliseconds(100));
    producer->publish();
    EXPECT_NO_THROW(consumer->acquire_read(milliseconds(100)));
  }
  EXPECT_FALSE(path_exists("/dev/shm" + name));
  // The producer's destructor unlinks even without an explicit call.
  { auto p = ShmRing::create(name, 1, 64); }
  EXPECT_FALSE(path_exists("/dev/shm" + name));
}

}  // namespace
}  // namespace convoy

namespace convoy {
namespace {

// A NUMA preference (node 0 exists everywhere) leaves the ring working.
TEST(ShmRing, NumaPreferenceKeepsTheRingUsable) {
  auto producer = ShmRing::create("/convoy-test-numa-" + std::to_string(::getpid()), 2, 5000, 0);
  auto consumer = ShmRing::open(producer->name());
  producer->unlink_name();
  uint8_t* slot = producer->acquire_write(std::chrono::seconds(1));
  std::memset(slot + sizeof(SlotHeader), 7, 5000);
  producer->publish();
  EXPECT_EQ(consumer->queued(), 1u);
  auto r = consumer->acquire_read(std::chrono::seconds(1));
  EXPECT_EQ(r.data[sizeof(SlotHeader) + 4999], 7);
  EXPECT_EQ(consumer->queued(), 0u);
  consumer->release(r.index);
}

}  // namespace
}  // namespace convoy
