// Segmentation losses on per-pixel logits, as segmentation_models_pytorch
// computes them: soft dice (SMP's DiceLoss: per class, intersection and
// cardinality summed over the batch and the pixels, smooth 0, eps 1e-7,
// classes absent from the target left out by a zero, then the mean over
// classes), binary cross-entropy with logits, cross-entropy, and their sums.
// Pixels whose target is `ignore_index` count in none of them.
//
// Binary mode: one output channel (a sigmoid), targets 0/1. Multiclass: C
// channels (a softmax), targets 0..C-1.
#pragma once

#include <torch/torch.h>

#include "common/choices.h"

namespace convoy {

// The loss kind auto resolves to: dice+bce for one channel, dice+ce else.
LossKind resolve_segmentation_loss(LossKind asked, int channels);

// logits (N, C, H, W) float; target (N, H, W) int64. A scalar.
torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, LossKind kind,
                                int64_t ignore_index);

// The soft dice loss alone (what dice_loss reports in `convoy eval`).
torch::Tensor soft_dice_loss(const torch::Tensor& logits, const torch::Tensor& target, int64_t ignore_index);

}  // namespace convoy
