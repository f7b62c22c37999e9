// The device's facts and the settings resolved from them (see hardware.h).
#include "models/hardware.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/config.h"
#include "common/strings.h"
#include "models/conv.h"

namespace convoy {
namespace {

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// oneDNN's instruction-set caps (ONEDNN_MAX_CPU_ISA) below bf16 dot
// products; a cap not listed (AVX512_CORE_BF16, AVX512_CORE_AMX, ALL, ...)
// leaves bf16 alone.
bool onednn_cap_below_bf16(const std::string& isa) {
  static const std::set<std::string> below = {"SSE41",       "AVX",         "AVX2",
                                              "AVX2_VNNI",   "AVX2_VNNI_2", "AVX512_CORE",
                                              "AVX512_CORE_VNNI", "AVX512_MIC", "AVX512_MIC_4OPS"};
  return below.count(upper(isa)) > 0;
}

// The vector flags that say what a CPU computes fast, in this order.
std::string vector_flags(const CpuFeatures& cpu) {
  static const char* shown[] = {"sse4_2",   "avx",         "avx2",        "fma",      "f16c",
                                "avx_vnni", "avx512f",     "avx512bw",    "avx512vl", "avx512_vnni",
                                "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16"};
  std::string out;
  for (const char* f : shown)
    if (cpu.flags.count(f)) out += (out.empty() ? "" : " ") + std::string(f);
  return out.empty() ? "none of sse4_2 avx avx2 avx512" : out;
}

bool is_conv_net(const std::string& arch) {
  return arch == "cnn" || arch == "unet" || arch.rfind("resnet", 0) == 0 || arch.rfind("vgg", 0) == 0;
}

Choice<Amp> choose_amp(Amp amp, const DeviceFacts& d) {
  if (amp == Amp::kAuto)
    return {d.native_bf16 ? Amp::kBf16 : Amp::kNone,
            std::string("amp auto -> ") + (d.native_bf16 ? "bf16: " : "none: ") + d.bf16_why};
  if (amp == Amp::kBf16 && !d.native_bf16)
    return {Amp::kBf16,
            "amp bf16 asked for, but " + d.bf16_why +
                ": bf16 is emulated here and trains several times slower than float32 (train.amp=auto or none)",
            true};
  return {amp, std::string("amp ") + name_of(amp)};
}

Choice<bool> choose_channels_last(std::optional<bool> asked, const std::string& arch, Amp amp, const DeviceFacts& d) {
  if (asked) return {*asked, std::string("channels_last ") + (*asked ? "true" : "false")};
  if (!is_conv_net(arch))
    return {false, "channels_last auto -> false: " + arch + " has no convolution layers to speak of"};
  if (!d.cuda)
    return {true,
            "channels_last auto -> true: oneDNN's CPU convolutions read NHWC without reordering (faster in float32 "
            "and bf16, with or without AVX-512)"};
  if (amp == Amp::kNone)
    return {false, "channels_last auto -> false: cuDNN's float32 convolutions are fastest in NCHW"};
  return {true, std::string("channels_last auto -> true: tensor-core convolutions (") + name_of(amp) +
                    ") are fastest in NHWC"};
}

Choice<ConvChoice> choose_conv(ConvChoice conv, const std::string& arch, Amp amp, const DeviceFacts& d) {
  if (conv != ConvChoice::kAuto) return {conv, std::string("conv_algorithm ") + name_of(conv)};
  const std::string head = "conv_algorithm auto -> ";
  const ConvChoice kAuto = ConvChoice::kAuto, kDirect = ConvChoice::kDirect;
  if (d.cuda) return {kAuto, head + "cuDNN's choice (train.cudnn_benchmark)"};
  if (!is_conv_net(arch)) return {kDirect, head + "direct: " + arch + " has no 3x3 convolutions"};
  if (amp != Amp::kNone)
    return {kDirect, head + "direct: Winograd is for float32 only (amp " + name_of(amp) + ")"};
  if (d.winograd)
    return {kAuto, head + "Winograd for float32 3x3 convolutions (oneDNN's AVX-512 kernels), direct for the rest"};
  if (d.winograd_f2)
    return {kAuto, head + "Convoy's Winograd F(2x2, 3x3) for float32 3x3 convolutions, direct for the rest "
                          "(AVX2-class kernels here; " + d.winograd_why + ")"};
  return {kDirect, head + "direct: " + d.winograd_why};
}

}  // namespace

CpuFeatures parse_cpu_features(const std::string& cpuinfo, const std::string& aten_capability,
                               const std::string& onednn_max_isa) {
  CpuFeatures cpu;
  cpu.aten_capability = aten_capability;
  cpu.onednn_max_isa = onednn_max_isa;
  std::istringstream in(cpuinfo);
  std::string line;
  bool have_flags = false;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (key == "model name" && cpu.model.empty()) cpu.model = value;
    if (key == "flags" && !have_flags) {  // the first processor's; all are alike
      std::istringstream words(value);
      for (std::string f; words >> f;) cpu.flags.insert(f);
      have_flags = true;
    }
  }
  if (cpu.model.empty()) cpu.model = "unknown CPU";
  return cpu;
}

