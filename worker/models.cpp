// Model definitions (see models.h). ResNet follows torchvision's layout and
// names (conv1, bn1, layer1.0.conv1, ..., fc) so weights map one to one.
#include "worker/models.h"

#include <algorithm>

#include "common/error.h"

namespace convoy {
namespace {

namespace nn = torch::nn;

void kaiming_init(nn::Module& m) {
  for (auto& mod : m.modules(/*include_self=*/false)) {
    if (auto* conv = mod->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
      if (conv->bias.defined()) nn::init::zeros_(conv->bias);
    } else if (auto* bn = mod->as<nn::BatchNorm2d>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    }
  }
}

nn::Conv2d conv(int in, int out, int k, int stride = 1, int pad = 0, bool bias = false) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(bias));
}

// Two 3x3 conv stages with max-pooling, then an MLP head. About 93% on
// Fashion-MNIST in a few epochs.
struct CnnImpl : ClassifierImpl {
  CnnImpl(const ModelSpec& spec, const ImageSpec& image, int classes) {
    int w = spec.width, c = image.channels;
    auto block = [&](nn::Sequential& seq, int in, int out) {
      seq->push_back(conv(in, out, 3, 1, 1, !spec.batch_norm));
      if (spec.batch_norm) seq->push_back(nn::BatchNorm2d(out));
      seq->push_back(nn::ReLU(nn::ReLUOptions(true)));
    };
    block(features, c, w);
    block(features, w, w);
    features->push_back(nn::MaxPool2d(2));
    block(features, w, 2 * w);
    block(features, 2 * w, 2 * w);
    features->push_back(nn::MaxPool2d(2));
    int ph = std::max(1, std::min(7, image.height / 4)), pw = std::max(1, std::min(7, image.width / 4));
    features->push_back(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({ph, pw})));
    classifier->push_back(nn::Flatten());
    if (spec.dropout > 0) classifier->push_back(nn::Dropout(spec.dropout));
    classifier->push_back(nn::Linear(2 * w * ph * pw, 256));
    classifier->push_back(nn::ReLU(nn::ReLUOptions(true)));
    if (spec.dropout > 0) classifier->push_back(nn::Dropout(spec.dropout));
    classifier->push_back(nn::Linear(256, classes));
    register_module("features", features);
    register_module("classifier", classifier);
    kaiming_init(*this);
  }
  torch::Tensor forward(torch::Tensor x) override { return classifier->forward(features->forward(x)); }
  nn::Sequential features, classifier;
};

struct MlpImpl : ClassifierImpl {
  MlpImpl(const ModelSpec& spec, const ImageSpec& image, int classes)
      : fc1(static_cast<int64_t>(image.bytes()), 256), fc2(256, classes) {
    register_module("fc1", fc1);
    register_module("fc2", fc2);
  }
  torch::Tensor forward(torch::Tensor x) override {
    return fc2->forward(torch::relu(fc1->forward(x.flatten(1))));
  }
  nn::Linear fc1, fc2;
};

// torchvision.models.resnet.BasicBlock.
struct BasicBlockImpl : nn::Module {
  BasicBlockImpl(int in, int out, int stride)
      : conv1(conv(in, out, 3, stride, 1)), bn1(out), conv2(conv(out, out, 3, 1, 1)), bn2(out) {
    register_module("conv1", conv1);
    register_module("bn1", bn1);
    register_module("conv2", conv2);
    register_module("bn2", bn2);
    if (stride != 1 || in != out) {
      downsample = nn::Sequential(conv(in, out, 1, stride), nn::BatchNorm2d(out));
      register_module("downsample", downsample);
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    auto out = torch::relu(bn1->forward(conv1->forward(x)));
    out = bn2->forward(conv2->forward(out));
    auto identity = downsample.is_empty() ? x : downsample->forward(x);
    return torch::relu(out + identity);
  }
  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  nn::Conv2d conv2;
  nn::BatchNorm2d bn2;
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

struct ResNetImpl : ClassifierImpl {
  ResNetImpl(const std::vector<int>& blocks, const ImageSpec& image, int classes)
      : conv1(conv(image.channels, 64, 7, 2, 3)), bn1(64), fc(512, classes) {
    register_module("conv1", conv1);
    register_module("bn1", bn1);
    int in = 64;
    for (int i = 0; i < 4; ++i) {
      int out = 64 << i;
      nn::Sequential layer;
      for (int b = 0; b < blocks[i]; ++b) {
        layer->push_back(BasicBlock(in, out, b == 0 && i > 0 ? 2 : 1));
        in = out;
      }
      layers.push_back(register_module("layer" + std::to_string(i + 1), layer));
    }
    register_module("fc", fc);
    kaiming_init(*this);
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::relu(bn1->forward(conv1->forward(x)));
    x = torch::max_pool2d(x, 3, 2, 1);
    for (auto& layer : layers) x = layer->forward(x);
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return fc->forward(x);
  }
  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  std::vector<nn::Sequential> layers;
  nn::Linear fc;
};

}  // namespace

Classifier make_model(const ModelSpec& spec, const ImageSpec& image, int num_classes) {
  CONVOY_CHECK(num_classes > 0, "model needs at least one class");
  if (spec.arch == "cnn") return std::make_shared<CnnImpl>(spec, image, num_classes);
  if (spec.arch == "mlp") return std::make_shared<MlpImpl>(spec, image, num_classes);
  if (spec.arch == "resnet18") return std::make_shared<ResNetImpl>(std::vector<int>{2, 2, 2, 2}, image, num_classes);
  CONVOY_USER_ERROR("model.arch: unknown architecture '" << spec.arch << "'");
}

}  // namespace convoy
