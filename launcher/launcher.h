// `convoy launch`: starts one node's data service and N worker ranks, watches
// them, and stops them all together (see launcher/README.md).
#pragma once

#include <string>
#include <vector>

namespace convoy {

struct Config;

int launch_main(const std::vector<std::string>& args);

struct LaunchOptions {
  std::string config_path;  // the resolved config in the run directory
  int nproc = 1;
  std::string run_dir;
  int master_port = 0;      // 0: a free one per attempt (one node only)
  std::string master_addr = "127.0.0.1";  // rank 0's host (torchrun's --master-addr)
  int nnodes = 1, node_rank = 0;          // this launcher starts ranks node_rank*nproc ...
  std::string job_token;                  // for every child; empty: CONVOY_JOB_TOKEN, else a fresh one
  std::string resume;       // "", "auto" or a checkpoint path
  int max_restarts = 0;
  int stop_grace_s = 120;
  int services = 1;                       // data-service shards
  std::vector<std::string> service_cpus;  // per shard; empty: not pinned
  int max_service_restarts = 3;           // per shard, per group
  std::vector<std::string> worker_args;   // after `convoy worker CONFIG`
};

// Fills the rest of `opts` (nproc set) from the config: prepares `run_dir`
// (the resolved config goes into it), the data-service shards and their CPUs.
void prepare_launch(const Config& cfg, const std::string& run_dir, LaunchOptions* opts);

// Runs groups (the data service and N workers) until one ends without a
// failure, restarting a failed group from its newest valid checkpoint up to
// max_restarts times. Returns the exit code for the CLI.
int run_with_restarts(const LaunchOptions& opts);

// `convoy eval CONFIG --checkpoint C`: a group whose workers evaluate
// instead of training (eval_command.cpp).
int eval_main(const std::vector<std::string>& args);

}  // namespace convoy
