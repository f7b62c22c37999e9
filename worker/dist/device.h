// The seam between training on the CPU and on a CUDA GPU. Everything that
// differs sits behind DeviceRuntime: which device a rank trains on, which
// c10d backend carries its tensors (Gloo on the CPU, NCCL on CUDA), how a
// batch in shared memory reaches the device (on the CPU it is used in place;
// on CUDA the rings are pinned with cudaHostRegister and each batch is copied
// asynchronously on a side stream while the previous step computes), and how
// a step's phases are timed (the CPU's clock, or CUDA events recorded in
// stream order, since CUDA work is only queued when the CPU returns).
//
// The CUDA implementation (cuda_runtime.cpp) is compiled only when LibTorch
// has CUDA (CMake's CONVOY_WITH_CUDA); otherwise cuda_unavailable.cpp stands
// in and asking for CUDA is a UserError. The trainer has no #ifdefs.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "models/hardware.h"
#include "worker/dist/c10d_compat.h"

namespace convoy {

struct Config;

// Points in a step, in the order the device executes its work. mark() is
// cheap and never waits; us() waits until the device has passed the mark.
// Thread-safe (the Reducer's comm hook marks from other threads).
class StepClock {
 public:
  virtual ~StepClock() = default;
  // Forgets the marks of the previous step.
  virtual void reset() = 0;
  virtual int mark() = 0;
  // The mark as wall-clock microseconds (Timeline's clock). On CUDA: the
  // step's first mark's CPU time plus the GPU time elapsed since it.
  virtual int64_t us(int mark) = 0;
  double ms(int a, int b) { return static_cast<double>(us(b) - us(a)) / 1e3; }
};

// A batch on the training device. On CUDA it may still be in flight:
// call before_use() (when set) before queuing work on it, which orders the
// current stream after the copy; `host` (the shared-memory slot) is kept
// until the copy has ended.
struct DeviceBatch {
  torch::Tensor pixels, labels;
  std::shared_ptr<void> host;
  std::function<void()> before_use;
  void ready() {
    if (before_use) before_use();
    before_use = nullptr;
  }
};

class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;
  virtual torch::Device device() const = 0;
  // For logs: "cpu" or "cuda:1 (NVIDIA H100 80GB HBM3, 79.1 GiB)".
  virtual std::string describe() const = 0;
  // Whether this device computes bf16 natively (CPU: avx512_bf16 or
  // amx_bf16, see hardware.h; CUDA: compute capability 8.0 or newer); *why
  // says why either way.
  virtual bool native_bf16(std::string* why) const = 0;
  // The process group for this device's tensors: Gloo or NCCL. `hostname`
  // is the address Gloo binds (NCCL finds its own interfaces, see
  // NCCL_SOCKET_IFNAME).
  virtual c10::intrusive_ptr<compat::Backend> make_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                         int world_size, std::chrono::milliseconds timeout,
                                                         const std::string& hostname) = 0;
  // Pins host memory for asynchronous copies (the data rings); the returned
  // handle unpins it when dropped, which must happen before it is unmapped.
  // CPU: nothing to do (null).
  virtual std::shared_ptr<void> pin_host(void* ptr, size_t bytes) = 0;
  // Starts moving a batch to the device. `host` keeps the batch's memory
  // alive (the data ring's slot) until the copy has ended.
  virtual DeviceBatch upload(const torch::Tensor& pixels, const torch::Tensor& labels,
                             std::shared_ptr<void> host) = 0;
  // Whether the training loop should upload the next batch before the
  // current step runs (CUDA: the copy overlaps the step's compute).
  virtual bool prefetch() const = 0;
  virtual std::unique_ptr<StepClock> make_clock() = 0;
  // Waits for all queued work on this device.
  virtual void synchronize() = 0;
};

// What the auto settings need to know of `runtime`'s device
// (models/hardware.h): the CPU's facts, or the GPU's name and capability.
DeviceFacts device_facts(const DeviceRuntime& runtime);
// A Gloo group over an existing store: the CPU runtime's make_group (tests
// use it with a HashStore).
c10::intrusive_ptr<compat::Backend> make_gloo_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                    int world_size, std::chrono::milliseconds timeout,
                                                    const std::string& hostname = "127.0.0.1");

// For `convoy --version`: the device a run with `device: "auto"` gets here
// and what the auto settings choose on it.
std::string hardware_summary();

// The config's `device`: cpu, cuda or auto (CUDA when this build has it and
// a GPU is visible; models/device_choice.h decides alike for tools without
// a process group). A CUDA rank takes GPU local_rank modulo the visible
// devices. cudnn_benchmark lets cuDNN pick the fastest convolution
// algorithms for the (fixed) shapes.
std::shared_ptr<DeviceRuntime> make_device_runtime(DeviceKind device, int local_rank,
                                                   bool cudnn_benchmark = true);
// The CPU runtime (also what tests and single-process tools use).
std::shared_ptr<DeviceRuntime> cpu_runtime();

// Implemented by cuda_runtime.cpp, or by cuda_unavailable.cpp in builds
// without CUDA (0 devices). make_cuda_runtime throws a UserError saying why
// when there is no GPU to use.
int cuda_devices();
std::shared_ptr<DeviceRuntime> make_cuda_runtime(int local_rank, bool cudnn_benchmark);
// "Convoy GPU path: built (CUDA x.y, NCCL a.b.c)" or "...: not built".
std::string cuda_build_info();

}  // namespace convoy
