// What the training device computes well, and the settings that follow from
// it: train.amp "auto", model.channels_last unset (auto) and
// model.conv_algorithm "auto" are resolved here, each with the reason a run
// logs at its start (and `convoy --version` prints).
//
// Why it matters: on a CPU without native bf16 (no avx512_bf16, no
// amx_bf16), LibTorch emulates bf16 and autocast makes training several
// times slower than float32; oneDNN's Winograd kernels exist only for
// AVX-512. The choice is a pure function of the facts below, so it is tested
// with made-up CPUs (tests/models/hardware_test.cpp).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/choices.h"

namespace convoy {

struct Config;

// A CPU as the kernels see it: its flags, narrowed by the environment
// variables that cap LibTorch's and oneDNN's instruction sets.
struct CpuFeatures {
  std::string model;            // "AMD EPYC 7B13"
  std::set<std::string> flags;  // /proc/cpuinfo's flags: avx2, avx512f, avx512_bf16, amx_bf16, ...
  std::string aten_capability;  // ATEN_CPU_CAPABILITY (empty: unset)
  std::string onednn_max_isa;   // ONEDNN_MAX_CPU_ISA, or DNNL_MAX_CPU_ISA (empty: unset)
};

// From the text of /proc/cpuinfo (the first processor's model name and
// flags) and the two variables' values.
CpuFeatures parse_cpu_features(const std::string& cpuinfo, const std::string& aten_capability,
                               const std::string& onednn_max_isa);
// This machine's (read once per process).
const CpuFeatures& this_cpu();

// Whether bf16 matrix products run on bf16 instructions here: avx512_bf16
// or amx_bf16, with neither variable capping the kernels below them. `why`
// gets the reason either way ("avx512_bf16", "no avx512_bf16 or amx_bf16
// (flags: avx2 fma ...)", "ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN below bf16").
bool cpu_native_bf16(const CpuFeatures& cpu, std::string* why);

// Whether LibTorch's convolution kernels here are AVX2-class: AVX2 without
// AVX-512, or AVX-512 that ONEDNN_MAX_CPU_ISA caps at AVX2 or below. There
// Convoy's own Winograd F(2x2, 3x3) beats them (conv.h).
bool cpu_kernels_avx2_class(const CpuFeatures& cpu);

// The training device, as far as the choices need it.
struct DeviceFacts {
  bool cuda = false;
  std::string name;           // "cpu: AMD EPYC 7B13" or the GPU's name
  bool native_bf16 = false;   // CUDA: compute capability 8.0 or newer
  std::string bf16_why;       // the reason for native_bf16, either way
  bool winograd = false;      // oneDNN Winograd convolutions can run (CPU)
  std::string winograd_why;   // when not
  bool winograd_f2 = false;   // Convoy's F(2x2, 3x3) is what auto uses (CPU)
};

// This CPU's facts: its flags, whether this build's oneDNN has Winograd
// kernels here. (A GPU's: device_facts in worker/dist/device.h.)
DeviceFacts cpu_facts();

// One resolved setting: its value and the line a run logs, e.g.
// "amp auto -> none: this CPU has no native bf16 (flags: avx2 ...)".
// `warning`: the setting was asked for explicitly and will be slow here.
template <class T>
struct Choice {
  T value{};
  std::string line;
  bool warning = false;
};

struct HardwareChoices {
  Choice<Amp> amp;                  // none | bf16 | fp16 (never auto)
  Choice<bool> channels_last;
  Choice<ConvChoice> conv_algorithm;  // auto (Winograd where it applies) | direct | winograd_f2
  // The three values as text ("bf16 true auto"): what rank 0 sends to the
  // others, and what parse_values reads back (a UserError for a bad one).
  std::string values_text() const;
  void parse_values(const std::string& text);
  // The log lines, each with whether it is a warning.
  std::vector<std::pair<std::string, bool>> lines() const;
};

// The settings as asked (amp may be auto, channels_last unset, conv auto)
// for model `arch` on `device`. Pure.
HardwareChoices choose_for_hardware(Amp amp, std::optional<bool> channels_last, ConvChoice conv_algorithm,
                                    const std::string& arch, const DeviceFacts& device);
// The same for a config's model and train sections.
HardwareChoices choose_for_hardware(const Config& cfg, const DeviceFacts& device);
// Writes the resolved values into cfg (train.amp, model.channels_last,
// model.conv_algorithm), so nothing after it sees "auto".
void apply_choices(const HardwareChoices& choices, Config* cfg);

// For `convoy --version`: `device` (what a run with `device: "auto"` gets
// here) and what the auto settings choose on it for a convolutional model.
std::string hardware_summary(const DeviceFacts& device);

}  // namespace convoy
