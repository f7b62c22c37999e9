// The model factory and the two small models (see models.h).
#include "models/models.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "common/error.h"
#include "models/model_parts.h"

namespace convoy {
namespace {

namespace nn = torch::nn;

// Two 3x3 conv stages with max-pooling, then an MLP head. About 93% on
// Fashion-MNIST in a few epochs.
struct CnnImpl : ClassifierImpl {
  CnnImpl(const ModelSpec& spec, const ImageSpec& image, int classes) {
    const int w = spec.width, c = image.channels;
    const float dropout = std::max(0.f, spec.dropout);
    auto block = [&](nn::Sequential& seq, int in, int out) {
      seq->push_back(conv2d(in, out, 3, 1, 1, !spec.batch_norm));
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
    if (dropout > 0) classifier->push_back(nn::Dropout(dropout));
    classifier->push_back(nn::Linear(2 * w * ph * pw, 256));
    classifier->push_back(nn::ReLU(nn::ReLUOptions(true)));
    if (dropout > 0) classifier->push_back(nn::Dropout(dropout));
    head = "classifier." + std::to_string(classifier->size());
    classifier->push_back(nn::Linear(256, classes));
    register_module("features", features);
    register_module("classifier", classifier);
    init_conv_and_norm(*this);
  }
  torch::Tensor forward(torch::Tensor x) override { return classifier->forward(features->forward(x)); }
  nn::Sequential features, classifier;
};

struct MlpImpl : ClassifierImpl {
  MlpImpl(const ImageSpec& image, int classes) : fc1(static_cast<int64_t>(image.bytes()), 256), fc2(256, classes) {
    register_module("fc1", fc1);
    register_module("fc2", fc2);
    head = "fc2";
  }
  torch::Tensor forward(torch::Tensor x) override {
    return fc2->forward(torch::relu(fc1->forward(x.flatten(1))));
  }
  nn::Linear fc1, fc2;
};

const std::map<std::string, VitShape>& vit_shapes() {
  // ViT-Ti and ViT-S as in DeiT; ViT-B as torchvision's vit_b_*.
  static const std::map<std::string, VitShape> shapes = {
      {"vit_ti", {12, 3, 192, 768}}, {"vit_s", {12, 6, 384, 1536}}, {"vit_b", {12, 12, 768, 3072}}};
  return shapes;
}

Classifier build(const ModelSpec& spec, const ImageSpec& image, int num_classes) {
  CONVOY_CHECK(num_classes > 0, "model needs at least one class");
  const std::string& a = spec.arch;
  if (a == "cnn") return std::make_shared<CnnImpl>(spec, image, num_classes);
  if (a == "mlp") return std::make_shared<MlpImpl>(image, num_classes);
  if (a == "unet") return make_unet(spec.encoder, image, num_classes);
  if (a == "resnet18" || a == "resnet34" || a == "resnet50") return make_resnet(std::stoi(a.substr(6)), image, num_classes);
  if (a.rfind("vgg", 0) == 0) {
    const bool bn = a.size() > 3 && a.substr(a.size() - 3) == "_bn";
    const int depth = std::stoi(a.substr(3, 2));
    if (depth == 11 || depth == 16 || depth == 19)
      return make_vgg(depth, bn, spec.dropout < 0 ? 0.5f : spec.dropout, image, num_classes);
  }
  // vit_<size>_<patch>: vit_b_16, vit_s_8, vit_ti_32, ...
  auto cut = a.rfind('_');
  if (a.rfind("vit_", 0) == 0 && cut != std::string::npos && vit_shapes().count(a.substr(0, cut))) {
    const std::string patch = a.substr(cut + 1);
    if (!patch.empty() && patch.size() <= 3 && std::all_of(patch.begin(), patch.end(), ::isdigit) && std::stoi(patch) > 0)
      return make_vit(vit_shapes().at(a.substr(0, cut)), std::stoi(patch), spec, image, num_classes);
  }
  CONVOY_USER_ERROR("model.arch: unknown architecture '" << a << "'");
}

}  // namespace

const std::vector<std::string>& model_archs() {
  static const std::vector<std::string> archs = {
      "cnn",   "mlp",      "resnet18", "resnet34", "resnet50",  "vgg11",     "vgg11_bn",
      "vgg16", "vgg16_bn", "vgg19",    "vgg19_bn", "vit_ti_16", "vit_s_16",  "vit_b_16", "unet"};
  return archs;
}

bool is_segmentation_arch(const std::string& arch) { return arch == "unet"; }

torch::Tensor predicted_classes(const torch::Tensor& logits) {
  return logits.size(1) == 1 ? logits.select(1, 0).gt(0).to(torch::kLong) : logits.argmax(1);
}

torch::Tensor logits_at_size(const torch::Tensor& logits, int64_t content_h, int64_t content_w, int64_t out_h,
                             int64_t out_w) {
  auto l = logits.narrow(2, 0, content_h).narrow(3, 0, content_w);
  if (content_h == out_h && content_w == out_w) return l;
  namespace F = torch::nn::functional;
  return F::interpolate(l, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{out_h, out_w})
                               .mode(torch::kBilinear)
                               .align_corners(false));
}

Classifier make_model(const ModelSpec& spec, const ImageSpec& image, int num_classes) {
  auto model = build(spec, image, num_classes);
  set_conv_algorithm(*model, spec.conv_algorithm);
  return model;
}

}  // namespace convoy
