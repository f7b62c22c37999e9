// The auto settings as a pure function of made-up CPUs and devices
// (models/hardware.h): no test here depends on the machine it runs on.
#include "models/hardware.h"

#include <gtest/gtest.h>

#include "common/config.h"
#include "common/error.h"

namespace convoy {
namespace {

// /proc/cpuinfo of two processors, abridged.
std::string cpuinfo(const std::string& model, const std::string& flags) {
  std::string one = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: " + model + "\nflags\t\t: " + flags +
                    "\nbogomips\t: 4890.81\n\n";
  return one + one;
}

const std::string kZen3 = "fpu sse4_2 avx f16c fma avx2 sha_ni";  // AVX2, no AVX-512
const std::string kZen5 = kZen3 + " avx512f avx512bw avx512vl avx512_vnni avx512_bf16";
const std::string kSkylake = kZen3 + " avx512f avx512bw avx512vl";  // AVX-512 without bf16
const std::string kSapphireRapids = kSkylake + " avx512_bf16 amx_bf16 amx_tile amx_int8";

DeviceFacts cpu_facts(const std::string& flags, const std::string& aten = "", const std::string& onednn = "",
                      bool onednn_winograd_built = true) {
  DeviceFacts d;
  d.name = "cpu";
  const auto cpu = parse_cpu_features(cpuinfo("Some CPU", flags), aten, onednn);
  d.native_bf16 = cpu_native_bf16(cpu, &d.bf16_why);
  // oneDNN 2.x has Winograd kernels for AVX-512 only.
  d.winograd = onednn_winograd_built && flags.find("avx512f") != std::string::npos && onednn.empty();
  d.winograd_why = "oneDNN has no Winograd convolution for this CPU: it needs AVX-512";
  d.winograd_f2 = !d.winograd && cpu_kernels_avx2_class(cpu);
  return d;
}

DeviceFacts gpu_facts(bool bf16) {
  DeviceFacts d;
  d.cuda = true;
  d.name = bf16 ? "NVIDIA A100" : "Tesla T4";
  d.native_bf16 = bf16;
  d.bf16_why = bf16 ? "A100 computes bf16 natively" : "T4 has no native bf16";
  return d;
}

TEST(Hardware, ParsesModelAndFlagsOfTheFirstProcessor) {
  auto cpu = parse_cpu_features(cpuinfo("AMD EPYC 7B13", kZen3), "", "");
  EXPECT_EQ(cpu.model, "AMD EPYC 7B13");
  EXPECT_TRUE(cpu.flags.count("avx2"));
  EXPECT_FALSE(cpu.flags.count("avx512f"));
  EXPECT_EQ(parse_cpu_features("", "", "").model, "unknown CPU");
}

TEST(Hardware, NativeBf16NeedsAvx512Bf16OrAmxAndNoCapBelowIt) {
  std::string why;
  EXPECT_FALSE(cpu_native_bf16(parse_cpu_features(cpuinfo("Zen 3", kZen3), "", ""), &why));
  EXPECT_EQ(why, "this CPU has no native bf16 (flags: sse4_2 avx avx2 fma f16c)");
  EXPECT_FALSE(cpu_native_bf16(parse_cpu_features(cpuinfo("Skylake", kSkylake), "", ""), &why));
  EXPECT_NE(why.find("no native bf16"), std::string::npos);
  EXPECT_TRUE(cpu_native_bf16(parse_cpu_features(cpuinfo("Zen 5", kZen5), "", ""), &why));
  EXPECT_EQ(why, "this CPU computes bf16 natively (avx512_bf16)");
  EXPECT_TRUE(cpu_native_bf16(parse_cpu_features(cpuinfo("SPR", kSapphireRapids), "", "ALL"), &why));
  EXPECT_EQ(why, "this CPU computes bf16 natively (amx_bf16, avx512_bf16)");
  // amx_bf16 alone counts too.
  EXPECT_TRUE(cpu_native_bf16(parse_cpu_features(cpuinfo("AMX only", kSkylake + " amx_bf16"), "", ""), nullptr));
  // Imitating an AVX2 machine: the kernels are capped, so bf16 is emulated.
  EXPECT_FALSE(cpu_native_bf16(parse_cpu_features(cpuinfo("Zen 5", kZen5), "", "avx2"), &why));
  EXPECT_EQ(why, "ONEDNN_MAX_CPU_ISA=avx2 keeps oneDNN below this CPU's bf16 (avx512_bf16)");
  EXPECT_FALSE(cpu_native_bf16(parse_cpu_features(cpuinfo("Zen 5", kZen5), "avx2", ""), &why));
  EXPECT_FALSE(cpu_native_bf16(parse_cpu_features(cpuinfo("Zen 5", kZen5), "", "AVX512_CORE"), &why));
  EXPECT_TRUE(cpu_native_bf16(parse_cpu_features(cpuinfo("Zen 5", kZen5), "avx512", "AVX512_CORE_BF16"), &why));
}

TEST(Hardware, AmpAutoIsBf16OnlyWhereItIsNative) {
  auto zen3 = choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "cnn", cpu_facts(kZen3));
  EXPECT_EQ(zen3.amp.value, Amp::kNone);
  EXPECT_EQ(zen3.amp.line, "amp auto -> none: this CPU has no native bf16 (flags: sse4_2 avx avx2 fma f16c)");
  EXPECT_FALSE(zen3.amp.warning);
  EXPECT_EQ(choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "cnn", cpu_facts(kSkylake)).amp.value, Amp::kNone);
  auto zen5 = choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "cnn", cpu_facts(kZen5));
  EXPECT_EQ(zen5.amp.value, Amp::kBf16);
  EXPECT_EQ(zen5.amp.line, "amp auto -> bf16: this CPU computes bf16 natively (avx512_bf16)");
  EXPECT_EQ(choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "cnn", cpu_facts(kSapphireRapids)).amp.value, Amp::kBf16);
  EXPECT_EQ(choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "cnn", cpu_facts(kZen5, "avx2", "AVX2")).amp.value,
            Amp::kNone);
  EXPECT_EQ(choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "cnn", gpu_facts(true)).amp.value, Amp::kBf16);
  EXPECT_EQ(choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "cnn", gpu_facts(false)).amp.value, Amp::kNone);
}

