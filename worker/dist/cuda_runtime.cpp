// The CUDA runtime (see device.h). Compiled only when LibTorch has CUDA
// (CMake's CONVOY_WITH_CUDA); everything CUDA-specific in Convoy is here.
#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/NCCLUtils.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <mutex>
#include <vector>

#include "common/error.h"
#include "worker/dist/device.h"
#include "worker/dist/timeline.h"

namespace convoy {
namespace {

// Marks are CUDA events (with timing) recorded on the calling thread's
// current stream, so they fall where the device executes the work queued
// before them. The first mark of a step also takes the CPU's clock, which
// anchors the step on the timeline.
class CudaClock : public StepClock {
 public:
  explicit CudaClock(c10::DeviceIndex device) : device_(device) {}
  void reset() override {
    std::lock_guard<std::mutex> lock(mu_);
    used_ = 0;
  }
  int mark() override {
    const int64_t now = Timeline::now_us();
    std::lock_guard<std::mutex> lock(mu_);
    if (used_ == events_.size()) events_.push_back(std::make_unique<at::cuda::CUDAEvent>(cudaEventDefault));
    events_[used_]->record(c10::cuda::getCurrentCUDAStream(device_));
    if (used_ == 0) base_us_ = now;
    return static_cast<int>(used_++);
  }
  int64_t us(int mark) override {
    std::lock_guard<std::mutex> lock(mu_);
    CONVOY_CHECK(static_cast<size_t>(mark) < used_, "no such mark: " << mark);
    auto& e = *events_[static_cast<size_t>(mark)];
    events_[0]->synchronize();  // a hook's mark may be on another stream
    e.synchronize();
    return base_us_ + static_cast<int64_t>(1e3 * events_[0]->elapsed_time(e));
  }

 private:
  c10::DeviceIndex device_;
  std::mutex mu_;
  std::vector<std::unique_ptr<at::cuda::CUDAEvent>> events_;  // reused step after step
  size_t used_ = 0;
  int64_t base_us_ = 0;
};

class CudaRuntime : public DeviceRuntime {
 public:
  CudaRuntime(int local_rank, bool cudnn_benchmark)
      : index_(static_cast<c10::DeviceIndex>(local_rank % cuda_devices())),
        copy_stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index_)) {
    // Every later CUDA call of this process (LibTorch's and NCCL's) goes to
    // this rank's GPU.
    c10::cuda::set_device(index_);
    at::globalContext().setBenchmarkCuDNN(cudnn_benchmark);
  }

  torch::Device device() const override { return torch::Device(torch::kCUDA, index_); }

  std::string describe() const override {
    const cudaDeviceProp* p = at::cuda::getDeviceProperties(index_);
    return fmt::format("cuda:{} ({}, {:.1f} GiB, compute capability {}.{})", index_, p->name,
                       static_cast<double>(p->totalGlobalMem) / (1ull << 30), p->major, p->minor);
  }

  bool native_bf16(std::string* why) const override {
    const cudaDeviceProp* p = at::cuda::getDeviceProperties(index_);
    const bool native = p->major >= 8;  // Ampere and later: bf16 tensor cores
    *why = fmt::format("{} (compute capability {}.{}) {}", p->name, p->major, p->minor,
                       native ? "computes bf16 natively"
                              : "has no native bf16 (train.amp=fp16 trains in half precision with loss scaling)");
    return native;
  }

  c10::intrusive_ptr<compat::Backend> make_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                 int world_size, std::chrono::milliseconds timeout,
                                                 const std::string&) override {
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, opts);
  }

  std::shared_ptr<void> pin_host(void* ptr, size_t bytes) override {
    C10_CUDA_CHECK(cudaHostRegister(ptr, bytes, cudaHostRegisterDefault));
    return std::shared_ptr<void>(ptr, [](void* p) {
      // The mapping may be going away because of an error; unpinning must
      // not throw from a destructor.
      if (cudaHostUnregister(p) != cudaSuccess) (void)cudaGetLastError();
    });
  }

  DeviceBatch upload(const torch::Tensor& pixels, const torch::Tensor& labels, std::shared_ptr<void> host) override {
    if (pixels.is_cuda()) return {pixels, labels, std::move(host), nullptr};
    auto done = std::make_shared<at::cuda::CUDAEvent>();
    DeviceBatch b;
    {
      c10::cuda::CUDAStreamGuard guard(copy_stream_);
      b.pixels = pixels.to(device(), /*non_blocking=*/true);
      b.labels = labels.to(device(), /*non_blocking=*/true);
      done->record(copy_stream_);
    }
    // The slot goes back to the data service only once the copy has read it.
    auto held = std::make_shared<std::shared_ptr<void>>(std::move(host));
    b.host = std::shared_ptr<void>(nullptr, [done, held](void*) {
      done->synchronize();
      held->reset();
    });
    // The consumer's stream waits for the copy when it takes the batch
    // (before_use), not now: the copy overlaps what that stream runs first.
    b.before_use = [done, pixels = b.pixels, labels = b.labels, index = index_] {
      auto compute = c10::cuda::getCurrentCUDAStream(index);
      done->block(compute);
      // Allocated on the copy stream, used on the compute stream: the
      // caching allocator must not hand the memory out again before the
      // compute stream is done with it.
      c10::cuda::CUDACachingAllocator::recordStream(pixels.storage().data_ptr(), compute);
      c10::cuda::CUDACachingAllocator::recordStream(labels.storage().data_ptr(), compute);
    };
    return b;
  }

  bool prefetch() const override { return true; }
  std::unique_ptr<StepClock> make_clock() override { return std::make_unique<CudaClock>(index_); }
  void synchronize() override { c10::cuda::device_synchronize(); }

 private:
  c10::DeviceIndex index_;
  c10::cuda::CUDAStream copy_stream_;
};

}  // namespace

int cuda_devices() { return torch::cuda::is_available() ? static_cast<int>(c10::cuda::device_count()) : 0; }

std::shared_ptr<DeviceRuntime> make_cuda_runtime(int local_rank, bool cudnn_benchmark) {
  if (cuda_devices() == 0)
    CONVOY_USER_ERROR("device: 'cuda' asked for, but no CUDA GPU is visible (CUDA_VISIBLE_DEVICES, the driver); "
                      "use --set device=cpu");
  auto r = std::make_shared<CudaRuntime>(local_rank, cudnn_benchmark);
  spdlog::debug("local rank {}: {}", local_rank, r->describe());
  return r;
}

std::string cuda_build_info() {
  int runtime = 0;
  if (cudaRuntimeGetVersion(&runtime) != cudaSuccess) (void)cudaGetLastError();
  return fmt::format("Convoy GPU path: built (CUDA runtime {}.{}, NCCL {}, {} GPU(s) visible)", runtime / 1000,
                     (runtime % 1000) / 10, c10d::getNcclVersion(), cuda_devices());
}

}  // namespace convoy
