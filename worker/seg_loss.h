// Segmentation losses on per-pixel logits, as segmentation_models_pytorch
// computes them: soft dice (SMP's DiceLoss: per class, intersection and
// cardinality summed over the batch and the pixels, smooth 0, eps 1e-7,
// classes absent from the target left out by a zero, then the mean over
// classes), binary cross-entropy with logits, cross-entropy, and their sums.
// Pixels whose target is `ignore_index` count in none of them.
//
// Binary mode: one output channel (a sigmoid), targets 0/1. Multiclass: C
// channels (a softmax), targets 0..C-1.
//
// Across ranks. Dice is not a mean over samples: the dice of a global batch
// is not the mean of its shards' dice, and a cross-entropy averaged over
// labelled pixels is not either when ranks hold different numbers of them.
// So the loss is computed in two steps: each rank sums its terms
// (SegLossTerms: per-class intersection, cardinality and target pixels, the
// cross-entropy's sum and the labelled pixels), the ranks all-reduce those
// sums (pack()), and segmentation_loss(terms, totals, world) gives every
// rank the global batch's loss, with a gradient that, once DDP averages it
// over the ranks, is exactly the gradient of the loss on the global batch.
#pragma once

#include <torch/torch.h>

#include "common/choices.h"

namespace convoy {

// The loss kind auto resolves to: dice+bce for one channel, dice+ce else.
LossKind resolve_segmentation_loss(LossKind asked, int channels);

// One rank's sums. Tensors that carry a gradient come from the logits.
struct SegLossTerms {
  LossKind kind = LossKind::kAuto;
  torch::Tensor intersection, cardinality;  // (C) float, with gradient; dice kinds only
  torch::Tensor target_pixels;              // (C) float, each class's labelled pixels
  torch::Tensor xent_sum;                   // () float, with gradient; bce/ce kinds only
  torch::Tensor valid_pixels;               // () float, pixels not ignore_index

  // The sums as one float64 CPU vector (3C + 2 values) to all-reduce.
  torch::Tensor pack() const;
};

// logits (N, C, H, W) float; target (N, H, W) int64.
SegLossTerms segmentation_loss_terms(const torch::Tensor& logits, const torch::Tensor& target, LossKind kind,
                                     int64_t ignore_index);

// The loss of the global batch from this rank's terms and every rank's
// summed pack() (`totals`), its gradient scaled by `world_size` so that the
// ranks' mean gradient is the global batch's. With one rank and totals =
// terms.pack(), exactly the loss of segmentation_loss(logits, ...).
torch::Tensor segmentation_loss(const SegLossTerms& terms, const torch::Tensor& totals, int world_size);

// One batch on its own: a scalar.
torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, LossKind kind,
                                int64_t ignore_index);

// The soft dice loss alone (what dice_loss reports in `convoy eval`).
torch::Tensor soft_dice_loss(const torch::Tensor& logits, const torch::Tensor& target, int64_t ignore_index);

}  // namespace convoy
