// `convoy eval`: a launch whose workers evaluate a checkpoint instead of
// training, then the rank-0 result printed as a table or one JSON line.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "common/cli_args.h"
#include "common/config.h"
#include "common/error.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/run_dir.h"
#include "launcher/launcher.h"

namespace convoy {

int eval_main(const std::vector<std::string>& argv) {
  CliArgs args("eval",
               "usage: convoy eval CONFIG --checkpoint CKPT [--split val|test|train] [--json]\n"
               "                   [--nproc-per-node N] [--set field=value ...] [--run-dir DIR]\n"
               "Evaluates CKPT on a split of CONFIG's dataset (default val, else test): loss, top-1,\n"
               "top-5, macro and micro F1, per-class precision/recall and the confusion matrix. With\n"
               "N ranks each evaluates its share. Writes eval-SPLIT.json, eval-SPLIT.txt and\n"
               "confusion-SPLIT.svg into a new run directory (RUN_ROOT/NAME-eval-TIMESTAMP).\n"
               "--json: the last line of stdout is the result as one JSON object.\n"
               "example: convoy eval configs/fashion_mnist.pbtxt --checkpoint runs/X/checkpoints/best.ckpt --split test\n");
  args.option("--checkpoint").option("--split").flag("--json").option("--nproc-per-node");
  args.option("--set", true).option("--run-dir");
  if (!args.parse(argv)) return 0;
  if (args.positional().size() != 1) CONVOY_USER_ERROR("convoy eval needs exactly one CONFIG (see convoy eval --help)");
  if (!args.has("--checkpoint")) CONVOY_USER_ERROR("convoy eval needs --checkpoint CKPT");
  const std::string checkpoint = args.get("--checkpoint");
  if (!path_exists(checkpoint)) CONVOY_USER_ERROR("--checkpoint " << checkpoint << " does not exist");
  auto sets = args.all("--set");
  Config probe = load_config(args.positional()[0], sets);
  sets.push_back("name=" + probe.name + "-eval");
  Config cfg = load_config(args.positional()[0], sets);
  const bool json = args.has("--json");
  // With --json, stdout's last line is the result; the workers' lines go before it.
  init_logging("eval", -1, json ? "warn" : cfg.log_level);
  const std::string split = args.get("--split", "val");
  if (split != "train" && split != "val" && split != "test")
    CONVOY_USER_ERROR("--split must be train, val or test (not '" << split << "')");

  LaunchOptions opts;
  opts.nproc = args.get_int("--nproc-per-node", 1);
  if (opts.nproc < 1 || opts.nproc > 1024) CONVOY_USER_ERROR("--nproc-per-node must be between 1 and 1024");
  prepare_launch(cfg, args.has("--run-dir") ? args.get("--run-dir") : create_run_dir(cfg), &opts);
  opts.worker_args = {"--eval-checkpoint", absolute_path(checkpoint), "--eval-split", split};
  int rc = run_with_restarts(opts);
  if (rc != 0) return rc;
  const std::string result = join_path(opts.run_dir, json ? "eval-" + split + ".json" : "eval-" + split + ".txt");
  std::fputs(read_file(result).c_str(), stdout);
  if (!json) std::printf("confusion matrix: %s\n", join_path(opts.run_dir, "confusion-" + split + ".svg").c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace convoy
