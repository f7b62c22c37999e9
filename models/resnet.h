// torchvision's ResNet, also as an encoder: the U-Net (unet.cpp) takes its
// stages' outputs and leaves out the classification head, as SMP's
// ResNetEncoder does (no fc, no avgpool; the same names otherwise).
#pragma once

#include <torch/torch.h>

#include <array>
#include <memory>
#include <vector>

#include "models/model_parts.h"
#include "models/models.h"

namespace convoy {

struct ResNetImpl : ClassifierImpl {
  // classes 0: no head (an encoder).
  ResNetImpl(const std::array<int, 4>& blocks, bool bottleneck, const ImageSpec& image, int classes);
  torch::Tensor forward(torch::Tensor x) override;
  // The stages' outputs: after conv1+bn1+ReLU (stride 2), then layer1 (4),
  // layer2 (8), layer3 (16) and layer4 (32).
  std::vector<torch::Tensor> features(torch::Tensor x);
  // Their channels: 64, then 64/128/256/512 (x4 for ResNet-50).
  std::vector<int> feature_channels() const;

  Conv conv1;
  torch::nn::BatchNorm2d bn1;
  std::vector<torch::nn::Sequential> layers;
  torch::nn::Linear fc;

 private:
  std::vector<int> channels_;
};

// depth 18, 34 or 50; num_classes 0: an encoder without head.
std::shared_ptr<ResNetImpl> make_resnet_body(int depth, const ImageSpec& image, int num_classes);

}  // namespace convoy
