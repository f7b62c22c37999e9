// The config's closed choices as enums, each with its names in one table.
// The config parser, the command-line flags, error messages, logs and
// metrics all read that table: a choice is turned from text into an enum
// once, where it enters the program, and compared as an enum after that.
#pragma once

#include <optional>
#include <string>

namespace convoy {

enum class DeviceKind { kAuto, kCpu, kCuda };             // device
enum class ConvChoice { kAuto, kDirect, kWinogradF2 };    // model.conv_algorithm
enum class OptimizerKind { kSgd, kAdamW };                 // optim.optimizer
enum class ScheduleKind { kCosine, kStep, kConstant };       // optim.schedule
enum class Amp { kAuto, kNone, kBf16, kFp16 };             // train.amp
enum class LossScaling { kAuto, kDynamic, kNone };         // train.loss_scaling
enum class BestMetric { kAccuracy, kMacroF1, kLoss, kIou };  // train.best_metric
enum class LossKind { kAuto, kCe, kBce, kDice, kDiceBce, kDiceCe };  // train.loss
enum class BufferSync { kStep, kEpoch, kNone };            // distributed.broadcast_buffers
enum class GradCompression { kNone, kFp16, kBf16 };        // distributed.grad_compression
enum class GradTransport { kAuto, kShm, kC10d };           // distributed.grad_transport

template <class E>
struct ChoiceName {
  E value;
  const char* name;
};

// Choices<E>::names: every value of E with the name the config uses for it.
template <class E>
struct Choices;

template <>
struct Choices<DeviceKind> {
  static constexpr ChoiceName<DeviceKind> names[] = {
      {DeviceKind::kAuto, "auto"}, {DeviceKind::kCpu, "cpu"}, {DeviceKind::kCuda, "cuda"}};
};
template <>
struct Choices<ConvChoice> {
  static constexpr ChoiceName<ConvChoice> names[] = {
      {ConvChoice::kAuto, "auto"}, {ConvChoice::kDirect, "direct"}, {ConvChoice::kWinogradF2, "winograd_f2"}};
};
template <>
struct Choices<OptimizerKind> {
  static constexpr ChoiceName<OptimizerKind> names[] = {{OptimizerKind::kSgd, "sgd"},
                                                        {OptimizerKind::kAdamW, "adamw"}};
};
template <>
struct Choices<ScheduleKind> {
  static constexpr ChoiceName<ScheduleKind> names[] = {
      {ScheduleKind::kCosine, "cosine"}, {ScheduleKind::kStep, "step"}, {ScheduleKind::kConstant, "constant"}};
};
template <>
struct Choices<Amp> {
  static constexpr ChoiceName<Amp> names[] = {
      {Amp::kAuto, "auto"}, {Amp::kNone, "none"}, {Amp::kBf16, "bf16"}, {Amp::kFp16, "fp16"}};
};
template <>
struct Choices<LossScaling> {
  static constexpr ChoiceName<LossScaling> names[] = {
      {LossScaling::kAuto, "auto"}, {LossScaling::kDynamic, "dynamic"}, {LossScaling::kNone, "none"}};
};
template <>
struct Choices<BestMetric> {
  static constexpr ChoiceName<BestMetric> names[] = {{BestMetric::kAccuracy, "accuracy"},
                                                     {BestMetric::kMacroF1, "macro_f1"},
                                                     {BestMetric::kLoss, "loss"},
                                                     {BestMetric::kIou, "iou"}};
};
template <>
struct Choices<LossKind> {
  static constexpr ChoiceName<LossKind> names[] = {{LossKind::kAuto, "auto"},      {LossKind::kCe, "ce"},
                                                   {LossKind::kBce, "bce"},        {LossKind::kDice, "dice"},
                                                   {LossKind::kDiceBce, "dice+bce"}, {LossKind::kDiceCe, "dice+ce"}};
};
template <>
struct Choices<BufferSync> {
  static constexpr ChoiceName<BufferSync> names[] = {
      {BufferSync::kStep, "step"}, {BufferSync::kEpoch, "epoch"}, {BufferSync::kNone, "none"}};
};
template <>
struct Choices<GradCompression> {
  static constexpr ChoiceName<GradCompression> names[] = {
      {GradCompression::kNone, "none"}, {GradCompression::kFp16, "fp16"}, {GradCompression::kBf16, "bf16"}};
};
template <>
struct Choices<GradTransport> {
  static constexpr ChoiceName<GradTransport> names[] = {
      {GradTransport::kAuto, "auto"}, {GradTransport::kShm, "shm"}, {GradTransport::kC10d, "c10d"}};
};

template <class E>
const char* name_of(E value) {
  for (const auto& c : Choices<E>::names)
    if (c.value == value) return c.name;
  return "?";
}

template <class E>
std::optional<E> choice_from_name(const std::string& name) {
  for (const auto& c : Choices<E>::names)
    if (name == c.name) return c.value;
  return std::nullopt;
}

// "auto, cpu, cuda": for error messages.
template <class E>
std::string choice_list() {
  std::string out;
  for (const auto& c : Choices<E>::names) out += (out.empty() ? "" : ", ") + std::string(c.name);
  return out;
}

// The choice NAME, or a UserError: "WHAT: unknown value 'NAME' (use one of: ...)".
[[noreturn]] void throw_unknown_choice(const std::string& what, const std::string& name, const std::string& options);
template <class E>
E parse_choice(const std::string& name, const std::string& what) {
  if (auto v = choice_from_name<E>(name)) return *v;
  throw_unknown_choice(what, name, choice_list<E>());
}

}  // namespace convoy
