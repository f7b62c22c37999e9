// Classification metrics: the sums one rank gathers over an evaluation
// (loss, top-1, top-5, confusion matrix), reduced across ranks as one tensor,
// and what users read from them: macro/micro F1 and per-class precision and
// recall, as text, JSON and an SVG heat map.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "common/metrics.h"

namespace convoy {

struct EvalSums {
  explicit EvalSums(int classes = 0)
      : classes(classes), confusion(static_cast<size_t>(classes) * classes, 0),
        soft_dice(static_cast<size_t>(3) * classes, 0.0) {}
  double loss_sum = 0;
  int64_t correct = 0, top5 = 0, count = 0;
  int classes = 0;
  std::vector<int64_t> confusion;  // row: true class, column: predicted (row-major)
  // Segmentation: soft dice's sums over the split, per class (seg_loss.h):
  // intersection, cardinality, target pixels. A one-channel (binary) model
  // fills class 1's only.
  std::vector<double> soft_dice;  // 3 x classes

  // SMP's DiceLoss on the split as one batch: the mean over the model's
  // channels of (1 - dice) for the classes present in the target.
  double dice_loss() const;

  double loss() const { return count ? loss_sum / count : 0; }
  double accuracy() const { return count ? static_cast<double>(correct) / count : 0; }
  double top5_accuracy() const { return count ? static_cast<double>(top5) / count : 0; }
  // Adds a batch: logits (N, classes) float, labels (N) int64 with -1 for
  // padding, per-sample losses (N).
  void add(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& losses);
  // Segmentation: every labelled pixel is a sample. logits (N, C, H, W)
  // (C 1: binary, foreground where the logit > 0, counted as 2 classes),
  // targets (N, H, W) int64; `batch_loss` weighs in by the labelled pixels.
  void add_pixels(const torch::Tensor& logits, const torch::Tensor& targets, int64_t ignore_index,
                  double batch_loss);
  // As one float64 tensor (counts stay exact below 2^53) and back.
  torch::Tensor pack() const;
  static EvalSums unpack(const torch::Tensor& t, int classes);
};

struct ClassMetrics {
  std::string name;
  double precision = 0, recall = 0, f1 = 0;  // f1 is also the dice coefficient
  double iou = 0;                            // Jaccard: tp / (tp + fp + fn)
  int64_t support = 0;  // samples of this class
};

struct ClassificationReport {
  double loss = 0, top1 = 0, top5 = 0, macro_f1 = 0, micro_f1 = 0;
  // Per-pixel (segmentation) reports: top1 is pixel accuracy, macro_f1 the
  // mean dice, mean_iou the mean IoU, each over the classes present in the
  // target or the prediction (a class absent from both is left out).
  bool pixels = false;
  double mean_iou = 0, dice_loss = 0;
  int64_t samples = 0;
  std::vector<ClassMetrics> per_class;
  std::vector<std::vector<int64_t>> confusion;
};

// Macro F1 averages the classes that occur in the split or are predicted
// (scikit-learn's labels=present); a class with no predictions has
// precision 0.
ClassificationReport summarize(const EvalSums& sums, const std::vector<std::string>& class_names);
// Adds loss, accuracy, top5, macro_f1, micro_f1 and samples (and for pixels
// mean_iou and mean_dice); with `details`, per_class and confusion too.
void add_report_json(JsonLine* line, const ClassificationReport& r, bool details = true);
// A table for a terminal: the headline metrics, then one row per class.
std::string report_text(const ClassificationReport& r, const std::string& title);

}  // namespace convoy
