// Convoy's 2-D convolution module: torch::nn::Conv2d (same parameters, same
// names, same state_dict) whose forward can run a 3x3, stride-1 float32
// convolution on the CPU as oneDNN's Winograd F(4x4, 3x3) instead of
// LibTorch's direct kernel. Winograd does about 2.25x fewer multiplications;
// on this project's CPUs ResNet-18's 3x3 convolutions run 1.3-2.3x faster
// forward and backward (docs/ARCHITECTURE.md, "Convolutions").
//
// model.conv_algorithm picks: "auto" (Winograd where it applies and this
// build has it, LibTorch's kernel everywhere else) or "direct" (always
// LibTorch's). Winograd never applies under autocast (bf16/fp16 go to
// LibTorch, which has no Winograd for them either), on CUDA (cuDNN chooses
// its own algorithms), or to strided, dilated, grouped or non-3x3 layers.
#pragma once

#include <torch/torch.h>

#include <string>

namespace convoy {

enum class ConvAlgorithm { kAuto, kDirect };

// "auto" | "direct"; anything else is a UserError naming model.conv_algorithm.
ConvAlgorithm conv_algorithm_from_name(const std::string& name);

struct ConvImpl : torch::nn::Conv2dImpl {
  ConvImpl(int in, int out, int kernel, int stride, int pad, bool bias);
  torch::Tensor forward(const torch::Tensor& x);

  ConvAlgorithm algorithm = ConvAlgorithm::kAuto;
  // Counts forward calls that ran as Winograd (tests and benchmarks ask).
  int64_t winograd_calls = 0;

 private:
  bool winograd_shape_;  // 3x3, stride 1, padding 1, channels in multiples of 16
};
TORCH_MODULE(Conv);

// Sets `algorithm` on every Conv inside `model`.
void set_conv_algorithm(torch::nn::Module& model, ConvAlgorithm algorithm);

// What the oneDNN half (onednn_conv.cpp, or onednn_unavailable.cpp where
// this build has no usable oneDNN) provides.
namespace onednn {
// Whether Winograd convolutions can run in this build on this CPU; when not,
// *why says why.
bool winograd_available(std::string* why = nullptr);
// x (N, C, H, W) and w (K, C, 3, 3), float32 on the CPU in any dense layout:
// conv2d(x, w, padding 1) through oneDNN's Winograd kernels, differentiable
// in both, the result in x's memory format. Returns an undefined tensor when
// oneDNN has no Winograd kernel for this shape on this CPU (the caller then
// uses LibTorch's).
torch::Tensor winograd_conv3x3(const torch::Tensor& x, const torch::Tensor& w);
}  // namespace onednn

}  // namespace convoy
