// Optimizer construction and LR schedule (see optimizer.h).
#include "worker/optimizer.h"

#include <cmath>

#include "common/error.h"

namespace convoy {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimSpec& s,
                                                        const std::vector<torch::Tensor>& params) {
  switch (s.optimizer) {
    case OptimizerKind::kSgd:
      return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(s.lr).momentum(s.momentum).nesterov(s.nesterov).weight_decay(s.weight_decay));
    case OptimizerKind::kAdamW:
      return std::make_unique<torch::optim::AdamW>(
          params,
          torch::optim::AdamWOptions(s.lr).betas({s.beta1, s.beta2}).eps(s.eps).weight_decay(s.weight_decay));
  }
  throw std::logic_error("optim.optimizer out of range");
}

LrSchedule::LrSchedule(const OptimSpec& spec, int64_t steps_per_epoch, int epochs)
    : spec_(spec), steps_per_epoch_(std::max<int64_t>(1, steps_per_epoch)),
      total_steps_(steps_per_epoch_ * epochs),
      warmup_steps_(static_cast<int64_t>(std::llround(spec.warmup_epochs * steps_per_epoch_))) {}

double LrSchedule::at(int64_t step) const {
  const double base = spec_.lr;
  if (step < warmup_steps_) return base * (step + 1) / static_cast<double>(warmup_steps_);
  if (spec_.schedule == ScheduleKind::kConstant) return base;
  if (spec_.schedule == ScheduleKind::kStep) {
    double lr = base;
    double epoch = static_cast<double>(step) / steps_per_epoch_;
    for (int e : spec_.step_epochs)
      if (epoch >= e) lr *= spec_.step_gamma;
    return lr;
  }
  // cosine from the end of warm-up to the last step
  double span = std::max<int64_t>(1, total_steps_ - warmup_steps_);
  double t = std::min(1.0, (step - warmup_steps_) / span);
  return spec_.min_lr + (base - spec_.min_lr) * 0.5 * (1 + std::cos(M_PI * t));
}

void LrSchedule::apply(torch::optim::Optimizer& opt, int64_t step) const {
  double lr = at(step);
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

}  // namespace convoy
