// Config loading: errors name file, line and field; --set overrides; paths.
#include <gtest/gtest.h>

#include "common/config.h"
#include "common/error.h"

namespace convoy {
namespace {

const char* kBase = R"(
data {
  image_folder { root: "." }
  batch_size: 16
}
model { arch: "cnn" }
)";

std::string error_of(const std::string& text, const std::vector<std::string>& sets = {}) {
  try {
    parse_config(text, "test.pbtxt", sets);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, LoadsAndConverts) {
  Config c = parse_config(kBase, "dir/test.pbtxt");
  EXPECT_EQ(c.name, "test");
  EXPECT_EQ(c.data.batch_size, 16);
  EXPECT_EQ(c.data.kind, DataSpec::Kind::kImageFolder);
  EXPECT_EQ(c.data.mean.size(), 3u);
  EXPECT_EQ(c.optim.lr, 0.1f);  // default from the schema
  EXPECT_NE(c.resolved_text.find("batch_size: 16"), std::string::npos);
}

TEST(Config, HardwareSettingsDefaultToAutoAndTakeAutoInSet) {
  Config c = parse_config(kBase, "t.pbtxt");
  EXPECT_EQ(c.train.amp, Amp::kAuto);
  EXPECT_FALSE(c.model.channels_last.has_value());
  EXPECT_EQ(c.model.conv_algorithm, ConvChoice::kAuto);
  const std::string text =
      "data { image_folder { root: \".\" } } model { channels_last: true } train { amp: \"none\" }\n";
  Config set = parse_config(text, "t.pbtxt");
  EXPECT_EQ(set.model.channels_last, std::optional<bool>(true));
  EXPECT_EQ(set.train.amp, Amp::kNone);
  Config back = parse_config(text, "t.pbtxt", {"model.channels_last=auto", "train.amp=auto"});
  EXPECT_FALSE(back.model.channels_last.has_value());
  EXPECT_EQ(back.train.amp, Amp::kAuto);
  EXPECT_EQ(parse_config(kBase, "t.pbtxt", {"model.channels_last=false"}).model.channels_last,
            std::optional<bool>(false));
  // Only fields whose absence means auto take it.
  EXPECT_NE(error_of(kBase, {"data.strict=auto"}).find("data.strict"), std::string::npos);
  EXPECT_NE(error_of(kBase, {"train.amp=fast"}).find("train.amp"), std::string::npos);
}

TEST(Config, ChoicesBecomeEnumsOnce) {
  Config c = parse_config(kBase, "t.pbtxt",
                          {"device=cpu", "optim.optimizer=adamw", "optim.schedule=step", "train.loss_scaling=dynamic",
                           "train.best_metric=macro_f1", "distributed.broadcast_buffers=none",
                           "distributed.grad_compression=fp16", "distributed.grad_transport=c10d",
                           "model.conv_algorithm=winograd_f2"});
  EXPECT_EQ(c.device, DeviceKind::kCpu);
  EXPECT_EQ(c.optim.optimizer, OptimizerKind::kAdamW);
  EXPECT_EQ(c.optim.schedule, ScheduleKind::kStep);
  EXPECT_EQ(c.train.loss_scaling, LossScaling::kDynamic);
  EXPECT_EQ(c.train.best_metric, BestMetric::kMacroF1);
  EXPECT_EQ(c.distributed.broadcast_buffers, BufferSync::kNone);
  EXPECT_EQ(c.distributed.grad_compression, GradCompression::kFp16);
  EXPECT_EQ(c.distributed.grad_transport, GradTransport::kC10d);
  EXPECT_EQ(c.model.conv_algorithm, ConvChoice::kWinogradF2);
  // The names in the error come from the same table as the enums.
  EXPECT_NE(error_of(kBase, {"distributed.grad_transport=nccl"})
                .find("distributed.grad_transport: unknown value 'nccl' (use one of: auto, shm, c10d)"),
            std::string::npos);
  // Every name maps back to itself.
  for (const auto& c : Choices<BestMetric>::names) EXPECT_EQ(choice_from_name<BestMetric>(c.name), c.value);
  EXPECT_FALSE(choice_from_name<Amp>("BF16").has_value());
}

TEST(Config, SegmentationDataAndModelGoTogether) {
  const std::string seg = "data { segmentation_folder { images: \".\" masks: \".\" mask_values: [0, 255] } "
                          "image { height: 64 width: 64 } } model { arch: \"unet\" }\n";
  const Config c = parse_config(seg, "t.pbtxt");
  EXPECT_EQ(c.data.kind, DataSpec::Kind::kSegmentationFolder);
  EXPECT_EQ(c.data.class_names, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(c.data.segmentation.mask_values, (std::vector<int>{0, 255}));
  EXPECT_EQ(c.model.encoder, "resnet34");
  EXPECT_NE(error_of(seg, {"model.arch=resnet18"}).find("data.segmentation_folder needs a segmentation model"),
            std::string::npos);
  EXPECT_NE(error_of(kBase, {"model.arch=unet"}).find("unet labels pixels"), std::string::npos);
  EXPECT_NE(error_of(seg, {"data.image.height=60"}).find("multiples of 32"), std::string::npos);
  EXPECT_NE(error_of(seg, {"data.segmentation_folder.ignore_index=1"}).find("not a class id"), std::string::npos);
  EXPECT_NE(error_of(seg, {"model.encoder=vgg16"}).find("unknown encoder 'vgg16'"), std::string::npos);
  EXPECT_NE(error_of(seg, {"train.loss=focal"}).find("use one of: auto, ce, bce, dice, dice+bce, dice+ce"),
            std::string::npos);
  // A segmentation set keeps the whole shorter side in evaluation.
  EXPECT_FLOAT_EQ(parse_config(seg, "t.pbtxt", {"data.train_augment.random_resized_crop=true"}).data.eval_resize_ratio,
                  1.f);
  // Colour masks: one colour per class, instead of mask_values.
  const std::string colour = "data { segmentation_folder { images: \".\" masks: \".\" "
                             "mask_colors: [\"#000000\", \"128,0,0\", \"#00FF00\"] } "
                             "image { height: 64 width: 64 } } model { arch: \"unet\" }\n";
  const Config cc = parse_config(colour, "c.pbtxt");
  EXPECT_EQ(cc.data.class_names, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(cc.data.segmentation.mask_colors[2], (std::array<uint8_t, 3>{0, 255, 0}));
  EXPECT_NE(error_of(colour, {"data.segmentation_folder.mask_values=0"}).find("not both"), std::string::npos);
  EXPECT_NE(error_of(colour, {"data.segmentation_folder.mask_colors=red"}).find("'red' is no colour"),
            std::string::npos);
}

TEST(Config, EvalResizeRatioFollowsTheTrainingCrop) {
  // Without random-resized-crop, eval must see images at the training scale.
  EXPECT_FLOAT_EQ(parse_config(kBase, "t.pbtxt").data.eval_resize_ratio, 1.f);
  EXPECT_FLOAT_EQ(parse_config(kBase, "t.pbtxt", {"data.train_augment.random_resized_crop=true"}).data.eval_resize_ratio,
                  256.f / 224.f);
  EXPECT_FLOAT_EQ(parse_config(kBase, "t.pbtxt", {"data.eval_resize_ratio=1.25"}).data.eval_resize_ratio, 1.25f);
}

TEST(Config, MisspeltFieldNamesFileLineAndField) {
  std::string text = std::string(kBase) + "optim {\n  lrr: 0.5\n}\n";
  std::string err = error_of(text);
  EXPECT_NE(err.find("test.pbtxt:8:"), std::string::npos) << err;
  EXPECT_NE(err.find("lrr"), std::string::npos) << err;
}

TEST(Config, WrongTypeIsRejected) {
  std::string err = error_of(std::string(kBase) + "train { epochs: \"ten\" }\n");
  EXPECT_NE(err.find("test.pbtxt:7:"), std::string::npos) << err;
  EXPECT_NE(err.find("epochs"), std::string::npos) << err;
}

TEST(Config, BadValueNamesLineAndField) {
  std::string err = error_of(std::string(kBase) + "optim {\n  lr: -1\n}\n");
  EXPECT_NE(err.find("test.pbtxt:8: optim.lr: must be > 0"), std::string::npos) << err;
  err = error_of(std::string(kBase) + "optim { optimizer: \"lion\" }\n");
  EXPECT_NE(err.find("test.pbtxt:7: optim.optimizer: unknown value 'lion' (use one of: sgd, adamw)"),
            std::string::npos) << err;
}

TEST(Config, OverridesApplyAndAreValidated) {
  Config c = parse_config(kBase, "t.pbtxt", {"optim.lr=0.25", "train.amp=bf16", "data.mean=[0.1,0.2,0.3]"});
  EXPECT_FLOAT_EQ(c.optim.lr, 0.25f);
  EXPECT_EQ(c.train.amp, Amp::kBf16);
  EXPECT_FLOAT_EQ(c.data.mean[2], 0.3f);
  EXPECT_NE(error_of(kBase, {"optim.lrr=1"}).find("--set optim.lrr=1: OptimConfig has no field 'lrr'"),
            std::string::npos);
  EXPECT_NE(error_of(kBase, {"optim.lr=abc"}).find("--set optim.lr=abc"), std::string::npos);
  EXPECT_NE(error_of(kBase, {"optim.lr=-2"}).find("--set optim.lr=-2: optim.lr: must be > 0"), std::string::npos);
  EXPECT_NE(error_of(kBase, {"optim"}).find("expected path.to.field=value"), std::string::npos);
}

TEST(Config, MissingDatasetPathIsNamed) {
  std::string err = error_of("data { image_folder { root: \"no/such/folder\" } }");
  EXPECT_NE(err.find("data.image_folder.root"), std::string::npos) << err;
  EXPECT_NE(err.find("no/such/folder"), std::string::npos) << err;
  EXPECT_NE(error_of("model { arch: \"cnn\" }").find("no dataset"), std::string::npos);
}

}  // namespace
}  // namespace convoy