const CpuFeatures& this_cpu() {
  // Read once: neither the CPU nor the kernels' caps change in a process.
  static const CpuFeatures cpu = [] {
    std::ifstream f("/proc/cpuinfo");
    std::stringstream text;
    text << f.rdbuf();
    auto env = [](const char* name) {
      const char* v = std::getenv(name);
      return std::string(v ? v : "");
    };
    std::string onednn = env("ONEDNN_MAX_CPU_ISA");
    if (onednn.empty()) onednn = env("DNNL_MAX_CPU_ISA");
    return parse_cpu_features(text.str(), env("ATEN_CPU_CAPABILITY"), onednn);
  }();
  return cpu;
}

bool cpu_kernels_avx2_class(const CpuFeatures& cpu) {
  static const std::set<std::string> avx2_caps = {"AVX2", "AVX2_VNNI", "AVX2_VNNI_2"};
  return cpu.flags.count("avx2") && cpu.flags.count("fma") &&
         (!cpu.flags.count("avx512f") || avx2_caps.count(upper(cpu.onednn_max_isa)));
}

bool cpu_native_bf16(const CpuFeatures& cpu, std::string* why) {
  std::string has;
  for (const char* f : {"amx_bf16", "avx512_bf16"})
    if (cpu.flags.count(f)) has += (has.empty() ? "" : ", ") + std::string(f);
  std::string reason;
  bool native = false;
  if (has.empty()) {
    reason = "this CPU has no native bf16 (flags: " + vector_flags(cpu) + ")";
  } else if (onednn_cap_below_bf16(cpu.onednn_max_isa)) {
    reason = "ONEDNN_MAX_CPU_ISA=" + cpu.onednn_max_isa + " keeps oneDNN below this CPU's bf16 (" + has + ")";
  } else if (cpu.aten_capability == "default" || cpu.aten_capability == "avx2") {
    reason = "ATEN_CPU_CAPABILITY=" + cpu.aten_capability + " keeps LibTorch below this CPU's bf16 (" + has + ")";
  } else {
    reason = "this CPU computes bf16 natively (" + has + ")";
    native = true;
  }
  if (why) *why = reason;
  return native;
}

DeviceFacts cpu_facts() {
  DeviceFacts d;
  d.native_bf16 = cpu_native_bf16(this_cpu(), &d.bf16_why);
  d.name = "cpu: " + this_cpu().model;
  d.winograd = onednn::winograd_available(&d.winograd_why);
  d.winograd_f2 = winograd_f2_preferred();
  return d;
}

HardwareChoices choose_for_hardware(Amp amp, std::optional<bool> channels_last, ConvChoice conv_algorithm,
                                    const std::string& arch, const DeviceFacts& device) {
  HardwareChoices c;
  c.amp = choose_amp(amp, device);
  c.channels_last = choose_channels_last(channels_last, arch, c.amp.value, device);
  c.conv_algorithm = choose_conv(conv_algorithm, arch, c.amp.value, device);
  return c;
}

HardwareChoices choose_for_hardware(const Config& cfg, const DeviceFacts& device) {
  const auto& m = cfg.model;
  return choose_for_hardware(cfg.train.amp, m.channels_last, m.conv_algorithm, m.arch, device);
}

std::string HardwareChoices::values_text() const {
  return std::string(name_of(amp.value)) + " " + (channels_last.value ? "true" : "false") + " " +
         name_of(conv_algorithm.value);
}

void HardwareChoices::parse_values(const std::string& text) {
  std::istringstream in(text);
  std::string a, cl, conv;
  in >> a >> cl >> conv;
  amp.value = parse_choice<Amp>(a, "hardware choices");
  channels_last.value = cl == "true";
  conv_algorithm.value = parse_choice<ConvChoice>(conv, "hardware choices");
}

std::vector<std::pair<std::string, bool>> HardwareChoices::lines() const {
  return {{amp.line, amp.warning}, {channels_last.line, channels_last.warning},
          {conv_algorithm.line, conv_algorithm.warning}};
}

void apply_choices(const HardwareChoices& choices, Config* cfg) {
  cfg->train.amp = choices.amp.value;
  cfg->model.channels_last = choices.channels_last.value;
  cfg->model.conv_algorithm = choices.conv_algorithm.value;
}

std::string hardware_summary(const DeviceFacts& facts) {
  std::string out = "device auto: " + facts.name;
  if (!facts.cuda) out += " (flags: " + vector_flags(this_cpu()) + ")";
  out += "\nauto settings here, for a convolutional model:";
  const HardwareChoices choices = choose_for_hardware(Amp::kAuto, std::nullopt, ConvChoice::kAuto, "resnet18", facts);
  for (const auto& [line, warning] : choices.lines()) out += "\n  " + line;
  return out;
}

}  // namespace convoy
