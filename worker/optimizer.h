// Optimizers (SGD with momentum/Nesterov/weight decay, AdamW) and the
// learning-rate schedule: linear warm-up, then cosine, step or constant.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "common/config.h"

namespace convoy {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimSpec& spec,
                                                        const std::vector<torch::Tensor>& params);

class LrSchedule {
 public:
  LrSchedule(const OptimSpec& spec, int64_t steps_per_epoch, int epochs);
  // The learning rate for 0-based global step `step`.
  double at(int64_t step) const;
  void apply(torch::optim::Optimizer& opt, int64_t step) const;

 private:
  OptimSpec spec_;
  int64_t steps_per_epoch_, total_steps_, warmup_steps_;
};

}  // namespace convoy
