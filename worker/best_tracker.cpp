// Best evaluation and early stopping (see best_tracker.h).
#include "worker/best_tracker.h"

#include <algorithm>
#include <cmath>

#include "models/checkpoint.h"
#include "worker/eval_metrics.h"

namespace convoy {

BestTracker::BestTracker(BestMetric metric, double min_delta, int patience, int epochs)
    : metric_(metric), min_delta_(min_delta), patience_(patience), epochs_(epochs) {}

double BestTracker::value_of(const ClassificationReport& r) const {
  switch (metric_) {
    case BestMetric::kLoss: return r.loss;
    case BestMetric::kMacroF1: return r.macro_f1;
    case BestMetric::kIou: return r.mean_iou;
    case BestMetric::kAccuracy: break;
  }
  return r.top1;
}

bool BestTracker::improves(double v) const {
  if (std::isnan(best_value_)) return true;
  return metric_ == BestMetric::kLoss ? v < best_value_ - min_delta_ : v > best_value_ + min_delta_;
}

BestTracker::Verdict BestTracker::observe(const ClassificationReport& selected, int epoch) {
  last_acc_ = selected.top1;
  last_loss_ = selected.loss;
  best_acc_ = std::max(best_acc_, selected.top1);
  Verdict v;
  const double value = value_of(selected);
  v.best = improves(value);
  if (v.best) {
    best_value_ = value;
    evals_since_best_ = 0;
  } else {
    ++evals_since_best_;
  }
  v.stop = patience_ > 0 && evals_since_best_ >= patience_ && epoch + 1 < epochs_;
  return v;
}

void BestTracker::observe_nothing() {
  last_acc_ = -1;
  last_loss_ = 0;
}

void BestTracker::save_to(CheckpointMeta* m) const {
  m->val_accuracy = last_acc_;
  m->val_loss = last_loss_;
  m->best_accuracy = best_acc_;
  m->best_metric = name_of(metric_);
  m->best_value = best_value_;
  m->evals_since_best = evals_since_best_;
}

void BestTracker::restore_from(const CheckpointMeta& m) {
  best_acc_ = m.best_accuracy;
  last_acc_ = m.val_accuracy;
  last_loss_ = m.val_loss;
  if (m.best_metric == name_of(metric_)) {  // else the best so far is unknown
    best_value_ = m.best_value;
    evals_since_best_ = m.evals_since_best;
  }
}

}  // namespace convoy
