// Dynamic loss scaling (see loss_scaler.h).
#include "worker/loss_scaler.h"

namespace convoy {

LossScaler::LossScaler(bool enabled, double initial, double growth, double backoff, int64_t growth_interval)
    : enabled_(enabled), scale_(initial), growth_(growth), backoff_(backoff), interval_(growth_interval) {}

bool LossScaler::unscale_and_update(const std::vector<torch::Tensor>& params) {
  if (!enabled_) return true;
  torch::NoGradGuard no_grad;
  bool finite = true;
  for (const auto& p : params) {
    const auto& g = p.grad();
    if (!g.defined()) continue;
    if (!torch::isfinite(g).all().item<bool>()) {
      finite = false;
      break;
    }
  }
  if (!finite) {
    scale_ *= backoff_;
    good_steps_ = 0;
    ++skipped_;
    return false;
  }
  const double inverse = 1.0 / scale_;
  for (const auto& p : params)
    if (p.grad().defined()) const_cast<torch::Tensor&>(p).mutable_grad().mul_(inverse);
  if (++good_steps_ >= interval_) {
    scale_ *= growth_;
    good_steps_ = 0;
  }
  return true;
}

}  // namespace convoy
