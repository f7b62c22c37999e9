// `convoy launch`: starts one node's data service and N worker ranks, watches
// them, and stops them all together (see launcher/README.md).
#pragma once

#include <string>
#include <vector>

namespace convoy {

int launch_main(const std::vector<std::string>& args);

}  // namespace convoy
