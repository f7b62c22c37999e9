// `convoy bench model`: forward + backward images/s of one model in this
// process, for comparing Convoy's models with torchvision's on the same
// LibTorch (bench/model_vs_torchvision.sh).
#pragma once

#include <string>
#include <vector>

#include "common/choices.h"

namespace convoy {

// --amp for the benchmarks: none, bf16 or fp16 (not auto: a benchmark
// measures what it is told). A UserError for anything else.
Amp bench_amp(const std::string& name);

int bench_model_main(const std::vector<std::string>& args);

}  // namespace convoy
