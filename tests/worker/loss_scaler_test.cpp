// Dynamic loss scaling: growth and back-off, the same skipped steps on every
// rank (real Gloo all-reduce between rank threads), exactness for finite
// gradients, and the scaler's state through a checkpoint.
#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <thread>

#include "common/config.h"
#include "common/error.h"
#include "models/checkpoint.h"
#include "tests/tools/temp_dir.h"
#include "worker/dist/device.h"
#include "worker/dist/grad_sync.h"
#include "worker/dist/rendezvous.h"
#include "worker/dist/shm_allreduce.h"
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

// Every parameter and every momentum buffer, copied.
std::vector<torch::Tensor> weights_and_momenta(Trainer& t) {
  std::vector<torch::Tensor> out;
  for (const auto& p : t.model()->parameters()) out.push_back(p.detach().clone());
  for (const auto& p : t.model()->parameters()) {
    auto it = t.optimizer().state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
    if (it != t.optimizer().state().end())
      out.push_back(static_cast<torch::optim::SGDParamState&>(*it->second).momentum_buffer().clone());
  }
  return out;
}

// As training runs it: the gradients averaged by the Reducer's hook during
// backward, through the shared-memory transport. An inf in one rank's
// gradient (put there by a hook on rank 1's last layer at step 2) skips
// that step on both ranks, leaves the weights and the optimizer's momenta as
// they were, bit for bit, and halves the scale on both; the other steps
// update as usual.
TEST(LossScaler, AnInfOnOneRankSkipsTheStepOnEveryRankThroughTheTrainer) {
  Config cfg = scaling_config("dynamic");
  cfg.distributed.overlap_grad_sync = true;
  constexpr int kSteps = 4, kPoisoned = 2;
  torch::manual_seed(8);
  std::vector<std::vector<std::pair<torch::Tensor, torch::Tensor>>> data(2);
  for (int r = 0; r < 2; ++r)
    for (int s = 0; s < kSteps; ++s)
      data[r].push_back({torch::randint(0, 256, {8, 1, 12, 12}, torch::kUInt8), torch::randint(0, 10, {8}, torch::kInt64)});
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::vector<bool>> skipped(2);
  std::vector<std::vector<double>> scales(2);
  std::vector<std::vector<bool>> unchanged(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.emplace_back([&, r] {
      try {
        auto group = make_gloo_group(store, r, 2, std::chrono::seconds(30));
        auto local = ShmAllreduce::connect(*store, "/convoy-test-scaler-" + std::to_string(::getpid()), r, 2, true,
                                           std::chrono::seconds(30));
        if (!local) throw Error("no shared-memory all-reduce");
        Trainer t(cfg, 10, group, r, 2, kSteps, nullptr, local);
        std::atomic<int> step{0};
        if (r == 1)
          t.model()->parameters().back().register_hook([&](const torch::Tensor& g) {
            if (step.load() != kPoisoned) return g;
            auto poisoned = g.clone();
            poisoned.view(-1)[0] = std::numeric_limits<float>::infinity();
            return poisoned;
          });
        for (int s = 0; s < kSteps; ++s) {
          step = s;
          const auto before = weights_and_momenta(t);
          auto res = t.train_step(data[r][s].first, data[r][s].second, s);
          const auto after = weights_and_momenta(t);
          bool same = before.size() == after.size();
          for (size_t i = 0; same && i < before.size(); ++i) same = torch::equal(before[i], after[i]);
          skipped[r].push_back(res.skipped);
          scales[r].push_back(t.scaler().scale());
          unchanged[r].push_back(same);
        }
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(skipped[r], (std::vector<bool>{false, false, true, false})) << "rank " << r;
    EXPECT_EQ(unchanged[r], (std::vector<bool>{false, false, true, false})) << "rank " << r;
    EXPECT_EQ(scales[r], (std::vector<double>{65536, 65536, 32768, 32768})) << "rank " << r;
  }
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
