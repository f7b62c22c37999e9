// Dynamic loss scaling: growth and back-off, the same skipped steps on every
// rank (real Gloo all-reduce between rank threads), exactness for finite
// gradients, and the scaler's state through a checkpoint.
#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include <cstdlib>
#include <thread>

#include "common/config.h"
#include "common/error.h"
#include "models/checkpoint.h"
#include "tests/tools/temp_dir.h"
#include "worker/dist/device.h"
#include "worker/dist/grad_sync.h"
#include "worker/dist/rendezvous.h"
#include "worker/loss_scaler.h"
#include "worker/trainer.h"

namespace convoy {
namespace {

torch::Tensor param_with_grad(float value) {
  auto p = torch::zeros({4}, torch::requires_grad());
  p.mutable_grad() = torch::full({4}, value);
  return p;
}

TEST(LossScaler, GrowsAfterTheIntervalAndBacksOffOnOverflow) {
  LossScaler s(true, 1024, 2, 0.5, 3);
  auto p = param_with_grad(2048);
  EXPECT_TRUE(s.unscale_and_update({p}));
  EXPECT_FLOAT_EQ(p.grad()[0].item<float>(), 2.0f);  // unscaled
  for (int i = 0; i < 2; ++i) {
    p.mutable_grad().fill_(1.0);
    EXPECT_TRUE(s.unscale_and_update({p}));
  }
  EXPECT_EQ(s.scale(), 2048);  // 3 finite steps in a row
  p.mutable_grad()[1] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(s.unscale_and_update({p}));
  EXPECT_EQ(s.scale(), 1024);
  EXPECT_EQ(s.good_steps(), 0);
  EXPECT_EQ(s.skipped(), 1);
  LossScaler off(false);
  EXPECT_TRUE(off.unscale_and_update({p}));  // off: never skips, never touches the gradients
}

// An inf on one rank only: after averaging, both ranks skip that step and
// only that one, and keep the same scale.
TEST(LossScaler, EveryRankSkipsExactlyTheStepsWithNonFiniteGradients) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::vector<bool>> decisions(2);
  std::vector<std::vector<double>> scales(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.emplace_back([&, r] {
      auto group = make_gloo_group(store, r, 2, std::chrono::seconds(30));
      GradSync sync(group, r, 2, std::chrono::seconds(30));
      LossScaler scaler(true, 65536, 2, 0.5, 2000);
      for (int step = 0; step < 6; ++step) {
        float value = (r == 1 && (step == 2 || step == 4)) ? std::numeric_limits<float>::infinity() : 65536.0f;
        auto p = param_with_grad(value);
        sync.average_gradients({p}, step);
        decisions[r].push_back(scaler.unscale_and_update({p}));
        scales[r].push_back(scaler.scale());
      }
    });
  for (auto& t : ranks) t.join();
  EXPECT_EQ(decisions[0], (std::vector<bool>{true, true, false, true, false, true}));
  EXPECT_EQ(decisions[1], decisions[0]);
  EXPECT_EQ(scales[1], scales[0]);
  EXPECT_EQ(scales[0].back(), 16384);  // halved twice
}

Config scaling_config(const std::string& scaling) {
  return parse_config("data { image_folder { root: \".\" } batch_size: 8 image { height: 12 width: 12 channels: 1 } }"
                      " model { arch: \"cnn\" width: 4 batch_norm: false channels_last: false } optim { lr: 0.05 momentum: 0.9 }"
                      " train { epochs: 1 amp: \"none\" loss_scaling: \"" + scaling + "\" } seed: 5",
                      "scaling.pbtxt");
}

// The scale is a power of two, so finite gradients come back exactly.
TEST(LossScaler, ScaledTrainingEqualsUnscaledTraining) {
  torch::manual_seed(3);
  auto x = torch::randint(0, 256, {8, 1, 12, 12}, torch::kUInt8);
  auto y = torch::randint(0, 10, {8}, torch::kInt64);
  Trainer plain(scaling_config("none"), 10, {}, 0, 1, 4);
  Trainer scaled(scaling_config("dynamic"), 10, {}, 0, 1, 4);
  for (int s = 0; s < 4; ++s) {
    plain.train_step(x, y, s);
    auto r = scaled.train_step(x, y, s);
    EXPECT_EQ(r.loss_scale, 65536);
    EXPECT_FALSE(r.skipped);
  }
  auto a = plain.model()->parameters(), b = scaled.model()->parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

TEST(LossScaler, StateTravelsInCheckpoints) {
  Trainer t(scaling_config("dynamic"), 10, {}, 0, 1, 4);
  t.scaler().restore(4096, 17);
  std::string path = testing::make_temp_dir("convoy-scaler") + "/s.ckpt";
  CheckpointMeta m;
  m.loss_scale = t.scaler().scale();
  m.scaler_good_steps = t.scaler().good_steps();
  save_checkpoint(path, *t.model(), t.optimizer(), m);
  CheckpointMeta back = load_checkpoint(path, *t.model(), nullptr);
  EXPECT_EQ(back.loss_scale, 4096);
  EXPECT_EQ(back.scaler_good_steps, 17);
}

TEST(LossScaler, Fp16NeedsCuda) {
  Config cfg = scaling_config("auto");
  cfg.train.amp = Amp::kFp16;
  cfg.device = DeviceKind::kCpu;
  EXPECT_THROW(Trainer t(cfg, 10, {}, 0, 1, 4), UserError);
}

}  // namespace
}  // namespace convoy
