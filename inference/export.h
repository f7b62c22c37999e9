// `convoy export`: a checkpoint's weights for PyTorch (see export.cpp).
#pragma once

#include <string>
#include <vector>

namespace convoy {

int export_main(const std::vector<std::string>& args);
// OUT.pt -> OUT.classes.json (other names: NAME.classes.json).
std::string classes_json_path(const std::string& out);

}  // namespace convoy
