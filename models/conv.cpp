#include "models/conv.h"

#include "common/error.h"
#include "models/autocast.h"
#include "models/hardware.h"

namespace convoy {

bool winograd_f2_preferred() {
  static const bool preferred = !onednn::winograd_available() && cpu_kernels_avx2_class(this_cpu());
  return preferred;
}

ConvImpl::ConvImpl(int in, int out, int kernel, int stride, int pad, bool bias)
    : torch::nn::Conv2dImpl(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(pad).bias(bias)),
      winograd_shape_(kernel == 3 && stride == 1 && pad == 1 && in % 16 == 0 && out % 16 == 0),
      f2_pays_(winograd_shape_ && in >= 64 && out >= 64) {}

torch::Tensor ConvImpl::forward(const torch::Tensor& x) {
  if (algorithm != ConvAlgorithm::kDirect && winograd_shape_ && x.device().is_cpu() &&
      x.scalar_type() == torch::kFloat && weight.scalar_type() == torch::kFloat && x.dim() == 4 &&
      !compat::autocast_enabled(c10::kCPU)) {
    // Asked for F(2x2), or auto where it is the Winograd of this machine
    // (then only where it pays); else oneDNN's, where it has one.
    const bool f2 = algorithm == ConvAlgorithm::kWinogradF2 || winograd_f2_preferred();
    torch::Tensor y;
    if (!f2)
      y = onednn::winograd_conv3x3(x, weight);
    else if (algorithm == ConvAlgorithm::kWinogradF2 || f2_pays_)
      y = winograd_f2::conv3x3(x, weight);
    if (y.defined()) {
      ++winograd_calls;
      return bias.defined() ? y + bias.view({1, -1, 1, 1}) : y;
    }
  }
  return torch::nn::Conv2dImpl::forward(x);
}

void set_conv_algorithm(torch::nn::Module& model, ConvAlgorithm algorithm) {
  for (auto& m : model.modules(/*include_self=*/true))
    if (auto* conv = m->as<ConvImpl>()) conv->algorithm = algorithm;
}

}  // namespace convoy
