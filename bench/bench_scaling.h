// `convoy bench scaling`: training throughput against the number of ranks,
// with the step time split into data wait, forward, backward, exposed
// communication and optimizer, through real `convoy launch` runs.
#pragma once

#include <string>
#include <vector>

namespace convoy {

int bench_scaling_main(const std::vector<std::string>& args);

}  // namespace convoy
