// The models a worker can train, built from ModelSpec: the compact CNN and
// MLP for small inputs, and torchvision's ResNet-18/34/50, VGG-11/16/19 (with
// and without BatchNorm) and ViT (Ti/S/B, any patch size: vit_b_16, vit_s_8) with torchvision's
// parameter names, and the U-Net with segmentation_models_pytorch's, so
// weights move between Convoy and Python one to one.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "common/config.h"

namespace convoy {

// Any model: images (N, C, H, W) float -> logits (N, classes), or for a
// segmentation model per-pixel logits (N, classes, H, W).
struct ClassifierImpl : torch::nn::Module {
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // The final classification layer's name prefix ("fc", "classifier.6",
  // "heads.head"): what fine-tuning replaces when the class count differs
  // and what stays trainable with a frozen backbone.
  std::string head;
};
using Classifier = std::shared_ptr<ClassifierImpl>;

// Builds `spec.arch` for `image` inputs and `num_classes` outputs. Weights are
// drawn from torch's global generator (seed it first for reproducibility),
// initialised as torchvision initialises them.
Classifier make_model(const ModelSpec& spec, const ImageSpec& image, int num_classes);

// Every model.arch make_model knows.
const std::vector<std::string>& model_archs();

// Architecture families (resnet.cpp, vgg.cpp, vit.cpp).
Classifier make_resnet(int depth, const ImageSpec& image, int num_classes);
Classifier make_vgg(int depth, bool batch_norm, float dropout, const ImageSpec& image, int num_classes);
struct VitShape {
  int layers, heads, hidden, mlp;
};
Classifier make_vit(const VitShape& shape, int patch, const ModelSpec& spec, const ImageSpec& image, int num_classes);
// unet.cpp: SMP's Unet with a ResNet encoder ("resnet18", "resnet34", "resnet50").
Classifier make_unet(const std::string& encoder, const ImageSpec& image, int num_classes);
// Whether `arch` labels pixels (its logits are (N, classes, H, W)).
bool is_segmentation_arch(const std::string& arch);
// A segmentation model's class per pixel from its logits (N, C, H, W):
// argmax over C, or for one channel (binary, a sigmoid) logit > 0. (N, H, W)
// int64, on the logits' device.
torch::Tensor predicted_classes(const torch::Tensor& logits);
// A segmentation model's logits (N, C, H, W) for an input whose top-left
// content_h x content_w is the picture (the rest padding): that part,
// resized bilinearly (align_corners false) to out_h x out_w. How evaluation
// scores and `convoy predict` labels each image at its own size.
torch::Tensor logits_at_size(const torch::Tensor& logits, int64_t content_h, int64_t content_w, int64_t out_h,
                             int64_t out_w);

}  // namespace convoy
