// `convoy worker CONFIG`: one training rank (see worker/README.md).
#pragma once

#include <string>
#include <vector>

namespace convoy {

int worker_main(const std::vector<std::string>& args);

}  // namespace convoy
