// Choosing a device by name (see device_choice.h).
#include "models/device_choice.h"

#include "common/error.h"

namespace convoy {

torch::Device choose_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name != "cuda" && name != "auto") CONVOY_USER_ERROR("device must be cpu, cuda or auto, not '" << name << "'");
  if (torch::cuda::is_available()) return {torch::kCUDA, 0};
  if (name == "auto") return torch::kCPU;
  if (!torch::hasCUDA())
    CONVOY_USER_ERROR("device: 'cuda' asked for, but this build of Convoy has no CUDA (its LibTorch is CPU-only); "
                      "use device cpu or auto");
  CONVOY_USER_ERROR("device: 'cuda' asked for, but no GPU is visible (driver, CUDA_VISIBLE_DEVICES)");
}

}  // namespace convoy
