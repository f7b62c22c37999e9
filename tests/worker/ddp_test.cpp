// DDP is right: 2 ranks (threads over a HashStore + Gloo on loopback) with
// batch B end with the same parameters as 1 rank with batch 2B, from the
// same initial weights and the same global sample order (the real sampler).
#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include <atomic>
#include <mutex>
#include <thread>

#include "common/config.h"
#include "common/error.h"
#include "data_service/sampler.h"
#include "worker/dist/device.h"
#include "worker/dist/rendezvous.h"
#include "worker/dist/shm_allreduce.h"
#include "worker/dist/timeline.h"
#include "worker/trainer.h"

namespace convoy {
namespace {

constexpr int kB = 8, kSteps = 5, kN = 80;

Config ddp_config(const std::string& arch, const std::string& optimizer) {
  return parse_config("data { image_folder { root: \".\" } batch_size: " + std::to_string(kB) +
                          " image { height: 12 width: 12 channels: 1 } }"
                          " model { arch: \"" + arch + "\" width: 4 batch_norm: false dropout: 0 channels_last: false }"
                          " optim { optimizer: \"" + optimizer + "\" lr: 0.05 momentum: 0.9 nesterov: true"
                          " weight_decay: 0.01 schedule: \"cosine\" warmup_epochs: 0.5 label_smoothing: 0.1 }"
                          " train { epochs: 1 amp: \"none\" } seed: 3",
                      "ddp.pbtxt");
}

struct Data {
  torch::Tensor pixels, labels;
};

Data make_data() {
  torch::manual_seed(99);
  return {torch::randint(0, 256, {kN, 1, 12, 12}, torch::kUInt8), torch::randint(0, 10, {kN}, torch::kInt64)};
}

// The batch of `rank` at `step`, chosen by the production sampler.
std::pair<torch::Tensor, torch::Tensor> batch(const Data& d, const EpochOrder& order, uint64_t step, int rank,
                                              int size) {
  std::vector<int64_t> idx;
  for (int j = 0; j < size; ++j) idx.push_back(order.sample(step, rank, j));
  auto index = torch::tensor(idx, torch::kInt64);
  return {d.pixels.index_select(0, index), d.labels.index_select(0, index)};
}

void clone_into(const std::vector<torch::Tensor>& from, const std::vector<torch::Tensor>& to) {
  torch::NoGradGuard g;
  for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
}

// A U-Net (ResNet-18 encoder, BatchNorm frozen: training-mode BatchNorm
// normalises each rank's own batch) on 32x32 images with 3-class masks, some
// pixels unlabelled (255), some samples without a labelled pixel at all.
Config unet_config(const std::string& loss) {
  return parse_config("data { segmentation_folder { images: \".\" masks: \".\" class_names: [\"a\", \"b\", \"c\"] }"
                      " batch_size: " + std::to_string(kB) + " image { height: 32 width: 32 channels: 3 } }"
                      " model { arch: \"unet\" encoder: \"resnet18\" freeze_batch_norm: true"
                      " channels_last: false }"
                      " optim { optimizer: \"sgd\" lr: 0.05 momentum: 0.9 weight_decay: 0.01 schedule: \"cosine\" }"
                      " train { epochs: 1 amp: \"none\" loss: \"" + loss + "\" } seed: 5",
                      "ddp-unet.pbtxt");
}

Data make_masks() {
  torch::manual_seed(98);
  auto pixels = torch::randint(0, 256, {kN, 3, 32, 32}, torch::kUInt8);
  // The class is a function of the pixel (red channel), four rows unlabelled.
  auto masks = (pixels.select(1, 0).to(torch::kInt64) * 3 / 256).to(torch::kUInt8);
  masks.narrow(1, 0, 4).fill_(255);
  masks.narrow(0, 0, 3).fill_(255);  // three samples with nothing labelled
  // Class 2 only in the second half: some global batches lack it on a rank.
  masks.narrow(0, 0, kN / 2).masked_fill_(masks.narrow(0, 0, kN / 2).eq(2), 1);
  return {pixels, masks};
}

void expect_ddp_matches_single(Config cfg, const Data& data, int classes, const std::string& what,
                               double rtol = 1e-4, double atol = 1e-5) {

  // One rank, batch 2B.
  cfg.data.batch_size = 2 * kB;
  EpochOrder order1({kN, 1, 2 * kB, true, false}, cfg.seed, 0);
  Trainer single(cfg, classes, {}, 0, 1, kSteps);
  std::vector<torch::Tensor> initial;
  for (auto& p : single.model()->parameters()) initial.push_back(p.detach().clone());
  for (int s = 0; s < kSteps; ++s) {
    auto [x, y] = batch(data, order1, s, 0, 2 * kB);
    single.train_step(x, y, s);
  }

  // Two ranks, batch B, as threads in this process.
  cfg.data.batch_size = kB;
  EpochOrder order2({kN, 2, kB, true, false}, cfg.seed, 0);
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::vector<torch::Tensor>> finals(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      try {
        auto group = make_gloo_group(store, r, 2, std::chrono::seconds(30));
        Trainer t(cfg, classes, group, r, 2, kSteps);
        clone_into(initial, t.model()->parameters());
        for (int s = 0; s < kSteps; ++s) {
          auto [x, y] = batch(data, order2, s, r, kB);
          t.train_step(x, y, s);
        }
        for (auto& p : t.model()->parameters()) finals[r].push_back(p.detach().clone());
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : ranks) t.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  auto expected = single.model()->parameters();
  ASSERT_EQ(finals[0].size(), expected.size());
  double max_moved = 0, max_diff = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(torch::equal(finals[0][i], finals[1][i])) << "ranks diverged at parameter " << i;
    // Float tolerance: the two runs sum the same gradients in a different
    // order; AdamW's division by sqrt(v) magnifies that rounding to ~2e-6
    // on weights that move by ~0.25, hence the default atol 1e-5, rtol 1e-4.
    EXPECT_TRUE(torch::allclose(finals[0][i], expected[i], rtol, atol))
        << what << " parameter " << i << " max diff " << (finals[0][i] - expected[i]).abs().max().item<double>();
    max_moved = std::max(max_moved, (expected[i] - initial[i]).abs().max().item<double>());
    max_diff = std::max(max_diff, (finals[0][i] - expected[i]).abs().max().item<double>());
  }
  std::printf("%s: weights moved up to %.3g; 2 ranks vs 1 rank differ by up to %.3g\n", what.c_str(), max_moved,
              max_diff);
  EXPECT_GT(max_moved, 1e-3) << "training must have changed the weights";
}

TEST(Ddp, TwoRanksMatchOneRankWithDoubleBatchSgd) {
  expect_ddp_matches_single(ddp_config("cnn", "sgd"), make_data(), 10, "cnn");
}
TEST(Ddp, TwoRanksMatchOneRankWithDoubleBatchAdamW) {
  expect_ddp_matches_single(ddp_config("mlp", "adamw"), make_data(), 10, "mlp");
}
// Dice is not a mean over samples (nor is cross-entropy over labelled pixels
// when ranks hold different numbers): the loss's sums are all-reduced, so
// the global batch's loss is what both ranks differentiate. Measured: 2 ranks
// end within 7e-7 of 1 rank with the sums all-reduced, 6e-5 apart when each
// rank takes its own batch's dice (SGD, 5 steps), hence atol 2e-6.
TEST(Ddp, TwoRanksMatchOneRankWithDoubleBatchUnetDiceCe) {
  expect_ddp_matches_single(unet_config("dice+ce"), make_masks(), 3, "unet dice+ce", 1e-5, 2e-6);
}
TEST(Ddp, TwoRanksMatchOneRankWithDoubleBatchUnetDice) {
  expect_ddp_matches_single(unet_config("dice"), make_masks(), 3, "unet dice", 1e-5, 2e-6);
}

TEST(Ddp, InitialWeightsAreBroadcastFromRankZero) {
  Config cfg = ddp_config("cnn", "sgd");
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::vector<torch::Tensor>> params(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.emplace_back([&, r] {
      auto group = make_gloo_group(store, r, 2, std::chrono::seconds(30));
      Config mine = cfg;
      mine.seed = cfg.seed + r;  // different local init on each rank
      Trainer t(mine, 10, group, r, 2, 1);
      for (auto& p : t.model()->parameters()) params[r].push_back(p.detach().clone());
    });
  for (auto& t : ranks) t.join();
  for (size_t i = 0; i < params[0].size(); ++i) EXPECT_TRUE(torch::equal(params[0][i], params[1][i]));
}

}  // namespace
}  // namespace convoy

namespace convoy {
namespace {

// Runs `steps` steps of 2 ranks (threads) and returns rank 0's parameters and
// each step's StepTimes; with `shm` the gradients go through shared memory.
struct TwoRankRun {
  std::vector<torch::Tensor> params;
  std::vector<StepTimes> times;
  // Rank 0, each step: its buckets as the trainer timed them, and when the
  // autograd engine computed the first gradient of backward (the last
  // parameter's) and the last one (the first parameter's, ResNet's conv1),
  // by hooks on those tensors: clocks the trainer does not keep.
  std::vector<std::vector<Trainer::BucketSpan>> buckets;
  std::vector<int64_t> first_grad_us, last_grad_us;
  std::vector<std::vector<int64_t>> grad_us;  // every gradient's, in the order computed
};

TwoRankRun run_two_ranks(Config cfg, int steps, int image, bool shm = false) {
  // Batches made up front: torch's default generator is shared by the threads.
  torch::manual_seed(500);
  std::vector<std::vector<std::pair<torch::Tensor, torch::Tensor>>> data(2);
  for (int r = 0; r < 2; ++r)
    for (int s = 0; s < steps; ++s)
      data[r].push_back({torch::randint(0, 256, {cfg.data.batch_size, 3, image, image}, torch::kUInt8),
                         torch::randint(0, 10, {cfg.data.batch_size}, torch::kInt64)});
  // So are the initial weights (made concurrently they would differ per run).
  std::vector<torch::Tensor> initial;
  {
    Trainer reference(cfg, 10, {}, 0, 1, steps);
    for (auto& p : reference.model()->parameters()) initial.push_back(p.detach().clone());
    for (auto& b : reference.model()->buffers()) initial.push_back(b.detach().clone());
  }
  auto store = c10::make_intrusive<c10d::HashStore>();
  TwoRankRun out;
  std::vector<std::string> errors(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.emplace_back([&, r] {
      try {
        auto group = make_gloo_group(store, r, 2, std::chrono::seconds(60));
        std::shared_ptr<ShmAllreduce> local;
        if (shm) {
          local = ShmAllreduce::connect(*store, "/convoy-test-ddp-" + std::to_string(::getpid()), r, 2, true,
                                        std::chrono::seconds(60));
          if (!local) throw Error("no shared-memory all-reduce");
        }
        Trainer t(cfg, 10, group, r, 2, steps, nullptr, local);
        auto state = t.model()->parameters();
        for (auto& b : t.model()->buffers()) state.push_back(b);
        clone_into(initial, state);
        std::atomic<int64_t> first_grad{0}, last_grad{0};
        std::mutex grads_mu;
        std::vector<int64_t> grads;
        if (r == 0) {
          auto params = t.model()->parameters();
          for (auto& p : params)
            p.register_hook([&](const torch::Tensor&) {
              std::lock_guard<std::mutex> lock(grads_mu);
              grads.push_back(Timeline::now_us());
            });
          params.back().register_hook([&](const torch::Tensor&) { first_grad = Timeline::now_us(); });
          params.front().register_hook([&](const torch::Tensor&) { last_grad = Timeline::now_us(); });
        }
        for (int s = 0; s < steps; ++s) {
          {
            std::lock_guard<std::mutex> lock(grads_mu);
            grads.clear();
          }
          auto res = t.train_step(data[r][s].first, data[r][s].second, s);
          if (r == 0) {
            std::lock_guard<std::mutex> lock(grads_mu);
            out.grad_us.push_back(grads);
            out.times.push_back(res.times);
            out.buckets.push_back(t.bucket_spans());
            out.first_grad_us.push_back(first_grad.load());
            out.last_grad_us.push_back(last_grad.load());
          }
        }
        if (r == 0)
          for (auto& p : t.model()->parameters()) out.params.push_back(p.detach().clone());
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
  return out;
}

Config resnet_config(bool overlap) {
  Config cfg = parse_config("data { image_folder { root: \".\" } batch_size: 4 image { height: 32 width: 32 } }"
                            " model { arch: \"resnet18\" channels_last: false } optim { lr: 0.05 momentum: 0.9 }"
                            " train { epochs: 1 amp: \"none\" } seed: 4",
                            "overlap.pbtxt");
  cfg.distributed.overlap_grad_sync = overlap;
  return cfg;
}

// Overlapped, bucketed all-reduce through c10d's Reducer (ResNet-18: 45 MB of
// gradients in 3 buckets of 1, 25 and 19 MB) gives the same parameters as one
// plain all-reduce after backward: with 2 ranks every element is the same sum.
TEST(Overlap, SameParametersAsAllReduceAfterBackward) {
  auto overlapped = run_two_ranks(resnet_config(true), 3, 32);
  auto plain = run_two_ranks(resnet_config(false), 3, 32);
  ASSERT_EQ(overlapped.params.size(), plain.params.size());
  for (size_t i = 0; i < plain.params.size(); ++i)
    EXPECT_TRUE(torch::equal(overlapped.params[i], plain.params[i])) << "parameter " << i;
}

// The shared-memory all-reduce (the default for ranks on one CPU host) in
// place of Gloo: 2 ranks add the same two values, so overlapped or after
// backward the parameters are Gloo's to the bit; overlap stays real; and it
// sums bf16 buckets, which Gloo in LibTorch 1.13 cannot.
TEST(SharedMemory, SameParametersAsGlooOverlappedOrNot) {
  auto gloo = run_two_ranks(resnet_config(true), 2, 32);
  for (bool overlap : {true, false}) {
    auto shm = run_two_ranks(resnet_config(overlap), 2, 32, /*shm=*/true);
    ASSERT_EQ(shm.params.size(), gloo.params.size());
    for (size_t i = 0; i < gloo.params.size(); ++i)
      EXPECT_TRUE(torch::equal(shm.params[i], gloo.params[i])) << "overlap " << overlap << ", parameter " << i;
    if (overlap) {
      double exposed = shm.times[1].exposed_comm, total = shm.times[1].allreduce;
      EXPECT_GT(total, 0);
      EXPECT_LT(exposed, total);
    }
  }
  Config cfg = resnet_config(true);
  cfg.distributed.grad_compression = GradCompression::kBf16;
  auto bf16 = run_two_ranks(cfg, 2, 32, /*shm=*/true);
  bool all_equal = true;
  for (size_t i = 0; i < gloo.params.size(); ++i) {
    // bf16 keeps 8 bits: after 2 steps one of layer4's weights was 1.7e-2
    // away from the float32 run's (whose largest weight there is 0.22).
    EXPECT_TRUE(torch::allclose(bf16.params[i], gloo.params[i], 1e-2, 5e-2))
        << "bf16, parameter " << i << ": max difference "
        << (bf16.params[i] - gloo.params[i]).abs().max().item<double>();
    all_equal = all_equal && torch::equal(bf16.params[i], gloo.params[i]);
  }
  EXPECT_FALSE(all_equal) << "bf16 compression changed nothing";
}

// Gradient compression (DDP's fp16 compress hook): the buckets cross the
// network as fp16, overlapped (divide, cast, sum) or after backward (cast,
// sum, cast back, divide). The two paths agree (to 1e-4: they round tiny
// values differently); both are near the float32 run (about 2e-3 away: fp16
// keeps 11 bits) and not bit-equal to it (the casts happened).
TEST(Compression, Fp16BucketsAgreeAcrossPathsAndStayNearFloat32) {
  auto plain = run_two_ranks(resnet_config(true), 2, 32);
  std::vector<std::vector<torch::Tensor>> compressed;
  for (bool overlap : {true, false}) {
    Config cfg = resnet_config(overlap);
    cfg.distributed.grad_compression = GradCompression::kFp16;
    compressed.push_back(run_two_ranks(cfg, 2, 32).params);
    ASSERT_EQ(compressed.back().size(), plain.params.size());
  }
  bool all_equal = true;
  for (size_t i = 0; i < plain.params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(compressed[0][i], compressed[1][i], 0, 1e-4))
        << "parameter " << i << ": the paths differ by "
        << (compressed[0][i] - compressed[1][i]).abs().max().item<double>();
    EXPECT_TRUE(torch::allclose(compressed[0][i], plain.params[i], 1e-2, 1e-2))
        << "parameter " << i << ": max difference "
        << (compressed[0][i] - plain.params[i]).abs().max().item<double>();
    all_equal = all_equal && torch::equal(compressed[0][i], plain.params[i]);
  }
  EXPECT_FALSE(all_equal) << "fp16 compression changed nothing";
}

TEST(Compression, Bf16IsRefusedWhereGlooCannotSumIt) {
  if (compat::gloo_sums_bf16()) GTEST_SKIP() << "this LibTorch's Gloo sums bf16";
  Config cfg = resnet_config(true);
  cfg.distributed.grad_compression = GradCompression::kBf16;
  EXPECT_THROW(Trainer(cfg, 10, {}, 0, 2, 1), UserError);  // refused before any collective
}

// Overlap is real, by clocks the trainer does not keep: the first bucket's
// all-reduce (the last layers' gradients) is done before the autograd
// engine has computed the first layer's gradient (in one step of three at
// least), and on every step after the first, every bucket but the last (which holds that gradient) is launched while
// backward still computes, the engine computes gradients while a bucket's
// all-reduce is in flight (a comm hook that blocked until its all-reduce
// was done would stop it), and the communication left waiting after
// backward's last gradient is less than when the same steps all-reduce
// after backward (overlap_grad_sync: false), where all of it waits.
TEST(Overlap, CommunicationRunsDuringBackward) {
  auto run = run_two_ranks(resnet_config(true), 4, 64);
  auto plain = run_two_ranks(resnet_config(false), 4, 64);
  double exposed = 0, plain_exposed = 0, total = 0;
  int first_bucket_done_early = 0;
  for (size_t s = 1; s < run.times.size(); ++s) {  // the first step warms up
    const auto& buckets = run.buckets[s];
    ASSERT_EQ(buckets.size(), 3u) << "ResNet-18's 45 MB in buckets of 1, 25 and 19 MB";
    const int64_t compute_start = run.first_grad_us[s], compute_end = run.last_grad_us[s];
    ASSERT_LT(compute_start, compute_end);
    for (const auto& b : buckets) {
      EXPECT_LE(b.launch_us, b.done_us);
      if (b.bucket == 0 && b.done_us < compute_end) ++first_bucket_done_early;
      if (b.bucket + 1 < buckets.size()) {
        EXPECT_GE(b.launch_us, compute_start) << "step " << s << ", bucket " << b.bucket;
        EXPECT_LT(b.launch_us, compute_end) << "step " << s << ", bucket " << b.bucket << " launched after backward";
      }
    }
    int computed_during = 0;  // gradients computed while some bucket was in flight
    for (int64_t g : run.grad_us[s])
      for (const auto& b : buckets) computed_during += b.launch_us < g && g < b.done_us;
    EXPECT_GT(computed_during, 0) << "step " << s << ": backward computed nothing while an all-reduce ran";
    exposed += run.times[s].exposed_comm;
    total += run.times[s].allreduce;
    plain_exposed += plain.times[s].exposed_comm;
    EXPECT_TRUE(plain.buckets[s].empty());
  }
  std::printf("all-reduce %.1f ms per step, of which %.1f ms exposed (%.1f ms all-reducing after backward)\n",
              total / 3, exposed / 3, plain_exposed / 3);
  EXPECT_GT(total, 0);
  EXPECT_LT(exposed, plain_exposed);
  // On a loaded machine (ctest runs two tests at once) the communication
  // thread may lag in a step; in one of the three at least, bucket 0 is done
  // before backward's last gradient.
  EXPECT_GE(first_bucket_done_early, 1) << "bucket 0 was never all-reduced before backward's last gradient";
}

}  // namespace
}  // namespace convoy

namespace convoy {
namespace {

Config accumulation_config(int batch) {
  Config cfg = parse_config("data { image_folder { root: \".\" } batch_size: 8 image { height: 12 width: 12 channels: 1 } }"
                            " model { arch: \"cnn\" width: 4 batch_norm: false dropout: 0 channels_last: false }"
                            " optim { lr: 0.05 momentum: 0.9 weight_decay: 0.01 label_smoothing: 0.1 }"
                            " train { epochs: 1 amp: \"none\" } seed: 6",
                            "accumulate.pbtxt");
  cfg.data.batch_size = batch;
  return cfg;
}

// `ranks` ranks (threads) train `steps` steps; each step is `micros`
// micro-batches of `batch`, cut from the same per-rank data.
std::vector<torch::Tensor> accumulate_run(int ranks, int micros, int batch, int steps) {
  torch::manual_seed(77);
  const int per_step = micros * batch;
  auto pixels = torch::randint(0, 256, {ranks, steps * per_step, 1, 12, 12}, torch::kUInt8);
  auto labels = torch::randint(0, 10, {ranks, steps * per_step}, torch::kInt64);
  Config cfg = accumulation_config(batch);
  std::vector<torch::Tensor> initial;
  {
    Trainer reference(cfg, 10, {}, 0, 1, steps);
    for (auto& p : reference.model()->parameters()) initial.push_back(p.detach().clone());
  }
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<torch::Tensor> out;
  std::vector<std::string> errors(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        auto group = ranks > 1 ? make_gloo_group(store, r, ranks, std::chrono::seconds(30))
                               : c10::intrusive_ptr<compat::Backend>();
        Trainer t(cfg, 10, group, r, ranks, steps);
        clone_into(initial, t.model()->parameters());
        for (int s = 0; s < steps; ++s)
          for (int m = 0; m < micros; ++m) {
            int64_t from = s * per_step + m * batch;
            t.train_step(pixels[r].narrow(0, from, batch), labels[r].narrow(0, from, batch), s, false, m, micros);
          }
        if (r == 0)
          for (auto& p : t.model()->parameters()) out.push_back(p.detach().clone());
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  return out;
}

void expect_close(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-6))
        << "parameter " << i << " max diff " << (a[i] - b[i]).abs().max().item<double>();
}

// K micro-batches of B, gradients reduced once, equal one batch of K x B.
TEST(Accumulation, FourMicroBatchesEqualOneBatchFourTimesLarger) {
  expect_close(accumulate_run(1, 4, 4, 3), accumulate_run(1, 1, 16, 3));
}

// Across ranks (the Reducer skips the all-reduce until the last micro-batch).
TEST(Accumulation, TwoRanksWithAccumulationEqualTwoRanksWithTheLargerBatch) {
  expect_close(accumulate_run(2, 2, 4, 3), accumulate_run(2, 1, 8, 3));
}

}  // namespace
}  // namespace convoy

namespace convoy {
namespace {

// distributed.broadcast_buffers: "step" gives every rank rank 0's BatchNorm
// statistics before each step (as DDP does). Step 1 differs between the
// ranks, step 2 is the same batch on both: only if the statistics were
// broadcast in between do the ranks end with equal ones.
std::vector<std::vector<torch::Tensor>> buffers_after_two_steps(const std::string& mode) {
  Config cfg = parse_config("data { image_folder { root: \".\" } batch_size: 4 image { height: 12 width: 12 channels: 1 } }"
                            " model { arch: \"cnn\" width: 4 batch_norm: true dropout: 0 channels_last: false } optim { lr: 0.05 }"
                            " distributed { broadcast_buffers: \"" + mode + "\" } train { epochs: 1 amp: \"none\" } seed: 8",
                            "buffers.pbtxt");
  torch::manual_seed(12);
  std::vector<torch::Tensor> first = {torch::randint(0, 256, {4, 1, 12, 12}, torch::kUInt8),
                                      torch::randint(0, 256, {4, 1, 12, 12}, torch::kUInt8)};
  auto same = torch::randint(0, 256, {4, 1, 12, 12}, torch::kUInt8);
  auto labels = torch::randint(0, 10, {4}, torch::kInt64);
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::vector<torch::Tensor>> out(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.emplace_back([&, r] {
      auto group = make_gloo_group(store, r, 2, std::chrono::seconds(30));
      Trainer t(cfg, 10, group, r, 2, 2);
      t.train_step(first[r], labels, 0);
      t.train_step(same, labels, 1);
      for (auto& b : t.model()->buffers()) out[r].push_back(b.detach().clone());
    });
  for (auto& t : ranks) t.join();
  return out;
}

TEST(BroadcastBuffers, StepModeGivesEveryRankRankZerosStatistics) {
  auto step = buffers_after_two_steps("step");
  auto none = buffers_after_two_steps("none");
  ASSERT_FALSE(step[0].empty());
  bool step_equal = true, none_equal = true;
  for (size_t i = 0; i < step[0].size(); ++i) {
    if (step[0][i].is_floating_point()) step_equal &= torch::equal(step[0][i], step[1][i]);
    if (none[0][i].is_floating_point()) none_equal &= torch::equal(none[0][i], none[1][i]);
  }
  EXPECT_TRUE(step_equal);
  EXPECT_FALSE(none_equal);
}

}  // namespace
}  // namespace convoy
