// CPU sets for placing data-service processes: parsing Linux CPU lists
// ("0-3,8"), the NUMA layout from sysfs, and the automatic split of a node's
// cores between K services that keeps the workers' cores free.
#pragma once

#include <string>
#include <vector>

namespace convoy {

using CpuList = std::vector<int>;

// "0-3,8,10-11" -> {0,1,2,3,8,10,11}. Throws UserError naming `what`.
CpuList parse_cpu_list(const std::string& text, const std::string& what);
std::string format_cpu_list(const CpuList& cpus);

// The CPUs this process may run on (sched_getaffinity).
CpuList allowed_cpus();
// Every online CPU of the machine (sysfs), whatever this process's affinity.
CpuList allowed_cpus_of_system();

// NUMA node of each CPU in `cpus` (0 when sysfs has no NUMA information).
std::vector<int> numa_nodes_of(const CpuList& cpus);

// Splits `cpus` into `services` sets. When there are at least
// `worker_cpus` + `services` CPUs, the first `worker_cpus` (in the order
// given) are left to the workers; the rest are ordered by NUMA node and cut
// into contiguous, near-equal groups, so a service stays on one node when it
// can. With fewer CPUs every service shares all of them (no pinning gains).
std::vector<CpuList> split_cpus(const CpuList& cpus, const std::vector<int>& nodes, int worker_cpus, int services);

// Pins this process to `cpus`: the calling thread, every thread that exists
// (a library may have started some when it was loaded) and every thread
// created afterwards.
void pin_to(const CpuList& cpus);

}  // namespace convoy
