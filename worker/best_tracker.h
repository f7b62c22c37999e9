// Which evaluation is the best so far, and when to stop early: the state
// behind best.ckpt and train.early_stopping_*, kept apart from the loop so
// that it can be read (and tested) on its own. Pure: no I/O, no collectives;
// every rank feeds it the same reduced reports and so decides alike.
#pragma once

#include <cstdint>
#include <limits>

#include "common/choices.h"

namespace convoy {

struct CheckpointMeta;
struct ClassificationReport;

class BestTracker {
 public:
  // `metric`: train.best_metric; an improvement must beat the best by more
  // than `min_delta`; `patience` evaluations without one stop the run (0:
  // never); `epochs`: the run's length (the last epoch never "stops early").
  BestTracker(BestMetric metric, double min_delta, int patience, int epochs);

  struct Verdict {
    bool best = false;  // a new best: save best.ckpt
    bool stop = false;  // early stopping ends the run after this epoch
  };
  // The selection split's report at the end of 0-based `epoch`.
  Verdict observe(const ClassificationReport& selected, int epoch);
  // An epoch with no evaluation: nothing improves, nothing is known.
  void observe_nothing();

  // Checkpoints carry the state; a checkpoint written under another
  // best_metric restores the accuracy history but not the best value.
  void save_to(CheckpointMeta* meta) const;
  void restore_from(const CheckpointMeta& meta);

  BestMetric metric() const { return metric_; }
  double best_value() const { return best_value_; }     // NaN: nothing evaluated yet
  double best_accuracy() const { return best_acc_; }    // -1: nothing evaluated yet
  int64_t evals_since_best() const { return evals_since_best_; }
  int patience() const { return patience_; }

 private:
  double value_of(const ClassificationReport& r) const;
  bool improves(double v) const;

  BestMetric metric_;
  double min_delta_;
  int patience_, epochs_;
  double best_value_ = std::numeric_limits<double>::quiet_NaN();
  double best_acc_ = -1, last_acc_ = -1, last_loss_ = 0;
  int64_t evals_since_best_ = 0;
};

}  // namespace convoy
