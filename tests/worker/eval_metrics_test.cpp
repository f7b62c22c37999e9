// Classification metrics: counts from logits, the float64 round trip used
// for the all-reduce, and F1/precision/recall against a hand-worked case.
#include <gtest/gtest.h>

#include "worker/eval_metrics.h"

namespace convoy {
namespace {

TEST(EvalMetrics, CountsTopKAndConfusionIgnoringPadding) {
  EvalSums s(3);
  // Rows: predicted class 0, 1, 2, 2; the last sample is padding (-1).
  auto logits = torch::tensor({{3.f, 2.f, 1.f}, {0.f, 5.f, 4.f}, {1.f, 2.f, 3.f}, {0.f, 0.f, 9.f}});
  auto labels = torch::tensor({0, 2, 1, -1}, torch::kLong);
  s.add(logits, labels, torch::tensor({0.5f, 1.f, 1.5f, 100.f}));
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.correct, 1);
  EXPECT_EQ(s.top5, 3);  // 3 classes: every label is in the top 3
  EXPECT_DOUBLE_EQ(s.loss(), 1.0);
  EXPECT_EQ(s.confusion, (std::vector<int64_t>{1, 0, 0, 0, 0, 1, 0, 1, 0}));
  EvalSums back = EvalSums::unpack(s.pack(), 3);
  EXPECT_EQ(back.confusion, s.confusion);
  EXPECT_EQ(back.correct, s.correct);
  EXPECT_EQ(back.top5, s.top5);
  EXPECT_DOUBLE_EQ(back.loss_sum, s.loss_sum);
}

TEST(EvalMetrics, F1MatchesAHandWorkedExample) {
  // true\\pred: a: 3 right, 1 as b; b: 2 right, 2 as c; c: 0 right, 1 as a.
  EvalSums s(3);
  s.count = 9;
  s.correct = 5;
  s.confusion = {3, 1, 0, 0, 2, 2, 1, 0, 0};
  auto r = summarize(s, {"a", "b", "c"});
  // a: P 3/4, R 3/4; b: P 2/3, R 1/2; c: P 0 (2 predicted), R 0.
  EXPECT_NEAR(r.per_class[0].precision, 0.75, 1e-12);
  EXPECT_NEAR(r.per_class[0].recall, 0.75, 1e-12);
  EXPECT_NEAR(r.per_class[1].precision, 2.0 / 3, 1e-12);
  EXPECT_NEAR(r.per_class[1].recall, 0.5, 1e-12);
  EXPECT_NEAR(r.per_class[1].f1, 2 * (2.0 / 3) * 0.5 / (2.0 / 3 + 0.5), 1e-12);
  EXPECT_EQ(r.per_class[2].f1, 0);
  EXPECT_EQ(r.per_class[2].support, 1);
  EXPECT_NEAR(r.macro_f1, (0.75 + 4.0 / 7 + 0) / 3, 1e-12);
  EXPECT_NEAR(r.micro_f1, 5.0 / 9, 1e-12);
  EXPECT_NE(report_text(r, "val").find("macro F1 0.4405"), std::string::npos) << report_text(r, "val");
}

TEST(EvalMetrics, AbsentClassesDoNotDiluteMacroF1) {
  EvalSums s(4);
  s.count = 2;
  s.correct = 2;
  s.confusion = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_DOUBLE_EQ(summarize(s, {}).macro_f1, 1.0);  // classes 2 and 3 neither occur nor are predicted
}

}  // namespace
}  // namespace convoy
