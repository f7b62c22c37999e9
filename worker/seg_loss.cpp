// Segmentation losses (see seg_loss.h).
#include "worker/seg_loss.h"

#include "common/error.h"

namespace convoy {
namespace {

namespace F = torch::nn::functional;

constexpr double kEps = 1e-7;

bool has_dice(LossKind k) { return k == LossKind::kDice || k == LossKind::kDiceBce || k == LossKind::kDiceCe; }
bool has_bce(LossKind k) { return k == LossKind::kBce || k == LossKind::kDiceBce; }
bool has_ce(LossKind k) { return k == LossKind::kCe || k == LossKind::kDiceCe; }

void check_kind(LossKind kind, int64_t channels) {
  CONVOY_CHECK(kind != LossKind::kAuto, "resolve the loss first");
  const bool binary = channels == 1;
  if (has_bce(kind) && !binary)
    CONVOY_USER_ERROR("train.loss " << name_of(kind) << " needs one output channel (model.num_classes: 1, binary); "
                                    << "with " << channels << " classes use dice+ce or ce");
  if (kind == LossKind::kCe && binary)
    CONVOY_USER_ERROR("train.loss ce needs two classes or more; with model.num_classes 1 use bce or dice+bce");
}

// The global value of a sum whose local part carries the gradient: the
// value of `total`, the gradient of `local`.
torch::Tensor global_of(const torch::Tensor& local, const torch::Tensor& total) {
  return local + (total.to(local.options()) - local.detach());
}

}  // namespace

LossKind resolve_segmentation_loss(LossKind asked, int channels) {
  if (asked != LossKind::kAuto) return asked;
  return channels == 1 ? LossKind::kDiceBce : LossKind::kDiceCe;
}

torch::Tensor SegLossTerms::pack() const {
  const int64_t c = target_pixels.size(0);
  auto zeros = torch::zeros({c}, target_pixels.options());
  auto scalar_zero = torch::zeros({1}, target_pixels.options());
  return torch::cat({intersection.defined() ? intersection.detach() : zeros,
                     cardinality.defined() ? cardinality.detach() : zeros, target_pixels.detach(),
                     xent_sum.defined() ? xent_sum.detach().reshape({1}) : scalar_zero, valid_pixels.reshape({1})})
      .to(torch::kCPU, torch::kFloat64);
}

SegLossTerms segmentation_loss_terms(const torch::Tensor& logits, const torch::Tensor& target, LossKind kind,
                                     int64_t ignore_index) {
  const int64_t c = logits.size(1);
  check_kind(kind, c);
  SegLossTerms t;
  t.kind = kind;
  const auto valid_mask = target.ne(ignore_index);
  const auto valid = valid_mask.unsqueeze(1);  // (N, 1, H, W)
  const std::vector<int64_t> dims = {0, 2, 3};  // the batch and the pixels, per class
  torch::Tensor onehot;
  if (c == 1)
    onehot = target.clamp(0, 1).unsqueeze(1).to(logits.scalar_type());
  else
    onehot = F::one_hot(target.masked_fill(target.eq(ignore_index), 0), c).permute({0, 3, 1, 2}).to(logits.scalar_type());
  onehot = onehot * valid;
  t.target_pixels = onehot.sum(dims);
  t.valid_pixels = valid_mask.sum().to(logits.scalar_type());
  if (has_dice(kind)) {
    auto probs = (c == 1 ? logits.sigmoid() : logits.softmax(1)) * valid;
    t.intersection = (probs * onehot).sum(dims);
    t.cardinality = (probs + onehot).sum(dims);
  }
  if (has_bce(kind)) {
    const auto per_pixel = F::binary_cross_entropy_with_logits(
        logits.squeeze(1), target.clamp(0, 1).to(logits.scalar_type()),
        F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
    t.xent_sum = (per_pixel * valid_mask).sum();
  }
  if (has_ce(kind))
    t.xent_sum = F::cross_entropy(logits, target,
                                  F::CrossEntropyFuncOptions().ignore_index(ignore_index).reduction(torch::kSum));
  return t;
}

torch::Tensor segmentation_loss(const SegLossTerms& terms, const torch::Tensor& totals, int world_size) {
  const int64_t c = terms.target_pixels.size(0);
  CONVOY_CHECK(totals.numel() == 3 * c + 2, "segmentation loss totals: " << totals.numel() << " values for " << c
                                                                         << " classes");
  const auto opts = terms.target_pixels.options();
  const double valid_total = totals[3 * c + 1].item<double>();
  // A zero that still depends on every output, so that backward reaches all
  // parameters when nothing is labelled anywhere.
  torch::Tensor loss = torch::zeros({}, opts);
  if (has_dice(terms.kind)) {
    const auto inter = global_of(terms.intersection, totals.narrow(0, 0, c));
    const auto card = global_of(terms.cardinality, totals.narrow(0, c, c));
    const auto present = totals.narrow(0, 2 * c, c).gt(0).to(opts);
    const auto dice = (2 * inter) / card.clamp_min(kEps);
    loss = loss + ((1 - dice) * present).mean();
  }
  if (terms.xent_sum.defined()) {
    // No pixel labelled on any rank: the mean would be 0/0.
    const auto sum = global_of(terms.xent_sum, totals[3 * c]);
    loss = loss + (valid_total > 0 ? sum / valid_total : sum * 0);
  }
  if (world_size > 1) loss = loss * world_size - loss.detach() * (world_size - 1);
  return loss;
}

torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, LossKind kind,
                                int64_t ignore_index) {
  const auto terms = segmentation_loss_terms(logits, target, kind, ignore_index);
  return segmentation_loss(terms, terms.pack(), 1);
}

torch::Tensor soft_dice_loss(const torch::Tensor& logits, const torch::Tensor& target, int64_t ignore_index) {
  return segmentation_loss(logits, target, LossKind::kDice, ignore_index);
}

}  // namespace convoy
