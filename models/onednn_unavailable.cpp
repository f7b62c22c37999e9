// The oneDNN half of conv.h where this build has no usable oneDNN (see
// CONVOY_WITH_ONEDNN in CMakeLists.txt): every convolution is LibTorch's.
#include "models/conv.h"

namespace convoy::onednn {

bool winograd_available(std::string* why) {
  if (why)
    *why = "this build has no Winograd convolutions: it needs the oneDNN 2.x that LibTorch itself links "
           "(Debian 12's libtorch-dev with libdnnl-dev)";
  return false;
}

torch::Tensor winograd_conv3x3(const torch::Tensor&, const torch::Tensor&) { return {}; }

}  // namespace convoy::onednn
