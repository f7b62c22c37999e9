// `convoy bench model`: forward + backward images/s of one model in this
// process, for comparing Convoy's models with torchvision's on the same
// LibTorch (bench/model_vs_torchvision.sh).
#pragma once

#include <string>
#include <vector>

namespace convoy {

int bench_model_main(const std::vector<std::string>& args);

}  // namespace convoy
