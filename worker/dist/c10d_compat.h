// The differences between the LibTorch versions Convoy supports (1.13
// through 2.x) in c10d; models/autocast.h has the others (autocast).
//  - 1.13: process groups derive from c10d::ProcessGroup.
//    2.x:  backends (ProcessGroupGloo, ProcessGroupNCCL) derive from
//          c10d::Backend; c10d::ProcessGroup dispatches to them.
//  - the Reducer takes a ProcessGroup: 1.13's is the backend, 2.x wraps one.
#pragma once

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

}  // namespace convoy::compat
