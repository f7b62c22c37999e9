// Every difference between the LibTorch versions Convoy supports (1.13
// through 2.x) lives here and nowhere else.
//  - 1.13: process groups derive from c10d::ProcessGroup.
//    2.x:  backends (ProcessGroupGloo, ProcessGroupNCCL) derive from
//          c10d::Backend; c10d::ProcessGroup dispatches to them.
//  - the Reducer takes a ProcessGroup: 1.13's is the backend, 2.x wraps one.
//  - autocast: per-device setters (set_cpu_enabled, set_autocast_cpu_dtype)
//    became device-generic (set_autocast_enabled(device, ...)) in 2.4.
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>

namespace convoy::compat {

#if TORCH_VERSION_MAJOR >= 2
using Backend = ::c10d::Backend;
#else
using Backend = ::c10d::ProcessGroup;
#endif
using Work = ::c10d::Work;

// What c10d's Reducer takes as its group: in 1.13 the backend itself; in 2.x
// a dispatching ProcessGroup, here one that sends the backend's device's
// tensors (CPU for Gloo, CUDA for NCCL) to `backend`.
#if TORCH_VERSION_MAJOR >= 2
using ReducerGroup = ::c10d::ProcessGroup;
inline c10::intrusive_ptr<ReducerGroup> reducer_group(const c10::intrusive_ptr<Backend>& backend) {
  using Type = ::c10d::ProcessGroup::BackendType;
  const bool nccl = backend->getBackendName() == "nccl";
  auto pg = c10::make_intrusive<::c10d::ProcessGroup>(backend->getRank(), backend->getSize());
  pg->setBackend(nccl ? c10::DeviceType::CUDA : c10::DeviceType::CPU, nccl ? Type::NCCL : Type::GLOO, backend);
  pg->setDefaultBackend(nccl ? Type::NCCL : Type::GLOO);
  return pg;
}
#else
using ReducerGroup = Backend;
inline c10::intrusive_ptr<ReducerGroup> reducer_group(const c10::intrusive_ptr<Backend>& backend) { return backend; }
#endif

// Whether Gloo can sum bfloat16 (gradient compression on the CPU): not in
// 1.13 ("Invalid scalar type"); 2.6 can (checked). 2.0-2.5 are assumed to.
constexpr bool gloo_sums_bf16() { return TORCH_VERSION_MAJOR >= 2; }

#define CONVOY_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

inline bool autocast_enabled(c10::DeviceType device) {
#if CONVOY_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

inline void set_autocast(c10::DeviceType device, bool enabled, at::ScalarType dtype) {
#if CONVOY_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device, enabled);
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::kCPU) {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
#endif
}

inline at::ScalarType autocast_dtype(c10::DeviceType device) {
#if CONVOY_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::kCPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
#endif
}

// Enables autocast to `dtype` on `device` for its scope (like Python's
// `with torch.autocast(...)`), restoring the previous state after.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, bool enabled, at::ScalarType dtype)
      : device_(device), prev_enabled_(autocast_enabled(device)), prev_dtype_(autocast_dtype(device)) {
    set_autocast(device, enabled, dtype);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    set_autocast(device_, prev_enabled_, prev_dtype_);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool prev_enabled_;
  at::ScalarType prev_dtype_;
};

}  // namespace convoy::compat
