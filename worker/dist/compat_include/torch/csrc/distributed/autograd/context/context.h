// Stand-in for a LibTorch header that Debian's libtorch-dev does not ship
// (the RPC/distributed-autograd headers) but that c10d/reducer.hpp includes.
// It declares only the two names reducer.hpp uses. Both appear there as
// pointer-sized members (a shared_ptr and an atomic pointer), so Reducer's
// layout is the library's. CMake puts this folder on the include path only
// when LibTorch lacks the real header (worker/CMakeLists.txt).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>

namespace torch {
namespace distributed {
namespace autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};
using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace autograd
}  // namespace distributed
}  // namespace torch
