// Models: shapes, torchvision parameter names for ResNet-18, LR schedule and
// checkpoint round trip.
#include <gtest/gtest.h>

#include <cstdlib>

#include "common/config.h"
#include "common/error.h"
#include "common/files.h"
#include "models/checkpoint.h"
#include "models/models.h"
#include "tests/tools/temp_dir.h"
#include "worker/optimizer.h"

namespace convoy {
namespace {

TEST(Models, OutputShapes) {
  for (const char* arch : {"cnn", "mlp", "resnet18"}) {
    ModelSpec spec;
    spec.arch = arch;
    for (ImageSpec img : {ImageSpec{28, 28, 1}, ImageSpec{32, 40, 3}}) {
      auto m = make_model(spec, img, 7);
      auto out = m->forward(torch::zeros({2, img.channels, img.height, img.width}));
      EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 7})) << arch;
    }
  }
}

TEST(Models, EveryArchitectureBuildsAndRuns) {
  for (const auto& arch : model_archs()) {
    ModelSpec spec;
    spec.arch = arch;
    ImageSpec img{32, 64, 3};  // not square: every side handled on its own (U-Net: multiples of 32)
    auto m = make_model(spec, img, 4);
    m->eval();
    torch::NoGradGuard no_grad;
    auto out = m->forward(torch::randn({2, 3, 32, 64}));
    const std::vector<int64_t> want = is_segmentation_arch(arch) ? std::vector<int64_t>{2, 4, 32, 64}
                                                                 : std::vector<int64_t>{2, 4};
    EXPECT_EQ(out.sizes(), want) << arch;
    EXPECT_FALSE(m->head.empty()) << arch;
    const auto params = m->named_parameters();
    EXPECT_TRUE(params.contains(m->head + ".weight") || params.contains(m->head + ".0.weight")) << arch;
  }
}

TEST(Models, ParameterCountsMatchTorchvision) {
  // torchvision 0.14's counts at 224 px and 1000 classes.
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"resnet18", 11689512}, {"resnet34", 21797672}, {"resnet50", 25557032}, {"vgg11_bn", 132868840},
      {"vgg16", 138357544},   {"vgg19_bn", 143678248}, {"vit_b_16", 86567656}};
  for (const auto& [arch, count] : expected) {
    ModelSpec spec;
    spec.arch = arch;
    auto m = make_model(spec, {224, 224, 3}, 1000);
    int64_t total = 0;
    for (const auto& p : m->parameters()) total += p.numel();
    EXPECT_EQ(total, count) << arch;
  }
}

// segmentation_models_pytorch 0.3's smp.Unet(encoder_name=E, classes=1)
// (tests/integration/smp_unet.py, whose resnet34 count is SMP's 24.4M).
TEST(Models, UnetHasSmpNamesAndCounts) {
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"resnet18", 14328209}, {"resnet34", 24436369}, {"resnet50", 32521105}};
  for (const auto& [encoder, count] : expected) {
    ModelSpec spec;
    spec.arch = "unet";
    spec.encoder = encoder;
    auto m = make_model(spec, {64, 64, 3}, 1);
    int64_t total = 0;
    for (const auto& p : m->parameters()) total += p.numel();
    EXPECT_EQ(total, count) << encoder;
    const auto params = m->named_parameters();
    const auto buffers = m->named_buffers();
    for (const char* name : {"encoder.conv1.weight", "encoder.layer4.1.bn2.bias", "decoder.blocks.0.conv1.0.weight",
                             "decoder.blocks.4.conv2.1.weight", "segmentation_head.0.weight",
                             "segmentation_head.0.bias"})
      EXPECT_TRUE(params.contains(name)) << encoder << " " << name;
    EXPECT_TRUE(buffers.contains("decoder.blocks.2.conv1.1.running_var")) << encoder;
    EXPECT_FALSE(params.contains("encoder.fc.weight")) << encoder;
  }
  ModelSpec spec;
  spec.arch = "unet";
  spec.encoder = "resnet34";
  auto m = make_model(spec, {64, 96, 3}, 3);
  // Block 0 sees layer4 (512) upsampled beside layer3 (256).
  EXPECT_EQ(m->named_parameters()["decoder.blocks.0.conv1.0.weight"].sizes(), (std::vector<int64_t>{256, 768, 3, 3}));
  EXPECT_EQ(m->forward(torch::zeros({1, 3, 64, 96})).sizes(), (std::vector<int64_t>{1, 3, 64, 96}));
  EXPECT_THROW(make_model(spec, {60, 64, 3}, 3), Error);
  spec.encoder = "resnet101";
  EXPECT_THROW(make_model(spec, {64, 64, 3}, 3), UserError);
}

TEST(Models, VitRejectsImagesThatAreNotWholePatches) {
  ModelSpec spec;
  spec.arch = "vit_ti_16";
  EXPECT_THROW(make_model(spec, {40, 48, 3}, 3), UserError);
}

