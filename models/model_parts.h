// Building blocks the model files share: a bias-optional conv (conv.h) and
// torchvision's initialisation of convolutions and normalisation layers.
#pragma once

#include <torch/torch.h>

#include "models/conv.h"

namespace convoy {

inline Conv conv2d(int in, int out, int k, int stride = 1, int pad = 0, bool bias = false) {
  return Conv(in, out, k, stride, pad, bias);
}

// torchvision's ResNet/VGG initialisation: Kaiming normal (fan_out, ReLU)
// convolutions with zero bias, BatchNorm weight 1 and bias 0.
inline void init_conv_and_norm(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& mod : m.modules(/*include_self=*/false)) {
    if (auto* conv = mod->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
      if (conv->bias.defined()) torch::nn::init::zeros_(conv->bias);
    } else if (auto* bn = mod->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(bn->weight);
      torch::nn::init::zeros_(bn->bias);
    }
  }
}

}  // namespace convoy
