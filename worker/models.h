// The models a worker can train, built from ModelSpec: a compact CNN for
// small inputs, ResNet-18 with torchvision's parameter names, and an MLP.
#pragma once

#include <torch/torch.h>

#include "common/config.h"

namespace convoy {

// Any model: images (N, C, H, W) float -> logits (N, classes).
struct ClassifierImpl : torch::nn::Module {
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};
using Classifier = std::shared_ptr<ClassifierImpl>;

// Builds `spec.arch` for `image` inputs and `num_classes` outputs. Weights are
// drawn from torch's global generator (seed it first for reproducibility).
Classifier make_model(const ModelSpec& spec, const ImageSpec& image, int num_classes);

}  // namespace convoy
