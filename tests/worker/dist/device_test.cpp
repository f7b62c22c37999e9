// The device seam on a CPU build: what "auto" and "cuda" resolve to, batches
// used in place (the slot kept as long as the batch), and the step clock.
// The CUDA runtime is compiled and linked by scripts/check-cuda-build.sh
// and exercised by scripts/gpu-smoke.sh on a GPU machine.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/error.h"
#include "worker/dist/device.h"

namespace convoy {
namespace {

TEST(Device, AutoAndCpuTrainOnTheCpuWithoutAGpu) {
  if (cuda_devices() > 0) GTEST_SKIP() << "a GPU is visible";
  EXPECT_TRUE(make_device_runtime(DeviceKind::kAuto, 0)->device().is_cpu());
  EXPECT_TRUE(make_device_runtime(DeviceKind::kCpu, 3)->device().is_cpu());
  EXPECT_FALSE(make_device_runtime(DeviceKind::kCpu, 0)->prefetch());
}

TEST(Device, CudaWithoutAGpuIsAUserErrorThatSaysWhy) {
  if (cuda_devices() > 0) GTEST_SKIP() << "a GPU is visible";
  try {
    make_device_runtime(DeviceKind::kCuda, 0);
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("device=cpu"), std::string::npos) << e.what();
  }
}

TEST(Device, CpuUploadUsesTheBatchInPlaceAndKeepsItsSlot) {
  auto rt = cpu_runtime();
  auto pixels = torch::randint(256, {2, 3, 4, 4}, torch::kUInt8);
  auto labels = torch::tensor({1, -1}, torch::kLong);
  std::atomic<bool> released{false};
  std::shared_ptr<void> slot(nullptr, [&](void*) { released = true; });
  {
    DeviceBatch b = rt->upload(pixels, labels, std::move(slot));
    EXPECT_EQ(b.pixels.data_ptr(), pixels.data_ptr());
    EXPECT_EQ(b.labels.data_ptr(), labels.data_ptr());
    b.ready();
    EXPECT_FALSE(released);
  }
  EXPECT_TRUE(released);
  EXPECT_EQ(rt->pin_host(pixels.data_ptr(), 96), nullptr);
}

TEST(Device, StepClockMarksAreOrderedAndForgottenOnReset) {
  auto clock = cpu_runtime()->make_clock();
  clock->reset();
  const int a = clock->mark();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  int b = -1;
  std::thread([&] { b = clock->mark(); }).join();  // marks from another thread (the comm hook's)
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
  EXPECT_GE(clock->ms(a, b), 4.0);
  clock->reset();
  EXPECT_EQ(clock->mark(), 0);
  EXPECT_THROW(clock->us(1), std::exception);
}

}  // namespace
}  // namespace convoy