TEST(Hardware, ExplicitAmpIsKeptAndEmulatedBf16IsAWarning) {
  auto slow = choose_for_hardware(Amp::kBf16, std::nullopt, ConvChoice::kAuto, "resnet18", cpu_facts(kZen3));
  EXPECT_EQ(slow.amp.value, Amp::kBf16);
  EXPECT_TRUE(slow.amp.warning);
  EXPECT_NE(slow.amp.line.find("several times slower"), std::string::npos) << slow.amp.line;
  auto fast = choose_for_hardware(Amp::kBf16, std::nullopt, ConvChoice::kAuto, "resnet18", cpu_facts(kZen5));
  EXPECT_FALSE(fast.amp.warning);
  EXPECT_EQ(fast.amp.line, "amp bf16");
  auto none = choose_for_hardware(Amp::kNone, std::nullopt, ConvChoice::kAuto, "resnet18", cpu_facts(kZen5));
  EXPECT_EQ(none.amp.value, Amp::kNone);
  EXPECT_EQ(choose_for_hardware(Amp::kFp16, std::nullopt, ConvChoice::kAuto, "resnet18", gpu_facts(false)).amp.value, Amp::kFp16);
}

TEST(Hardware, ChannelsLastFollowsModelDeviceAndPrecision) {
  for (const auto& flags : {kZen3, kZen5, kSkylake})
    for (Amp amp : {Amp::kNone, Amp::kBf16}) {
      auto c = choose_for_hardware(amp, std::nullopt, ConvChoice::kAuto, "resnet50", cpu_facts(flags));
      EXPECT_TRUE(c.channels_last.value) << flags << " " << name_of(amp);
      EXPECT_EQ(c.channels_last.line.rfind("channels_last auto -> true: ", 0), 0u) << c.channels_last.line;
    }
  EXPECT_EQ(choose_for_hardware(Amp::kNone, std::nullopt, ConvChoice::kAuto, "mlp", cpu_facts(kZen3)).channels_last.value, false);
  EXPECT_EQ(choose_for_hardware(Amp::kNone, std::nullopt, ConvChoice::kAuto, "vit_b_16", cpu_facts(kZen3)).channels_last.value,
            false);
  EXPECT_EQ(choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "resnet50", gpu_facts(true)).channels_last.value, true);
  EXPECT_EQ(choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "resnet50", gpu_facts(false)).channels_last.value,
            false);
  EXPECT_EQ(choose_for_hardware(Amp::kFp16, std::nullopt, ConvChoice::kAuto, "resnet50", gpu_facts(false)).channels_last.value,
            true);
  // Asked for: kept, whatever the hardware.
  auto asked = choose_for_hardware(Amp::kAuto, false, ConvChoice::kAuto, "resnet50", cpu_facts(kZen5));
  EXPECT_EQ(asked.channels_last.value, false);
  EXPECT_EQ(asked.channels_last.line, "channels_last false");
}

