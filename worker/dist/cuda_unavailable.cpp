// Stands in for cuda_runtime.cpp where LibTorch has no CUDA (CMake compiles
// exactly one of the two; see device.h).
#include "common/error.h"
#include "worker/dist/device.h"

namespace convoy {

int cuda_devices() { return 0; }

std::shared_ptr<DeviceRuntime> make_cuda_runtime(int, bool) {
  CONVOY_USER_ERROR("device: 'cuda' asked for, but this build of Convoy has no CUDA (its LibTorch is CPU-only); "
                    "use --set device=cpu, or build against a CUDA LibTorch (README: GPUs)");
}

std::string cuda_build_info() { return "Convoy GPU path: not built (LibTorch without CUDA)"; }

}  // namespace convoy
