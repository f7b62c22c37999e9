// Segmentation losses against hand computations (SMP's DiceLoss semantics),
// and per-pixel evaluation: confusion, IoU and dice, ignore_index honoured.
#include "worker/seg_loss.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/config.h"
#include "common/error.h"
#include "models/models.h"
#include "models/state_dict.h"
#include "tests/tools/temp_dir.h"
#include "worker/trainer.h"
#include "worker/eval_metrics.h"

namespace convoy {
namespace {

namespace F = torch::nn::functional;

// One image, 3 classes, 2x2 pixels; the target's last pixel unlabelled.
torch::Tensor logits3() {
  return torch::tensor({2.0f, -1.0f, 0.5f, 0.0f,    // class 0 at the 4 pixels
                        0.0f, 3.0f, 0.5f, 1.0f,     // class 1
                        -1.0f, 0.0f, 1.5f, 4.0f})  // class 2
      .view({1, 3, 2, 2});
}
torch::Tensor target3() { return torch::tensor({0, 1, 1, 255}, torch::kLong).view({1, 2, 2}); }

TEST(SegLoss, DiceIsSmpsPerClassMeanWithAbsentClassesZero) {
  const auto logits = logits3(), target = target3();
  // By hand: softmax over the 3 labelled pixels; class 2 is absent from the
  // target, so it counts 0 but still divides (SMP's loss.mean()).
  const auto p = logits.softmax(1).view({3, 4}).slice(1, 0, 3);
  const auto t = torch::tensor({1.0f, 0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 0.0f, 0.0f, 0.0f}).view({3, 3});
  double want = 0;
  for (int c = 0; c < 2; ++c) {
    const double i = (p[c] * t[c]).sum().item<double>(), card = (p[c] + t[c]).sum().item<double>();
    want += 1 - 2 * i / card;
  }
  want /= 3;
  EXPECT_NEAR(soft_dice_loss(logits, target, 255).item<double>(), want, 1e-6);
  // The unlabelled pixel's logits do not matter.
  auto changed = logits.clone();
  changed.index_put_({0, torch::indexing::Slice(), 1, 1}, torch::tensor({9.0f, -9.0f, 0.0f}));
  EXPECT_NEAR(soft_dice_loss(changed, target, 255).item<double>(), want, 1e-6);
  // A near-perfect prediction has a dice loss near 0.
  auto perfect = F::one_hot(torch::tensor({0, 1, 1, 2}, torch::kLong), 3).to(torch::kFloat).t().reshape({1, 3, 2, 2}) * 40;
  EXPECT_LT(soft_dice_loss(perfect, target, 255).item<double>(), 1e-6);
}

TEST(SegLoss, CombinationsAddTheirParts) {
  const auto logits = logits3(), target = target3();
  const double dice = soft_dice_loss(logits, target, 255).item<double>();
  const double ce = F::cross_entropy(logits, target, F::CrossEntropyFuncOptions().ignore_index(255)).item<double>();
  EXPECT_NEAR(segmentation_loss(logits, target, LossKind::kDiceCe, 255).item<double>(), dice + ce, 1e-6);
  EXPECT_NEAR(segmentation_loss(logits, target, LossKind::kCe, 255).item<double>(), ce, 1e-6);
  EXPECT_THROW(segmentation_loss(logits, target, LossKind::kBce, 255), UserError);
  EXPECT_EQ(resolve_segmentation_loss(LossKind::kAuto, 3), LossKind::kDiceCe);
  EXPECT_EQ(resolve_segmentation_loss(LossKind::kAuto, 1), LossKind::kDiceBce);
}

TEST(SegLoss, BinaryModeUsesASigmoidAndSkipsUnlabelledPixels) {
  const auto logits = torch::tensor({1.0f, -2.0f, 0.5f, 3.0f}).view({1, 1, 2, 2});
  const auto target = torch::tensor({1, 0, 1, 255}, torch::kLong).view({1, 2, 2});
  const auto x = torch::tensor({1.0f, -2.0f, 0.5f}), y = torch::tensor({1.0f, 0.0f, 1.0f});
  const double bce = F::binary_cross_entropy_with_logits(x, y).item<double>();
  const auto p = x.sigmoid();
  const double dice = 1 - 2 * (p * y).sum().item<double>() / (p + y).sum().item<double>();
  EXPECT_NEAR(segmentation_loss(logits, target, LossKind::kBce, 255).item<double>(), bce, 1e-6);
  EXPECT_NEAR(segmentation_loss(logits, target, LossKind::kDiceBce, 255).item<double>(), bce + dice, 1e-6);
  EXPECT_THROW(segmentation_loss(logits, target, LossKind::kCe, 255), UserError);
}

// Two ranks, each with half the batch: all-reducing the terms gives each the
// whole batch's loss, and the mean of their gradients (what DDP applies) is
// the whole batch's gradient; each rank's own dice would not be.
TEST(SegLoss, ReducedTermsGiveTheGlobalBatchsLossAndGradient) {
  torch::manual_seed(3);
  auto target = torch::randint(0, 3, {2, 4, 4}, torch::kLong);
  target.index_put_({0, 0}, 255);
  target.index_put_({1}, target[1].clamp_max(1));  // class 2 only in the first image
  for (LossKind kind : {LossKind::kDice, LossKind::kDiceCe, LossKind::kCe}) {
    const auto base = torch::randn({2, 3, 4, 4});
    auto whole = base.clone().requires_grad_(true);
    const auto full = segmentation_loss(whole, target, kind, 255);
    full.backward();
    std::vector<torch::Tensor> halves, terms_grad;
    std::vector<SegLossTerms> terms;
    for (int r = 0; r < 2; ++r) {
      halves.push_back(base.narrow(0, r, 1).clone().requires_grad_(true));
      terms.push_back(segmentation_loss_terms(halves[r], target.narrow(0, r, 1), kind, 255));
    }
    const auto totals = terms[0].pack() + terms[1].pack();
    for (int r = 0; r < 2; ++r) {
      const auto loss = segmentation_loss(terms[r], totals, 2);
      EXPECT_NEAR(loss.item<double>(), full.item<double>(), 1e-6) << name_of(kind);
      loss.backward();
      // DDP divides the summed gradients by the world size.
      EXPECT_TRUE(torch::allclose(halves[r].grad() / 2, whole.grad().narrow(0, r, 1), 1e-5, 1e-7))
          << name_of(kind) << " rank " << r;
    }
    // Each rank's own batch alone is another loss (dice is no per-sample mean).
    if (kind != LossKind::kCe)
      EXPECT_GT(std::abs(segmentation_loss(base.narrow(0, 1, 1), target.narrow(0, 1, 1), kind, 255).item<double>() -
                         full.item<double>()),
                1e-3);
  }
}

// IoU and dice from the pixel confusion matrix, unlabelled pixels left out,
// a class absent from target and prediction left out of the means.
TEST(SegMetrics, IouAndDiceFromPixelCounts) {
  EvalSums sums(4);
  // Predictions (argmax): 0, 1, 2, 2 ; targets 0, 1, 1, ignore. Class 3 appears nowhere.
  const auto logits = torch::cat({logits3(), torch::full({1, 1, 2, 2}, -50.0f)}, 1);
  sums.add_pixels(logits, target3(), 255, 0.5);
  EXPECT_EQ(sums.count, 3);
  EXPECT_EQ(sums.correct, 2);
  ClassificationReport r = summarize(sums, {"a", "b", "c", "d"});
  r.pixels = true;
  // class 0: tp 1, fp 0, fn 0 -> IoU 1, dice 1. class 1: tp 1, fn 1 -> IoU 1/2, dice 2/3.
  // class 2: tp 0, fp 1 -> 0, 0. class 3: absent everywhere -> left out.
  EXPECT_DOUBLE_EQ(r.per_class[0].iou, 1.0);
  EXPECT_DOUBLE_EQ(r.per_class[1].iou, 0.5);
  EXPECT_NEAR(r.per_class[1].f1, 2.0 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(r.per_class[2].iou, 0.0);
  EXPECT_NEAR(r.mean_iou, (1 + 0.5 + 0) / 3, 1e-12);
  EXPECT_NEAR(r.macro_f1, (1 + 2.0 / 3 + 0) / 3, 1e-12);
  EXPECT_NEAR(r.top1, 2.0 / 3, 1e-12);  // pixel accuracy
  EXPECT_DOUBLE_EQ(r.loss, 0.5);
  JsonLine line;
  add_report_json(&line, r);
  EXPECT_NE(line.str().find("\"mean_iou\":0.5"), std::string::npos) << line.str();
  const std::string text = report_text(r, "val");
  EXPECT_NE(text.find("val: 3 labelled pixels"), std::string::npos) << text;
  EXPECT_NE(text.find("mean IoU 0.5000"), std::string::npos) << text;
  EXPECT_NE(text.find("  b       0.5000   0.6667"), std::string::npos) << text;  // class b: IoU, dice
  // Summed across "ranks" (two halves of the batch) the counts are the same.
  EvalSums a(4), b(4);
  a.add_pixels(logits.slice(3, 0, 1), target3().slice(2, 0, 1), 255, 0.5);
  b.add_pixels(logits.slice(3, 1, 2), target3().slice(2, 1, 2), 255, 0.5);
  const EvalSums both = EvalSums::unpack(a.pack() + b.pack(), 4);
  EXPECT_EQ(both.confusion, sums.confusion);
  // dice_loss: SMP's soft dice on the whole split, also from the halves' sums.
  const double dice = soft_dice_loss(logits, target3(), 255).item<double>();
  EXPECT_NEAR(r.dice_loss, dice, 1e-6);
  EXPECT_NEAR(both.dice_loss(), dice, 1e-6);
  EXPECT_NE(text.find(fmt::format("dice_loss {:.4f}  iou_score 0.5000", dice)), std::string::npos) << text;
}

TEST(SegMetrics, BinaryLogitsCountAsTwoClasses) {
  EvalSums sums(2);
  const auto logits = torch::tensor({1.0f, -2.0f, 0.5f, 3.0f}).view({1, 1, 2, 2});
  sums.add_pixels(logits, torch::tensor({1, 1, 0, 255}, torch::kLong).view({1, 2, 2}), 255, 0.1);
  // pred 1, 0, 1 ; target 1, 1, 0.
  EXPECT_EQ(sums.confusion, (std::vector<int64_t>{0, 1, 1, 1}));
  // Binary soft dice: the one channel's (not a mean with an empty class 0).
  EXPECT_NEAR(sums.dice_loss(),
              soft_dice_loss(logits, torch::tensor({1, 1, 0, 255}, torch::kLong).view({1, 2, 2}), 255).item<double>(),
              1e-6);
}

// --init-from with torchvision ResNet weights fills a U-Net's encoder.
// A U-Net (ResNet-18 encoder) on the CPU in float32, inputs in [-1, 1].
Config unet_on_cpu(int size) {
  Config cfg;
  cfg.device = DeviceKind::kCpu;
  cfg.data.image = {size, size, 3};
  cfg.data.mean = {0.5f, 0.5f, 0.5f};
  cfg.data.std = {0.5f, 0.5f, 0.5f};
  cfg.model.arch = "unet";
  cfg.model.encoder = "resnet18";
  cfg.train.amp = Amp::kNone;
  return cfg;
}

TEST(SegTraining, InitFromAResNetFillsTheEncoder) {
  ModelSpec resnet;
  resnet.arch = "resnet18";
  torch::manual_seed(7);
  auto donor = make_model(resnet, {64, 64, 3}, 10);
  const std::string path = testing::make_temp_dir("convoy-unet-init") + "/resnet18.pt";
  save_state_dict(path, state_dict(*donor));
  Config cfg = unet_on_cpu(64);
  cfg.model.init_from = path;
  Trainer t(cfg, 3, {}, 0, 1, 4);
  auto ours = t.model()->named_parameters();
  auto theirs = donor->named_parameters();
  EXPECT_TRUE(torch::equal(ours["encoder.layer3.1.conv2.weight"], theirs["layer3.1.conv2.weight"]));
  EXPECT_TRUE(torch::equal(ours["encoder.conv1.weight"], theirs["conv1.weight"]));
  EXPECT_EQ(ours["segmentation_head.0.weight"].size(0), 3);
}

// Evaluation scores each sample at its mask's (original) size: the model's
// logits for the picture (the padded image's top-left content) resized to the
// mask, every labelled pixel counted once; and a sample's score does not
// depend on which samples share its batch.
TEST(SegEvaluation, EachSampleIsScoredAtItsMasksSizeWhateverItsBatch) {
  Config cfg = unet_on_cpu(32);
  cfg.model.channels_last = false;
  cfg.seed = 3;
  Trainer t(cfg, 3, {}, 0, 1, 4);
  torch::manual_seed(12);
  // (padded h, w, content h, w, mask h, w): two of one padded size, one other.
  const std::vector<std::array<int64_t, 6>> shapes = {
      {32, 64, 32, 48, 64, 96}, {64, 32, 40, 32, 50, 40}, {32, 64, 32, 60, 32, 60}};
  std::vector<ScoredSample> samples;
  int64_t labelled = 0;
  for (const auto& z : shapes) {
    ScoredSample s;
    s.image = torch::randint(0, 256, {3, z[0], z[1]}, torch::kUInt8);
    s.content_h = z[2];
    s.content_w = z[3];
    s.mask = torch::randint(0, 3, {z[4], z[5]}, torch::kUInt8);
    s.mask.narrow(0, 0, 3).fill_(255);  // unlabelled rows
    labelled += s.mask.ne(255).sum().item<int64_t>();
    samples.push_back(s);
  }
  EvalSums together(3), alone(3);
  std::vector<MaskSample> grid;
  t.eval_segmentation(samples, &together, &grid, 2);
  for (const auto& s : samples) t.eval_segmentation({s}, &alone);
  EXPECT_EQ(together.count, labelled);
  EXPECT_EQ(together.confusion, alone.confusion);
  EXPECT_EQ(together.correct, alone.correct);

  // By hand: each sample through the model alone, its content resized.
  EvalSums expected(3);
  t.model()->eval();
  torch::NoGradGuard no_grad;
  for (const auto& s : samples) {
    auto x = (s.image.unsqueeze(0).to(torch::kFloat) / 255.0 - 0.5) / 0.5;
    auto logits = t.model()->forward(x).narrow(2, 0, s.content_h).narrow(3, 0, s.content_w);
    logits = F::interpolate(logits, F::InterpolateFuncOptions()
                                        .size(std::vector<int64_t>{s.mask.size(0), s.mask.size(1)})
                                        .mode(torch::kBilinear)
                                        .align_corners(false));
    expected.add_pixels(logits, s.mask.to(torch::kLong).unsqueeze(0), 255, 0.0);
  }
  ASSERT_EQ(expected.count, labelled);
  int64_t differ = 0;
  for (size_t i = 0; i < expected.confusion.size(); ++i) differ += std::abs(expected.confusion[i] - together.confusion[i]);
  EXPECT_LE(differ, labelled / 1000) << "normalisation's rounding may flip a tie, no more";

  // The grid: the first two samples, at the size the model saw them.
  ASSERT_EQ(grid.size(), 2u);
  EXPECT_EQ(grid[0].pixels.sizes(), (std::vector<int64_t>{3, 32, 48}));
  EXPECT_EQ(grid[0].truth.sizes(), (std::vector<int64_t>{32, 48}));
  EXPECT_EQ(grid[1].predicted.sizes(), (std::vector<int64_t>{40, 32}));
  EXPECT_TRUE(torch::equal(grid[1].pixels, samples[1].image.narrow(1, 0, 40)));
}

}  // namespace
}  // namespace convoy
