// Choosing a device by name (see device_choice.h).
#include "models/device_choice.h"

#include "common/error.h"

namespace convoy {

torch::Device choose_device(DeviceKind kind) {
  if (kind == DeviceKind::kCpu) return torch::kCPU;
  if (torch::cuda::is_available()) return {torch::kCUDA, 0};
  if (kind == DeviceKind::kAuto) return torch::kCPU;
  if (!torch::hasCUDA())
    CONVOY_USER_ERROR("device: 'cuda' asked for, but this build of Convoy has no CUDA (its LibTorch is CPU-only); "
                      "use device cpu or auto");
  CONVOY_USER_ERROR("device: 'cuda' asked for, but no GPU is visible (driver, CUDA_VISIBLE_DEVICES)");
}

}  // namespace convoy
