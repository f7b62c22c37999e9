// The CPU runtime and the choice of device (see device.h).
#include "worker/dist/device.h"

#include <mutex>
#include <vector>

#include "common/error.h"
#include "models/hardware.h"
#include "worker/dist/timeline.h"

namespace convoy {
namespace {

class CpuClock : public StepClock {
 public:
  void reset() override {
    std::lock_guard<std::mutex> lock(mu_);
    marks_.clear();
  }
  int mark() override {
    const int64_t now = Timeline::now_us();
    std::lock_guard<std::mutex> lock(mu_);
    marks_.push_back(now);
    return static_cast<int>(marks_.size()) - 1;
  }
  int64_t us(int mark) override {
    std::lock_guard<std::mutex> lock(mu_);
    return marks_.at(static_cast<size_t>(mark));
  }

 private:
  std::mutex mu_;
  std::vector<int64_t> marks_;
};

class CpuRuntime : public DeviceRuntime {
 public:
  torch::Device device() const override { return torch::kCPU; }
  std::string describe() const override { return "cpu"; }
  bool native_bf16(std::string* why) const override { return cpu_native_bf16(this_cpu(), why); }
  c10::intrusive_ptr<compat::Backend> make_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                 int world_size, std::chrono::milliseconds timeout,
                                                 const std::string& hostname) override {
    return make_gloo_group(store, rank, world_size, timeout, hostname);
  }
  std::shared_ptr<void> pin_host(void*, size_t) override { return nullptr; }
  // Trains straight from the shared-memory slot: the tensors keep it.
  DeviceBatch upload(const torch::Tensor& pixels, const torch::Tensor& labels, std::shared_ptr<void> host) override {
    return {pixels, labels, std::move(host), nullptr};
  }
  bool prefetch() const override { return false; }
  std::unique_ptr<StepClock> make_clock() override { return std::make_unique<CpuClock>(); }
  void synchronize() override {}
};

}  // namespace

std::shared_ptr<DeviceRuntime> cpu_runtime() { return std::make_shared<CpuRuntime>(); }

c10::intrusive_ptr<compat::Backend> make_gloo_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                    int world_size, std::chrono::milliseconds timeout,
                                                    const std::string& hostname) {
  auto opts = c10d::ProcessGroupGloo::Options::create();
  opts->timeout = timeout;
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, opts);
}

DeviceFacts device_facts(const DeviceRuntime& runtime) {
  if (!runtime.device().is_cuda()) return cpu_facts();
  DeviceFacts d;
  d.cuda = true;
  d.native_bf16 = runtime.native_bf16(&d.bf16_why);
  d.name = runtime.describe();
  return d;
}

std::string hardware_summary() {
  auto runtime = make_device_runtime(DeviceKind::kAuto, /*local_rank=*/0, /*cudnn_benchmark=*/false);
  return hardware_summary(device_facts(*runtime));
}

std::shared_ptr<DeviceRuntime> make_device_runtime(DeviceKind device, int local_rank, bool cudnn_benchmark) {
  switch (device) {
    case DeviceKind::kCpu: return cpu_runtime();
    case DeviceKind::kCuda: return make_cuda_runtime(local_rank, cudnn_benchmark);  // says why when it cannot
    case DeviceKind::kAuto: break;
  }
  return cuda_devices() > 0 ? make_cuda_runtime(local_rank, cudnn_benchmark) : cpu_runtime();
}

}  // namespace convoy
