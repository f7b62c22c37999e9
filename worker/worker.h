// `convoy worker CONFIG`: one training rank (see worker/README.md).
#pragma once

#include <string>
#include <vector>

namespace convoy {

int worker_main(const std::vector<std::string>& args);

// For `convoy --version`: the LibTorch version and what it was built with
// (CUDA, c10d's NCCL and Gloo backends).
std::string torch_build_info();

}  // namespace convoy