TEST(Models, ResNet18HasTorchvisionNames) {
  ModelSpec spec;
  spec.arch = "resnet18";
  auto m = make_model(spec, {224, 224, 3}, 1000);
  auto params = m->named_parameters();
  auto buffers = m->named_buffers();
  // torchvision.models.resnet18(): 62 parameters, 60 buffers (BN running stats).
  EXPECT_EQ(params.size(), 62u);
  EXPECT_EQ(buffers.size(), 60u);
  for (const char* name : {"conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                           "layer2.0.downsample.1.bias", "layer4.1.bn2.weight", "fc.weight", "fc.bias"})
    EXPECT_TRUE(params.contains(name)) << name;
  EXPECT_TRUE(buffers.contains("layer3.1.bn1.running_var"));
  int64_t total = 0;
  for (const auto& p : m->parameters()) total += p.numel();
  EXPECT_EQ(total, 11689512);  // torchvision's count for resnet18
}

TEST(Schedule, WarmupThenCosineOrStep) {
  OptimSpec s;
  s.lr = 1.0f;
  s.warmup_epochs = 1;
  LrSchedule cos(s, 10, 3);
  EXPECT_NEAR(cos.at(0), 0.1, 1e-9);
  EXPECT_NEAR(cos.at(9), 1.0, 1e-9);
  EXPECT_NEAR(cos.at(10), 1.0, 1e-9);
  EXPECT_NEAR(cos.at(20), 0.5, 1e-9);
  EXPECT_NEAR(cos.at(30), 0.0, 1e-9);
  s.schedule = ScheduleKind::kStep;
  s.warmup_epochs = 0;
  s.step_epochs = {1, 2};
  LrSchedule step(s, 10, 3);
  EXPECT_NEAR(step.at(5), 1.0, 1e-9);
  EXPECT_NEAR(step.at(15), 0.1, 1e-6);  // step_gamma is a float
  EXPECT_NEAR(step.at(25), 0.01, 1e-6);
}

TEST(Checkpoint, RoundTripsAndRejectsTornFiles) {
  std::string dir = testing::make_temp_dir("convoy-ckpt");
  ModelSpec spec;
  auto a = make_model(spec, {28, 28, 1}, 10);
  auto opt = make_optimizer(OptimSpec{}, a->parameters());
  CheckpointMeta meta;
  meta.epoch = 3;
  meta.global_step = 42;
  meta.val_accuracy = 0.9;
  meta.class_names = {"a", "b"};
  meta.config_text = "seed: 1";
  save_checkpoint(dir + "/c.pt", *a, *opt, meta);
  torch::manual_seed(123);
  auto b = make_model(spec, {28, 28, 1}, 10);
  auto loaded = load_checkpoint(dir + "/c.pt", *b, nullptr);
  EXPECT_EQ(loaded.epoch, 3);
  EXPECT_EQ(loaded.global_step, 42);
  EXPECT_EQ(loaded.class_names, meta.class_names);
  EXPECT_EQ(loaded.config_text, "seed: 1");
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  // No temp file left behind; a truncated copy is refused, not loaded.
  EXPECT_FALSE(path_exists(dir + "/c.pt.tmp." + std::to_string(::getpid())));
  std::string bytes = read_file(dir + "/c.pt");
  write_file_atomic(dir + "/torn.pt", bytes.substr(0, bytes.size() / 2));
  EXPECT_ANY_THROW(load_checkpoint(dir + "/torn.pt", *b, nullptr));
  std::string why;
  EXPECT_FALSE(checkpoint_is_valid(dir + "/torn.pt", &why));
  EXPECT_NE(why.find("truncated"), std::string::npos) << why;
  // A checkpoint that cannot be written says so and what to check.
  try {
    save_checkpoint("/proc/convoy-no-such-place/c.ckpt", *a, *opt, meta);
    FAIL() << "expected an error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("the previous checkpoint is intact"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, StoreKeepsTheLastKAndFindsTheNewestValid) {
  std::string dir = testing::make_temp_dir("convoy-store");
  ModelSpec spec;
  spec.arch = "mlp";
  auto m = make_model(spec, {4, 4, 1}, 2);
  auto opt = make_optimizer(OptimSpec{}, m->parameters());
  CheckpointStore store(dir, 2);
  CheckpointMeta meta;
  for (int64_t step : {5, 10, 15}) {
    meta.global_step = step;
    store.save_step(*m, *opt, meta);
  }
  auto files = store.step_files();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_NE(files[0].find("step-0000000010.ckpt"), std::string::npos);
  EXPECT_EQ(*store.newest_valid(), files[1]);
  // Corrupt the newest: the previous one is chosen, and the skip is reported.
  std::string bytes = read_file(files[1]);
  bytes[bytes.size() / 2] ^= 0x5a;
  write_file_atomic(files[1], bytes);
  std::vector<std::string> skipped;
  EXPECT_EQ(*store.newest_valid(&skipped), files[0]);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("checksum mismatch"), std::string::npos);
}

}  // namespace
}  // namespace convoy
