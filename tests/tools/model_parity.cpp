// Test helper for the torchvision parity tests (tests/integration/
// test_models.py): runs one Convoy model in eval mode on an input tensor.
//
// usage: model_parity ARCH CLASSES HEIGHT WIDTH IN_STATE|- INPUT.pt OUT.pt [OUT_STATE]
//   IN_STATE   a state_dict to load strictly ("-": Convoy's own initialisation,
//              with BatchNorm statistics and the head randomised so that the
//              logits say something)
//   INPUT.pt   {"x": float tensor (N, C, H, W)}
//   OUT.pt     {"logits": (N, CLASSES), or (N, CLASSES, H, W) for unet:ENCODER}
//   OUT_STATE  the model's state_dict, for loading into torchvision
#include <cstdio>
#include <exception>

#include "models/models.h"
#include "models/state_dict.h"
#include "models/torch_errors.h"

namespace {

void randomise_statistics_and_head(convoy::ClassifierImpl& m) {
  torch::NoGradGuard no_grad;
  for (auto& b : m.named_buffers()) {
    const std::string& n = b.key();
    if (n.size() > 12 && n.substr(n.size() - 12) == "running_mean") b.value().uniform_(-0.1, 0.1);
    if (n.size() > 11 && n.substr(n.size() - 11) == "running_var") b.value().uniform_(0.5, 1.5);
  }
  for (auto& p : m.named_parameters())
    if (p.key().rfind(m.head + ".", 0) == 0) p.value().normal_(0, 0.02);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8 && argc != 9) {
    std::fprintf(stderr, "usage: model_parity ARCH CLASSES HEIGHT WIDTH IN_STATE|- INPUT.pt OUT.pt [OUT_STATE]\n");
    return 2;
  }
  try {
    torch::manual_seed(0);
    convoy::ModelSpec spec;
    // "unet:resnet34": the U-Net with that encoder.
    spec.arch = argv[1];
    if (auto colon = spec.arch.find(':'); colon != std::string::npos) {
      spec.encoder = spec.arch.substr(colon + 1);
      spec.arch = spec.arch.substr(0, colon);
    }
    // LibTorch's own convolution kernels, as torchvision runs: the parity is
    // about the model (names, shapes, layer order), and 1e-4 leaves no room
    // for Winograd's different rounding, which ResNet-50's 16 blocks can
    // carry past it on a logit near zero. tests/models/conv_test.cpp bounds
    // Winograd against the direct kernel.
    spec.conv_algorithm = convoy::ConvChoice::kDirect;
    convoy::ImageSpec image{std::stoi(argv[3]), std::stoi(argv[4]), 3};
    auto model = convoy::make_model(spec, image, std::stoi(argv[2]));
    if (std::string(argv[5]) == "-") randomise_statistics_and_head(*model);
    else convoy::load_state_dict(*model, convoy::read_state_dict(argv[5]));
    model->eval();
    torch::NoGradGuard no_grad;
    auto x = convoy::read_state_dict(argv[6]).at("x");
    convoy::save_state_dict(argv[7], {{"logits", model->forward(x)}});
    if (argc == 9) convoy::save_state_dict(argv[8], convoy::state_dict(*model));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_parity: %s\n", convoy::error_text(e).c_str());
    return 1;
  }
}
