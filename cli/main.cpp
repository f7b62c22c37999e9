// The `convoy` binary: dispatches to each subcommand's component and turns
// errors into one line on stderr and a non-zero exit code.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_allreduce.h"
#include "bench/bench_data.h"
#include "bench/bench_model.h"
#include "bench/bench_scaling.h"
#include "common/error.h"
#include "common/process.h"
#include "data_service/data_service.h"
#include "data_service/pack.h"
#include "inference/export.h"
#include "inference/predict.h"
#include "launcher/launcher.h"
#include "report/run_report.h"
#include "worker/dist/device.h"
#include "worker/worker.h"

namespace {

constexpr const char* kUsage =
    "usage: convoy <command> [args]\n"
    "commands:\n"
    "  launch        start a node's data service and N training ranks\n"
    "  worker        one training rank (under convoy launch or mpirun)\n"
    "  data-service  the node's decode/augment process (started for you)\n"
    "  pack          pack an image folder into tar shards (convoy pack --help)\n"
    "  eval          evaluate a checkpoint: top-1/5, F1, per-class, confusion matrix\n"
    "  predict       top-K labels for images with a checkpoint\n"
    "  export        a checkpoint's weights as a PyTorch state_dict (torchvision names)\n"
    "  bench         benchmarks: bench data (input pipeline), scaling (training vs ranks),\n"
    "                allreduce (bandwidth per message size), model (forward+backward images/s)\n"
    "  report        write a run directory's HTML report (curves, step time, events)\n"
    "run `convoy <command> --help` for its options. Everywhere: --log-level LEVEL\n"
    "(trace|debug|info|warn|error; or CONVOY_LOG_LEVEL), --version.\n"
    "example: convoy launch --nproc-per-node 2 configs/fashion_mnist.pbtxt\n";

struct Command {
  const char* name;
  int (*main)(const std::vector<std::string>&);
};

constexpr Command kBenchmarks[] = {
    {"data", convoy::bench_data_main},
    {"scaling", convoy::bench_scaling_main},
    {"allreduce", convoy::bench_allreduce_main},
    {"model", convoy::bench_model_main},
};

int bench_main(const std::vector<std::string>& args) {
  std::string names;
  for (const auto& b : kBenchmarks) names += (names.empty() ? "" : ", ") + std::string(b.name);
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::printf("usage: convoy bench <%s> [options]\nrun `convoy bench <name> --help` for its options.\n"
                "example: convoy bench data --image-folder DIR --threads 1\n",
                names.c_str());
    return args.empty() ? 2 : 0;
  }
  for (const auto& b : kBenchmarks)
    if (args[0] == b.name) return b.main({args.begin() + 1, args.end()});
  throw convoy::UserError("unknown benchmark '" + args[0] + "' (benchmarks: " + names + ")");
}

constexpr Command kCommands[] = {
    {"launch", convoy::launch_main},
    {"worker", convoy::worker_main},
    {"data-service", convoy::data_service_main},
    {"pack", convoy::pack_main},
    {"eval", convoy::eval_main},
    {"predict", convoy::predict_main},
    {"export", convoy::export_main},
    {"bench", bench_main},
    {"report", convoy::report_main},
};

// Errors are one line (the launcher quotes the last one of a failed child).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
  convoy::tune_malloc();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  // --log-level LEVEL anywhere on the line: for this process and every child
  // it starts (through CONVOY_LOG_LEVEL, which wins over the config's).
  std::vector<std::string> all(argv + 1, argv + argc);
  for (size_t i = 0; i < all.size(); ++i) {
    std::string level;
    if (all[i] == "--log-level" && i + 1 < all.size()) {
      level = all[i + 1];
      all.erase(all.begin() + static_cast<long>(i), all.begin() + static_cast<long>(i) + 2);
    } else if (all[i].rfind("--log-level=", 0) == 0) {
      level = all[i].substr(12);
      all.erase(all.begin() + static_cast<long>(i));
    } else {
      continue;
    }
    static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
    if (std::none_of(std::begin(kLevels), std::end(kLevels), [&](const char* l) { return level == l; })) {
      std::fprintf(stderr, "convoy: error: unknown log level '%s' (use trace, debug, info, warn, error or off)\n",
                   level.c_str());
      return 2;
    }
    ::setenv("CONVOY_LOG_LEVEL", level.c_str(), 1);
    --i;
  }
  if (all.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (all[0] == "--version") {
    std::printf("convoy %s\n%s\n%s\n", CONVOY_VERSION, convoy::torch_build_info().c_str(),
                convoy::hardware_summary().c_str());
    return 0;
  }
  std::string name = all[0];
  std::vector<std::string> args(all.begin() + 1, all.end());
  for (const auto& cmd : kCommands) {
    if (name != cmd.name) continue;
    try {
      return cmd.main(args);
    } catch (const convoy::UserError& e) {
      std::fprintf(stderr, "convoy %s: error: %s\n", cmd.name, first_line(e.what()).c_str());
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "convoy %s: error: %s\n", cmd.name, first_line(e.what()).c_str());
      return 1;
    }
  }
  std::fprintf(stderr, "convoy: error: unknown command '%s' (commands: launch, worker, data-service, pack, eval, predict, export, bench, report; see convoy --help)\n",
               name.c_str());
  return 2;
}