TEST(Hardware, WinogradOnlyInFloat32WhereOneDnnHasIt) {
  auto avx512 = choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "resnet18", cpu_facts(kSkylake));
  EXPECT_EQ(avx512.amp.value, Amp::kNone);
  EXPECT_EQ(avx512.conv_algorithm.value, ConvChoice::kAuto);
  EXPECT_NE(avx512.conv_algorithm.line.find("Winograd"), std::string::npos);
  // AVX2 (or AVX-512 capped to it): Convoy's F(2x2, 3x3).
  for (const auto& facts : {cpu_facts(kZen3), cpu_facts(kSkylake, "avx2", "AVX2")}) {
    auto avx2 = choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "resnet18", facts);
    EXPECT_EQ(avx2.conv_algorithm.value, ConvChoice::kAuto);
    EXPECT_EQ(avx2.conv_algorithm.line,
              "conv_algorithm auto -> Convoy's Winograd F(2x2, 3x3) for float32 3x3 convolutions, direct for the "
              "rest (AVX2-class kernels here; oneDNN has no Winograd convolution for this CPU: it needs AVX-512)");
  }
  // AVX-512 without oneDNN's Winograd in the build: LibTorch's AVX-512 kernels.
  auto unbuilt = choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "resnet18", cpu_facts(kSkylake, "", "", false));
  EXPECT_EQ(unbuilt.conv_algorithm.value, ConvChoice::kDirect);
  // Neither AVX2 nor AVX-512.
  auto old = choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "resnet18", cpu_facts("fpu sse4_2 avx"));
  EXPECT_EQ(old.conv_algorithm.value, ConvChoice::kDirect);
  EXPECT_EQ(old.conv_algorithm.line,
            "conv_algorithm auto -> direct: oneDNN has no Winograd convolution for this CPU: it needs AVX-512");
  EXPECT_EQ(choose_for_hardware(Amp::kNone, std::nullopt, ConvChoice::kWinogradF2, "resnet18", cpu_facts(kSkylake))
                .conv_algorithm.value,
            ConvChoice::kWinogradF2);
  auto bf16 = choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "resnet18", cpu_facts(kZen5));
  EXPECT_EQ(bf16.conv_algorithm.value, ConvChoice::kDirect);
  EXPECT_NE(bf16.conv_algorithm.line.find("float32 only"), std::string::npos);
  EXPECT_EQ(choose_for_hardware(Amp::kNone, std::nullopt, ConvChoice::kDirect, "resnet18", cpu_facts(kSkylake)).conv_algorithm.value,
            ConvChoice::kDirect);
  EXPECT_EQ(choose_for_hardware(Amp::kNone, std::nullopt, ConvChoice::kAuto, "resnet18", gpu_facts(true)).conv_algorithm.value, ConvChoice::kAuto);
}

TEST(Hardware, Avx2ClassKernels) {
  EXPECT_TRUE(cpu_kernels_avx2_class(parse_cpu_features(cpuinfo("Zen 3", kZen3), "", "")));
  EXPECT_FALSE(cpu_kernels_avx2_class(parse_cpu_features(cpuinfo("Zen 5", kZen5), "", "")));
  EXPECT_TRUE(cpu_kernels_avx2_class(parse_cpu_features(cpuinfo("Zen 5", kZen5), "avx2", "AVX2")));
  EXPECT_FALSE(cpu_kernels_avx2_class(parse_cpu_features(cpuinfo("old", "fpu sse4_2 avx"), "", "")));
}

// What rank 0 sends the other ranks, read back as the same choices.
TEST(Hardware, ChoicesTravelAsText) {
  auto mine = choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "resnet18", cpu_facts(kZen5));
  EXPECT_EQ(mine.values_text(), "bf16 true direct");
  HardwareChoices job = choose_for_hardware(Amp::kNone, false, ConvChoice::kWinogradF2, "cnn", cpu_facts(kZen3));
  job.parse_values(mine.values_text());
  EXPECT_EQ(job.amp.value, Amp::kBf16);
  EXPECT_TRUE(job.channels_last.value);
  EXPECT_EQ(job.conv_algorithm.value, ConvChoice::kDirect);
  EXPECT_THROW(job.parse_values("fast true auto"), UserError);
}

TEST(Hardware, AppliedChoicesLeaveNothingAuto) {
  Config cfg;
  ASSERT_EQ(cfg.train.amp, Amp::kAuto);
  ASSERT_FALSE(cfg.model.channels_last.has_value());
  apply_choices(choose_for_hardware(cfg, cpu_facts("fpu sse4_2 avx")), &cfg);
  EXPECT_EQ(cfg.train.amp, Amp::kNone);
  EXPECT_EQ(cfg.model.channels_last, std::optional<bool>(true));
  EXPECT_EQ(cfg.model.conv_algorithm, ConvChoice::kDirect);
}

}  // namespace
}  // namespace convoy
