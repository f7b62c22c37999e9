// The shared-memory all-reduce: exact sums in rank order for every dtype and
// size (pieces smaller than the tensors), the same result on every rank, the
// name gone from /dev/shm once connected, every rank falling back together,
// and the failure modes: a rank that never comes (timeout naming it) and one
// that leaves (its peers fail at once).
#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/torch.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "common/error.h"
#include "worker/dist/shm_allreduce.h"

namespace convoy {
namespace {

std::string segment_name() {
  static int n = 0;
  return "/convoy-test-allreduce-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

bool name_exists(const std::string& name) {
  int fd = ::shm_open(name.c_str(), O_RDONLY, 0);
  if (fd >= 0) ::close(fd);
  return fd >= 0;
}

// Runs body(rank) on `world` threads; returns each rank's error text.
std::vector<std::string> on_ranks(int world, const std::function<void(int)>& body) {
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        body(r);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

// 3 ranks, 4 KB pieces: a float tensor of ~10 pieces whose length is no
// multiple of anything, and tensors of every dtype, all in flight at once.
TEST(ShmAllreduce, SumsEveryDtypeInRankOrderAlikeOnEveryRank) {
  constexpr int kWorld = 3;
  const std::vector<std::pair<c10::ScalarType, int64_t>> shapes = {
      {torch::kFloat, 10007}, {torch::kDouble, 513}, {torch::kBFloat16, 3001}, {torch::kHalf, 77}, {torch::kFloat, 0},
      {torch::kFloat, 1}};
  torch::manual_seed(11);
  std::vector<std::vector<torch::Tensor>> inputs(kWorld);  // made here: the generator is shared
  for (int r = 0; r < kWorld; ++r)
    for (const auto& [type, n] : shapes) inputs[r].push_back(torch::randn({n}, torch::kDouble).mul(100).to(type));
  std::vector<torch::Tensor> expected;
  for (size_t i = 0; i < shapes.size(); ++i) {
    // Rank order, accumulated in float (double for double), rounded once.
    const auto acc = shapes[i].first == torch::kDouble ? torch::kDouble : torch::kFloat;
    torch::Tensor sum = inputs[0][i].to(acc);
    for (int r = 1; r < kWorld; ++r) sum = sum + inputs[r][i].to(acc);
    expected.push_back(sum.to(shapes[i].first));
  }
  auto store = c10::make_intrusive<c10d::HashStore>();
  const std::string name = segment_name();
  std::vector<std::vector<torch::Tensor>> outputs(kWorld);
  auto errors = on_ranks(kWorld, [&](int r) {
    auto ar = ShmAllreduce::connect(*store, name, r, kWorld, true, std::chrono::seconds(30), 4096);
    ASSERT_TRUE(ar);
    std::vector<c10::intrusive_ptr<c10::ivalue::Future>> futures;
    for (auto& t : inputs[r]) {
      outputs[r].push_back(t.clone());
      futures.push_back(ar->allreduce(outputs[r].back()));
    }
    for (auto& f : futures) {
      f->wait();
      ASSERT_FALSE(f->hasError()) << f->tryRetrieveErrorMessage();
    }
  });
  for (const auto& e : errors) ASSERT_EQ(e, "");
  EXPECT_FALSE(name_exists(name)) << "the name stays in /dev/shm";
  for (size_t i = 0; i < shapes.size(); ++i)
    for (int r = 0; r < kWorld; ++r)
      EXPECT_TRUE(torch::equal(outputs[r][i], expected[i]))
          << "tensor " << i << " (" << shapes[i].first << ") on rank " << r << ": max difference "
          << (outputs[r][i].to(torch::kDouble) - expected[i].to(torch::kDouble)).abs().max().item<double>();
}

TEST(ShmAllreduce, EveryRankFallsBackWhenOneIsOnAnotherHost) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  const std::string name = segment_name();
  std::vector<std::string> why(3);
  auto errors = on_ranks(3, [&](int r) {
    auto ar = ShmAllreduce::connect(*store, name, r, 3, /*local=*/r != 2, std::chrono::seconds(30), 4096, &why[r]);
    EXPECT_FALSE(ar) << "rank " << r;
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(errors[r], "");
    EXPECT_EQ(why[r], "rank 2: not on rank 0's host");
  }
  EXPECT_FALSE(name_exists(name));
}

TEST(ShmAllreduce, ARankThatNeverComesTimesOutNamingIt) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  const std::string name = segment_name();
  std::atomic<bool> done{false};
  auto errors = on_ranks(2, [&](int r) {
    auto ar = ShmAllreduce::connect(*store, name, r, 2, true, std::chrono::milliseconds(300), 4096);
    if (r == 1) {  // connected, then silent until rank 0 gave up
      while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    auto t = torch::ones({5000});
    try {
      ar->allreduce_now(t);
    } catch (...) {
      done = true;
      throw;
    }
    done = true;
  });
  EXPECT_NE(errors[0].find("shared-memory all-reduce timed out after 0.3 s: rank(s) 1 never sent its gradients"),
            std::string::npos)
      << errors[0];
  EXPECT_EQ(errors[1], "");
}

// Rank 1 connects and goes away (its object destroyed, as when its process
// unwinds after an error): rank 0 fails on the spot, not at its 60 s timeout,
// and every later call fails with the same error.
TEST(ShmAllreduce, ARankThatLeavesFailsItsPeers) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  const std::string name = segment_name();
  std::string second;
  auto errors = on_ranks(2, [&](int r) {
    auto ar = ShmAllreduce::connect(*store, name, r, 2, true, std::chrono::seconds(60), 4096);
    if (r == 1) return;
    auto t = torch::ones({5000});
    try {
      ar->allreduce_now(t);
    } catch (const std::exception& e) {
      try {
        ar->allreduce_now(t);
      } catch (const std::exception& again) {
        second = again.what();
      }
      throw;
    }
  });
  EXPECT_NE(errors[0].find("rank 1 left before sending its gradients"), std::string::npos) << errors[0];
  EXPECT_EQ(second, errors[0]);
  EXPECT_EQ(errors[1], "");
}

}  // namespace
}  // namespace convoy
