// `convoy bench allreduce`: all-reduce time and bandwidth per message size
// over Convoy's c10d group (Gloo on CPU, NCCL on GPUs) or its shared-memory
// all-reduce (--transport shm), like nccl-tests' all_reduce_perf.
#pragma once

#include <string>
#include <vector>

namespace convoy {

int bench_allreduce_main(const std::vector<std::string>& args);

}  // namespace convoy
