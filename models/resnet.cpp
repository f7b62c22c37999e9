// torchvision's ResNet-18/34 (BasicBlock) and ResNet-50 (Bottleneck, stride
// on the 3x3 conv: "ResNet v1.5"), with its parameter names: conv1, bn1,
// layer1.0.conv1, ..., layerN.0.downsample.{0,1}, fc.
#include <array>

#include "common/error.h"
#include "models/model_parts.h"
#include "models/models.h"
#include "models/resnet.h"

namespace convoy {
namespace {

namespace nn = torch::nn;

// One residual block; `bottleneck` selects torchvision's Bottleneck
// (1x1 -> 3x3 -> 1x1, expansion 4) over BasicBlock (3x3 -> 3x3).
struct BlockImpl : nn::Module {
  BlockImpl(int in, int width, int stride, bool bottleneck) : bottleneck_(bottleneck) {
    const int out = bottleneck ? width * 4 : width;
    if (bottleneck) {
      conv1 = register_module("conv1", conv2d(in, width, 1));
      bn1 = register_module("bn1", nn::BatchNorm2d(width));
      conv2 = register_module("conv2", conv2d(width, width, 3, stride, 1));
      bn2 = register_module("bn2", nn::BatchNorm2d(width));
      conv3 = register_module("conv3", conv2d(width, out, 1));
      bn3 = register_module("bn3", nn::BatchNorm2d(out));
    } else {
      conv1 = register_module("conv1", conv2d(in, width, 3, stride, 1));
      bn1 = register_module("bn1", nn::BatchNorm2d(width));
      conv2 = register_module("conv2", conv2d(width, width, 3, 1, 1));
      bn2 = register_module("bn2", nn::BatchNorm2d(width));
    }
    if (stride != 1 || in != out)
      downsample = register_module("downsample", nn::Sequential(conv2d(in, out, 1, stride), nn::BatchNorm2d(out)));
  }
  // In-place ReLUs and residual add, as torchvision's blocks: fewer
  // tensors to allocate and stream through memory.
  torch::Tensor forward(const torch::Tensor& x) {
    auto out = bn1->forward(conv1->forward(x)).relu_();
    out = bn2->forward(conv2->forward(out));
    if (bottleneck_) out = bn3->forward(conv3->forward(out.relu_()));
    out += downsample.is_empty() ? x : downsample->forward(x);
    return out.relu_();
  }
  bool bottleneck_;
  Conv conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Block);

}  // namespace

ResNetImpl::ResNetImpl(const std::array<int, 4>& blocks, bool bottleneck, const ImageSpec& image, int classes)
    : conv1(conv2d(image.channels, 64, 7, 2, 3)), bn1(64),
      // Made before the layers, as it always was: the head's default
      // initialisation draws from the generator first.
      fc(classes > 0 ? nn::Linear(bottleneck ? 2048 : 512, classes) : nn::Linear(nullptr)) {
  register_module("conv1", conv1);
  register_module("bn1", bn1);
  int in = 64;
  for (int i = 0; i < 4; ++i) {
    const int width = 64 << i;
    nn::Sequential layer;
    for (int b = 0; b < blocks[i]; ++b) {
      layer->push_back(Block(in, width, b == 0 && i > 0 ? 2 : 1, bottleneck));
      in = bottleneck ? width * 4 : width;
    }
    layers.push_back(register_module("layer" + std::to_string(i + 1), layer));
    channels_.push_back(in);
  }
  if (classes > 0) {
    register_module("fc", fc);
    head = "fc";
  }
  init_conv_and_norm(*this);
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) {
  CONVOY_CHECK(!fc.is_empty(), "a ResNet encoder has no classification head");
  x = features(x).back();
  x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  return fc->forward(x);
}

std::vector<torch::Tensor> ResNetImpl::features(torch::Tensor x) {
  std::vector<torch::Tensor> out;
  x = bn1->forward(conv1->forward(x)).relu_();
  out.push_back(x);
  x = torch::max_pool2d(x, 3, 2, 1);
  for (auto& layer : layers) {
    x = layer->forward(x);
    out.push_back(x);
  }
  return out;
}

std::vector<int> ResNetImpl::feature_channels() const {
  std::vector<int> out = {64};
  out.insert(out.end(), channels_.begin(), channels_.end());
  return out;
}

std::shared_ptr<ResNetImpl> make_resnet_body(int depth, const ImageSpec& image, int num_classes) {
  switch (depth) {
    case 18: return std::make_shared<ResNetImpl>(std::array<int, 4>{2, 2, 2, 2}, false, image, num_classes);
    case 34: return std::make_shared<ResNetImpl>(std::array<int, 4>{3, 4, 6, 3}, false, image, num_classes);
    case 50: return std::make_shared<ResNetImpl>(std::array<int, 4>{3, 4, 6, 3}, true, image, num_classes);
    default: CONVOY_USER_ERROR("no ResNet-" << depth << " (use resnet18, resnet34 or resnet50)");
  }
}

Classifier make_resnet(int depth, const ImageSpec& image, int num_classes) {
  return make_resnet_body(depth, image, num_classes);
}

}  // namespace convoy
