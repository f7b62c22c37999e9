// `convoy predict`: top-K labels for images with a trained checkpoint.
#pragma once

#include <string>
#include <vector>

namespace convoy {

int predict_main(const std::vector<std::string>& args);

}  // namespace convoy
