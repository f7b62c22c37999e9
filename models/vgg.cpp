// torchvision's VGG-11/16/19, with and without BatchNorm, with its layer
// indices as parameter names (features.0, features.1, ..., classifier.6):
// a ReLU or max-pool takes an index too, so the modules go in the same order.
#include <map>

#include "common/error.h"
#include "models/model_parts.h"
#include "models/models.h"

namespace convoy {
namespace {

namespace nn = torch::nn;

constexpr int kPool = 0;  // 'M' in torchvision's cfgs

const std::vector<int>& vgg_layout(int depth) {
  static const std::map<int, std::vector<int>> layouts = {
      {11, {64, kPool, 128, kPool, 256, 256, kPool, 512, 512, kPool, 512, 512, kPool}},
      {16, {64, 64, kPool, 128, 128, kPool, 256, 256, 256, kPool, 512, 512, 512, kPool, 512, 512, 512, kPool}},
      {19, {64, 64, kPool, 128, 128, kPool, 256, 256, 256, 256, kPool, 512, 512, 512, 512, kPool, 512, 512, 512, 512,
            kPool}}};
  auto it = layouts.find(depth);
  if (it == layouts.end()) CONVOY_USER_ERROR("model.arch: no VGG-" << depth << " (use vgg11, vgg16 or vgg19)");
  return it->second;
}

struct VggImpl : ClassifierImpl {
  VggImpl(int depth, bool batch_norm, float dropout, const ImageSpec& image, int classes) {
    int in = image.channels;
    for (int v : vgg_layout(depth)) {
      if (v == kPool) {
        features->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2)));
        continue;
      }
      features->push_back(conv2d(in, v, 3, 1, 1, /*bias=*/true));
      if (batch_norm) features->push_back(nn::BatchNorm2d(v));
      features->push_back(nn::ReLU(nn::ReLUOptions(true)));
      in = v;
    }
    classifier->push_back(nn::Linear(512 * 7 * 7, 4096));
    classifier->push_back(nn::ReLU(nn::ReLUOptions(true)));
    classifier->push_back(nn::Dropout(dropout));
    classifier->push_back(nn::Linear(4096, 4096));
    classifier->push_back(nn::ReLU(nn::ReLUOptions(true)));
    classifier->push_back(nn::Dropout(dropout));
    classifier->push_back(nn::Linear(4096, classes));
    register_module("features", features);
    register_module("avgpool", avgpool);
    register_module("classifier", classifier);
    head = "classifier.6";
    init_conv_and_norm(*this);
    torch::NoGradGuard no_grad;
    for (auto& mod : classifier->modules(false))
      if (auto* fc = mod->as<nn::Linear>()) {
        nn::init::normal_(fc->weight, 0, 0.01);
        nn::init::zeros_(fc->bias);
      }
  }
  torch::Tensor forward(torch::Tensor x) override {
    return classifier->forward(avgpool->forward(features->forward(x)).flatten(1));
  }
  nn::Sequential features, classifier;
  nn::AdaptiveAvgPool2d avgpool{nn::AdaptiveAvgPool2dOptions({7, 7})};
};

}  // namespace

Classifier make_vgg(int depth, bool batch_norm, float dropout, const ImageSpec& image, int num_classes) {
  return std::make_shared<VggImpl>(depth, batch_norm, dropout, image, num_classes);
}

}  // namespace convoy
