// Convoy's 2-D convolution module: torch::nn::Conv2d (same parameters, same
// names, same state_dict) whose forward can run a 3x3, stride-1 float32
// convolution on the CPU as a Winograd convolution instead of LibTorch's
// direct kernel: oneDNN's F(4x4, 3x3) where oneDNN has it (AVX-512; 4x
// fewer multiplications), or Convoy's own F(2x2, 3x3) (winograd_f2.cpp;
// 2.25x fewer) on CPUs whose kernels are AVX2-class. Figures in
// docs/PERFORMANCE.md, "Convolutions"; why, docs/ARCHITECTURE.md, "Decisions".
//
// model.conv_algorithm picks: "auto" (Winograd where it applies and pays,
// LibTorch's kernel everywhere else), "direct" (always LibTorch's) or
// "winograd_f2" (Convoy's F(2x2, 3x3) wherever a layer allows). Winograd
// never applies under autocast (bf16/fp16 go to LibTorch), on CUDA (cuDNN
// chooses its own algorithms), or to strided, dilated, grouped or non-3x3
// layers, or to layers with fewer than 16 channels in or out.
#pragma once

#include <torch/torch.h>

#include <string>

#include "common/choices.h"

namespace convoy {

// model.conv_algorithm (common/choices.h). kAuto: Winograd where it applies
// and pays: oneDNN's F(4x4, 3x3) where oneDNN has it (AVX-512), Convoy's
// F(2x2, 3x3) on CPUs whose kernels are AVX2-class (see
// winograd_f2_preferred), LibTorch's kernel elsewhere. kWinogradF2: Convoy's
// F(2x2, 3x3) wherever a layer allows it (for A/B runs). kDirect: always
// LibTorch's.
using ConvAlgorithm = ConvChoice;

struct ConvImpl : torch::nn::Conv2dImpl {
  ConvImpl(int in, int out, int kernel, int stride, int pad, bool bias);
  torch::Tensor forward(const torch::Tensor& x);

  ConvAlgorithm algorithm = ConvAlgorithm::kAuto;
  // Counts forward calls that ran as Winograd (tests and benchmarks ask).
  int64_t winograd_calls = 0;

 private:
  bool winograd_shape_;  // 3x3, stride 1, padding 1, channels in multiples of 16
  // ... and at least 64 channels in and out: below that the F(2x2, 3x3)
  // matrix products are too thin to beat the direct kernel (the 32-channel
  // layers of the quick start's CNN ran about 5% slower with it).
  bool f2_pays_;
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

// Convoy's own Winograd F(2x2, 3x3) (winograd_f2.cpp): 2.25x fewer
// multiplications than the direct convolution, for CPUs where oneDNN has no
// Winograd kernel.
namespace winograd_f2 {
// x (N, C, H, W) and w (K, C, 3, 3), float32 on the CPU in any dense layout:
// conv2d(x, w, padding 1), differentiable in both, the result in x's
// memory format (fastest with x channels_last). Undefined when x or w do
// not fit (not float32 on the CPU, not 3x3).
torch::Tensor conv3x3(const torch::Tensor& x, const torch::Tensor& w);
}  // namespace winograd_f2

// Whether "auto" uses Convoy's F(2x2, 3x3) on this machine: oneDNN has no
// Winograd kernel here and the CPU's kernels are AVX2-class (AVX2 without
// AVX-512, or AVX-512 capped by ONEDNN_MAX_CPU_ISA); see hardware.h.
bool winograd_f2_preferred();

}  // namespace convoy
