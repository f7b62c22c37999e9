// Dynamic loss scaling for mixed precision (PyTorch's GradScaler, in C++):
// the loss is multiplied by the scale before backward; after the gradients
// are averaged across ranks they are divided back, and a step whose
// gradients hold an inf or NaN is skipped and halves the scale; 2000 finite
// steps in a row double it. It starts at 2^16.
// Invariant: the decision is taken on the averaged gradients, which are the
// same on every rank (an inf on one rank is an inf in the sum), so every rank
// skips exactly the same steps.
// fp16 needs it; bf16 has fp32's range and does not. train.loss_scaling
// turns it on for any precision (it is exact for finite gradients: the scale
// is a power of two).
#pragma once

#include <torch/torch.h>

#include <vector>

namespace convoy {

class LossScaler {
 public:
  LossScaler(bool enabled, double initial = 65536.0, double growth = 2.0, double backoff = 0.5,
             int64_t growth_interval = 2000);

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  int64_t good_steps() const { return good_steps_; }
  int64_t skipped() const { return skipped_; }
  torch::Tensor scale_loss(const torch::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }
  // Unscales the gradients in place and updates the scale. Returns false
  // when the step must be skipped (some gradient is not finite).
  bool unscale_and_update(const std::vector<torch::Tensor>& params);
  // For checkpoints.
  void restore(double scale, int64_t good_steps) {
    scale_ = scale;
    good_steps_ = good_steps;
  }

 private:
  bool enabled_;
  double scale_, growth_, backoff_;
  int64_t interval_, good_steps_ = 0, skipped_ = 0;
};

}  // namespace convoy
