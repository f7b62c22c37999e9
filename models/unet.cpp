// U-Net with a ResNet encoder, as segmentation_models_pytorch (0.3) builds
// smp.Unet(encoder_name="resnetN", classes=C): the same modules, shapes and
// parameter names, so a state_dict moves between the two as it is.
//
//   encoder.*                    torchvision's ResNet without fc (resnet.h)
//   decoder.blocks.{0..4}.conv1.{0: conv, 1: BatchNorm}, .conv2.{0, 1}
//   segmentation_head.0.{weight, bias}   3x3 conv to C classes
//
// Decoder block i: nearest-neighbour upsampling x2, concatenation with the
// encoder's feature at that scale (none for the last block), then two
// conv-BN-ReLU, to 256, 128, 64, 32, 16 channels. Input sides must be
// multiples of 32. Output: per-pixel logits (N, C, H, W).
#include "common/error.h"
#include "models/model_parts.h"
#include "models/models.h"
#include "models/resnet.h"

namespace convoy {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

// SMP's Conv2dReLU with batch norm: Sequential(conv without bias, BN, ReLU).
nn::Sequential conv_bn_relu(int in, int out) {
  return nn::Sequential(conv2d(in, out, 3, 1, 1), nn::BatchNorm2d(out), nn::ReLU(nn::ReLUOptions().inplace(true)));
}

struct DecoderBlockImpl : nn::Module {
  DecoderBlockImpl(int in, int skip, int out)
      : conv1(register_module("conv1", conv_bn_relu(in + skip, out))),
        conv2(register_module("conv2", conv_bn_relu(out, out))) {}
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& skip) {
    x = F::interpolate(x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2, 2}).mode(torch::kNearest));
    if (skip.defined()) x = torch::cat({x, skip}, 1);
    return conv2->forward(conv1->forward(x));
  }
  nn::Sequential conv1, conv2;
};
TORCH_MODULE(DecoderBlock);

struct DecoderImpl : nn::Module {
  // `features`: the encoder's channels, shallow to deep (64, 64, 128, 256, 512).
  explicit DecoderImpl(const std::vector<int>& features) {
    const std::vector<int> out = {256, 128, 64, 32, 16};
    const std::vector<int> deep(features.rbegin(), features.rend());  // 512, 256, 128, 64, 64
    int in = deep[0];
    for (size_t i = 0; i < out.size(); ++i) {
      const int skip = i + 1 < deep.size() ? deep[i + 1] : 0;
      blocks->push_back(DecoderBlock(in, skip, out[i]));
      in = out[i];
    }
    register_module("blocks", blocks);
  }
  torch::Tensor forward(const std::vector<torch::Tensor>& features) {
    torch::Tensor x = features.back();
    for (size_t i = 0; i < blocks->size(); ++i) {
      // Skips from deep to shallow: layer3, layer2, layer1, the stem; none last.
      const size_t k = features.size() - 2 - i;
      x = blocks[i]->as<DecoderBlockImpl>()->forward(x, i + 1 < features.size() ? features[k] : torch::Tensor());
    }
    return x;
  }
  nn::ModuleList blocks;
};
TORCH_MODULE(Decoder);

struct UnetImpl : ClassifierImpl {
  UnetImpl(int depth, const ImageSpec& image, int classes)
      : encoder(make_resnet_body(depth, image, 0)), decoder(encoder->feature_channels()),
        segmentation_head(nn::Conv2d(nn::Conv2dOptions(16, classes, 3).padding(1))) {
    CONVOY_CHECK(image.height % 32 == 0 && image.width % 32 == 0,
                 "a U-Net needs image sides that are multiples of 32, not " << image.height << "x" << image.width);
    register_module("encoder", encoder);
    register_module("decoder", decoder);
    register_module("segmentation_head", segmentation_head);
    head = "segmentation_head";
    torch::NoGradGuard no_grad;
    // SMP's initialize_decoder and initialize_head (the encoder keeps
    // torchvision's): Kaiming-uniform (fan_in, ReLU) decoder convolutions,
    // BatchNorm 1/0, a Xavier-uniform head with zero bias.
    for (auto& m : decoder->modules(/*include_self=*/false)) {
      if (auto* conv = m->as<nn::Conv2d>()) {
        nn::init::kaiming_uniform_(conv->weight, 0.0, torch::kFanIn, torch::kReLU);
        if (conv->bias.defined()) nn::init::zeros_(conv->bias);
      } else if (auto* bn = m->as<nn::BatchNorm2d>()) {
        nn::init::ones_(bn->weight);
        nn::init::zeros_(bn->bias);
      }
    }
    auto* conv = segmentation_head[0]->as<nn::Conv2d>();
    nn::init::xavier_uniform_(conv->weight);
    nn::init::zeros_(conv->bias);
  }
  torch::Tensor forward(torch::Tensor x) override {
    return segmentation_head->forward(decoder->forward(encoder->features(x)));
  }
  std::shared_ptr<ResNetImpl> encoder;
  Decoder decoder;
  nn::Sequential segmentation_head;  // SMP's SegmentationHead: (conv, upsampling, activation), only the conv here
};

}  // namespace

Classifier make_unet(const std::string& encoder, const ImageSpec& image, int num_classes) {
  if (encoder != "resnet18" && encoder != "resnet34" && encoder != "resnet50")
    CONVOY_USER_ERROR("model.encoder: '" << encoder << "' is not resnet18, resnet34 or resnet50");
  return std::make_shared<UnetImpl>(std::stoi(encoder.substr(6)), image, num_classes);
}

}  // namespace convoy
