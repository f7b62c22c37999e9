// Segmentation losses (see seg_loss.h).
#include "worker/seg_loss.h"

#include "common/error.h"

namespace convoy {
namespace {

namespace F = torch::nn::functional;

constexpr double kEps = 1e-7;

}  // namespace

LossKind resolve_segmentation_loss(LossKind asked, int channels) {
  if (asked != LossKind::kAuto) return asked;
  return channels == 1 ? LossKind::kDiceBce : LossKind::kDiceCe;
}

torch::Tensor soft_dice_loss(const torch::Tensor& logits, const torch::Tensor& target, int64_t ignore_index) {
  const int64_t c = logits.size(1);
  const auto valid = target.ne(ignore_index).unsqueeze(1);  // (N, 1, H, W)
  torch::Tensor probs, onehot;
  if (c == 1) {
    probs = logits.sigmoid();
    onehot = target.clamp(0, 1).unsqueeze(1).to(probs.scalar_type());
  } else {
    probs = logits.softmax(1);
    onehot = F::one_hot(target.masked_fill(target.eq(ignore_index), 0), c).permute({0, 3, 1, 2}).to(probs.scalar_type());
  }
  probs = probs * valid;
  onehot = onehot * valid;
  const std::vector<int64_t> dims = {0, 2, 3};  // the batch and the pixels, per class
  const auto intersection = (probs * onehot).sum(dims);
  const auto cardinality = (probs + onehot).sum(dims);
  const auto dice = (2 * intersection) / cardinality.clamp_min(kEps);
  const auto present = onehot.sum(dims).gt(0).to(dice.scalar_type());
  return ((1 - dice) * present).mean();
}

torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, LossKind kind,
                                int64_t ignore_index) {
  const int64_t c = logits.size(1);
  const bool binary = c == 1;
  CONVOY_CHECK(kind != LossKind::kAuto, "resolve the loss first");
  if ((kind == LossKind::kBce || kind == LossKind::kDiceBce) && !binary)
    CONVOY_USER_ERROR("train.loss " << name_of(kind) << " needs one output channel (model.num_classes: 1, binary); "
                                    << "with " << c << " classes use dice+ce or ce");
  if (kind == LossKind::kCe && binary)
    CONVOY_USER_ERROR("train.loss ce needs two classes or more; with model.num_classes 1 use bce or dice+bce");
  torch::Tensor loss = torch::zeros({}, logits.options());
  if (kind == LossKind::kDice || kind == LossKind::kDiceBce || kind == LossKind::kDiceCe)
    loss = loss + soft_dice_loss(logits, target, ignore_index);
  if (kind == LossKind::kBce || kind == LossKind::kDiceBce) {
    const auto valid = target.ne(ignore_index);
    const auto per_pixel = F::binary_cross_entropy_with_logits(
        logits.squeeze(1), target.clamp(0, 1).to(logits.scalar_type()),
        F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
    loss = loss + (per_pixel * valid).sum() / valid.sum().clamp_min(1);
  }
  if (kind == LossKind::kCe || kind == LossKind::kDiceCe) {
    // No pixel labelled: cross-entropy's mean would be 0/0.
    if (target.ne(ignore_index).any().item<bool>())
      loss = loss + F::cross_entropy(logits, target, F::CrossEntropyFuncOptions().ignore_index(ignore_index));
  }
  return loss;
}

}  // namespace convoy
