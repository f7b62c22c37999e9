// Best checkpoint and early stopping, on their own.
#include "worker/best_tracker.h"

#include <gtest/gtest.h>

#include "models/checkpoint.h"
#include "worker/eval_metrics.h"

namespace convoy {
namespace {

ClassificationReport report(double top1, double loss, double macro_f1 = 0) {
  ClassificationReport r;
  r.top1 = top1;
  r.loss = loss;
  r.macro_f1 = macro_f1;
  return r;
}

TEST(BestTracker, AccuracyMustBeatTheBestByMoreThanMinDelta) {
  BestTracker t(BestMetric::kAccuracy, 0.01, /*patience=*/2, /*epochs=*/10);
  EXPECT_TRUE(t.observe(report(0.50, 1.0), 0).best);  // the first is always the best
  EXPECT_FALSE(t.observe(report(0.505, 0.9), 1).best);  // within min_delta
  EXPECT_EQ(t.evals_since_best(), 1);
  const auto v = t.observe(report(0.509, 0.8), 2);
  EXPECT_FALSE(v.best);
  EXPECT_TRUE(v.stop);  // two evaluations without improvement
  EXPECT_DOUBLE_EQ(t.best_value(), 0.50);
  EXPECT_DOUBLE_EQ(t.best_accuracy(), 0.509);  // the highest seen, improvement or not
}

TEST(BestTracker, LossIsBetterWhenLower) {
  BestTracker t(BestMetric::kLoss, 0, 0, 5);
  EXPECT_TRUE(t.observe(report(0.1, 2.0), 0).best);
  EXPECT_FALSE(t.observe(report(0.9, 2.5), 1).best);
  EXPECT_TRUE(t.observe(report(0.2, 1.5), 2).best);
  EXPECT_FALSE(t.observe(report(0.2, 9), 3).stop);  // patience 0: never stops
}

TEST(BestTracker, TheLastEpochNeverStopsEarly) {
  BestTracker t(BestMetric::kMacroF1, 0, 1, 3);
  t.observe(report(0, 0, 0.5), 0);
  EXPECT_TRUE(t.observe(report(0, 0, 0.4), 1).stop);
  BestTracker last(BestMetric::kMacroF1, 0, 1, 2);
  last.observe(report(0, 0, 0.5), 0);
  EXPECT_FALSE(last.observe(report(0, 0, 0.4), 1).stop);
}

TEST(BestTracker, CheckpointRoundTripKeepsTheBestOnlyForTheSameMetric) {
  BestTracker t(BestMetric::kLoss, 0, 3, 10);
  t.observe(report(0.7, 1.2), 0);
  t.observe(report(0.8, 1.4), 1);
  CheckpointMeta m;
  t.save_to(&m);
  EXPECT_EQ(m.best_metric, "loss");
  EXPECT_DOUBLE_EQ(m.val_accuracy, 0.8);
  BestTracker same(BestMetric::kLoss, 0, 3, 10);
  same.restore_from(m);
  EXPECT_DOUBLE_EQ(same.best_value(), 1.2);
  EXPECT_EQ(same.evals_since_best(), 1);
  BestTracker other(BestMetric::kAccuracy, 0, 3, 10);
  other.restore_from(m);
  EXPECT_TRUE(std::isnan(other.best_value()));
  EXPECT_EQ(other.evals_since_best(), 0);
  EXPECT_DOUBLE_EQ(other.best_accuracy(), 0.8);
}

}  // namespace
}  // namespace convoy
