// `convoy bench scaling` (see bench_scaling.h): for each world size, a real
// `convoy launch` (data service + ranks, the production path) trains the
// configured model for warm-up + measured steps; throughput and the step
// breakdown come from that run's metrics.jsonl (one train line per step).
#include "bench/bench_scaling.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/bench_model.h"
#include "common/cli_args.h"
#include "common/config.h"
#include "common/error.h"
#include "common/files.h"
#include "common/metrics.h"
#include "common/metrics_schema.h"
#include "common/process.h"
#include "common/run_dir.h"
#include "report/run_report.h"

namespace convoy {
namespace {

constexpr const char* kUsage =
    "usage: convoy bench scaling (CONFIG | --image-folder DIR) [--model resnet18] [--image-size 112]\n"
    "                            [--batch 32] [--ranks 1,2] [--threads-per-rank 1] [--steps 30]\n"
    "                            [--warmup 5] [--amp none|bf16|fp16] [--device auto|cpu|cuda]\n"
    "                            [--run-dir DIR] [--json]\n"
    "For each world size in --ranks, runs convoy launch (data service and ranks) for warm-up +\n"
    "measured steps and reports global and per-rank images/s, scaling efficiency, and the step\n"
    "time split into data wait, forward, backward, exposed communication and optimizer. Writes\n"
    "scaling.json and scaling.svg into the run directory (default runs/bench-scaling-<time>).\n"
    "--device auto trains on the GPUs when the build has CUDA and they are visible (rank = GPU);\n"
    "fp16 needs them. SIGINT/SIGTERM/SIGHUP go to the running launch (a second one: SIGKILL),\n"
    "and bench scaling exits after it has stopped (status 128 + signal).\n"
    "example: convoy bench scaling --image-folder bench-data/inet --ranks 1,2 --amp bf16 --json\n";

const std::vector<std::string> kPhases = {"data_wait", "forward", "backward", "exposed_comm", "optimizer"};

struct Result {
  int ranks = 0;
  double images_per_sec = 0, efficiency = 0, allreduce_total_ms = 0;
  std::map<std::string, double> breakdown_ms;
};

std::vector<int> parse_ranks(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, ',');) {
    int r = 0;
    try {
      r = std::stoi(part);
    } catch (const std::exception&) {
      r = 0;
    }
    if (r < 1 || r > 256) CONVOY_USER_ERROR("--ranks: '" << text << "' is not a list of world sizes like 1,2");
    out.push_back(r);
  }
  if (out.empty()) CONVOY_USER_ERROR("--ranks: empty");
  return out;
}

// The config each world size trains: the given one, or an image-folder
// config with the standard augmentation; no evaluation, one train line per
// step, as many epochs as the steps need.
std::string bench_config_text(const CliArgs& args) {
  const Amp amp = bench_amp(args.get("--amp", "none"));
  const DeviceKind device = parse_choice<DeviceKind>(args.get("--device", "auto"), "--device");
  if (amp == Amp::kFp16 && device == DeviceKind::kCpu) CONVOY_USER_ERROR("--amp fp16 needs CUDA (use bf16 on the CPU)");
  std::string size = args.get("--image-size", "112");
  std::ostringstream t;
  if (args.has("--image-folder")) {
    char* real = ::realpath(args.get("--image-folder").c_str(), nullptr);
    if (!real) CONVOY_USER_ERROR("--image-folder " << args.get("--image-folder") << " does not exist");
    t << "name: \"bench-scaling\" device: \"" << name_of(device) << "\" data { image_folder { root: \"" << real << "\" } val_fraction: 0"
      << " image { height: " << size << " width: " << size << " }"
      << " train_augment { random_resized_crop: true horizontal_flip: true }"
      << " mean: [0.485, 0.456, 0.406] std: [0.229, 0.224, 0.225] }"
      << " model { arch: \"" << args.get("--model", "resnet18") << "\" channels_last: " << (amp != Amp::kNone ? "true" : "false")
      << " } optim { lr: 0.05 momentum: 0.9 weight_decay: 0.0001 schedule: \"constant\" }\n";
    std::free(real);
  }
  return t.str();
}

// Runs `argv` with its output appended to `log`; returns the wait status.
// A stop signal meanwhile goes to the child, and this waits for it to end.
int run_logged(const std::vector<std::string>& argv, const std::string& log, StopSignals& stop) {
  SpawnOptions opts;
  opts.program = self_executable();
  opts.argv = argv;
  opts.capture_output = true;
  Child c = spawn(opts);
  stop.add(c.pid);
  std::ofstream out(log, std::ios::app);
  int fds[2] = {c.stdout_fd, c.stderr_fd};
  while (fds[0] >= 0 || fds[1] >= 0) {
    pollfd p[3];
    int n = 0;
    for (int fd : fds)
      if (fd >= 0) p[n++] = {fd, POLLIN, 0};
    p[n] = {stop.fd(), POLLIN, 0};
    if (::poll(p, static_cast<nfds_t>(n + 1), 1000) < 0 && errno != EINTR) break;
    if (p[n].revents & POLLIN) stop.forward();
    for (int i = 0; i < n; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t k = ::read(p[i].fd, buf, sizeof buf);
      if (k > 0) {
        out.write(buf, k);
        continue;
      }
      for (int& fd : fds)
        if (fd == p[i].fd) {
          ::close(fd);
          fd = -1;
        }
    }
  }
  return stop.wait(c.pid);
}

Result measure(const std::string& metrics_path, int ranks, int batch, int warmup) {
  std::ifstream in(metrics_path);
  Result r;
  r.ranks = ranks;
  double step_seconds = 0;
  int steps = 0;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!metrics::is(j, metrics::kTrain)) continue;
    if (metrics::number(j, "step", 0) <= warmup) continue;  // "step" is the global step after it
    double ips = metrics::number(j, "images_per_sec", 0);
    if (ips <= 0) continue;
    step_seconds += static_cast<double>(ranks) * batch / ips;
    for (const auto& p : kPhases) r.breakdown_ms[p] += metrics::value(j, "breakdown_ms").value(p, 0.0);
    r.allreduce_total_ms += metrics::number(j, "allreduce_total_ms", 0);
    ++steps;
  }
  if (steps == 0) CONVOY_USER_ERROR("no measured steps in " << metrics_path << " (see the log next to it)");
  r.images_per_sec = steps * static_cast<double>(ranks) * batch / step_seconds;
  for (auto& [_, v] : r.breakdown_ms) v /= steps;
  r.allreduce_total_ms /= steps;
  return r;
}

std::string scaling_svg(const std::vector<Result>& results) {
  ChartSeries ips{"images/s", {}}, eff{"efficiency (%)", {}};
  for (const auto& r : results) {
    ips.points.push_back({static_cast<double>(r.ranks), r.images_per_sec});
    eff.points.push_back({static_cast<double>(r.ranks), 100 * r.efficiency});
  }
  // One SVG file holding both charts side by side (nested <svg> elements).
  std::string right = svg_line_chart("Scaling efficiency", "ranks", {eff});
  right.replace(right.find("<svg "), 5, "<svg x=\"570\" ");
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1140\" height=\"300\">" +
         svg_line_chart("Throughput against ranks", "ranks", {ips}) + right + "</svg>\n";
}

}  // namespace

int bench_scaling_main(const std::vector<std::string>& argv) {
  CliArgs args("bench scaling", kUsage);
  args.option("--image-folder").option("--model").option("--image-size").option("--batch").option("--ranks");
  args.option("--threads-per-rank").option("--steps").option("--warmup").option("--amp").option("--run-dir");
  args.option("--device").option("--set", true).flag("--json");
  if (!args.parse(argv)) return 0;
  if (args.positional().size() + args.has("--image-folder") != 1)
    CONVOY_USER_ERROR("give exactly one of CONFIG or --image-folder DIR (see convoy bench scaling --help)");
  const auto world_sizes = parse_ranks(args.get("--ranks", "1,2"));
  const int steps = args.get_int("--steps", 30), warmup = args.get_int("--warmup", 5);
  const int batch = args.get_int("--batch", 32), threads = args.get_int("--threads-per-rank", 1);
  if (steps < 1 || warmup < 0 || batch < 1 || threads < 1) CONVOY_USER_ERROR("--steps, --batch and --threads-per-rank must be >= 1");
  const bool json = args.has("--json");

  std::string dir = args.get("--run-dir", "");
  if (dir.empty()) {
    Config named;
    named.name = "bench-scaling";
    dir = create_run_dir(named);
  }
  make_dirs(dir);
  std::string config_path = join_path(dir, "bench.pbtxt");
  std::string text = args.has("--image-folder") ? bench_config_text(args)
                                                : read_file(args.positional()[0]);
  write_file_atomic(config_path, text);
  // Settings every world size shares; the user's --set come last and win.
  std::vector<std::string> sets = {
      "data.batch_size=" + std::to_string(batch), "train.threads_per_rank=" + std::to_string(threads),
      "train.log_every_steps=1", "train.eval_splits=none", "train.amp=" + args.get("--amp", "none"),
      "train.checkpoint_every_steps=0"};
  if (args.has("--device")) sets.push_back("device=" + args.get("--device"));
  if (args.has("--model")) sets.push_back("model.arch=" + args.get("--model"));
  for (const auto& s : args.all("--set")) sets.push_back(s);

  std::vector<Result> results;
  StopSignals stop;
  for (int r : world_sizes) {
    load_config(config_path, sets);  // any mistake in it or in --set, before starting anything
    std::vector<std::string> argv_run = {self_path(), "launch", "--nproc-per-node", std::to_string(r), config_path,
                                         "--run-dir", join_path(dir, "ranks-" + std::to_string(r))};
    for (const auto& s : sets) argv_run.insert(argv_run.end(), {"--set", s});
    argv_run.insert(argv_run.end(), {"--set", "train.max_steps=" + std::to_string(warmup + steps),
                                     "--set", "train.epochs=1000000"});
    std::string log = join_path(dir, "ranks-" + std::to_string(r) + ".log");
    std::printf("bench scaling: %d rank(s) x %d thread(s), batch %d, %d warm-up + %d steps (log: %s)\n", r, threads,
                batch, warmup, steps, log.c_str());
    std::fflush(stdout);
    int status = run_logged(argv_run, log, stop);
    if (stop.signal()) {
      std::fprintf(stderr, "bench scaling: stopped by signal %d; the %d-rank launch has ended (%s)\n", stop.signal(), r,
                   describe_exit(status).c_str());
      return 128 + stop.signal();
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      CONVOY_USER_ERROR("the " << r << "-rank run failed (" << describe_exit(status) << "); see " << log);
    results.push_back(measure(join_path(join_path(dir, "ranks-" + std::to_string(r)), "metrics.jsonl"), r, batch, warmup));
  }
  const Result& base = results.front();
  for (auto& res : results)
    res.efficiency = res.images_per_sec / (base.images_per_sec * res.ranks / base.ranks);

  std::printf("\n%-6s %12s %10s %11s %10s %9s %9s %9s %9s %10s\n", "ranks", "images/s", "per rank", "efficiency",
              "data ms", "fwd ms", "bwd ms", "exp.comm", "opt ms", "comm total");
  JsonLine j;
  std::vector<JsonLine> list;
  for (const auto& res : results) {
    const auto& b = res.breakdown_ms;
    std::printf("%-6d %12.1f %10.1f %10.1f%% %10.2f %9.2f %9.2f %9.2f %9.2f %10.2f\n", res.ranks, res.images_per_sec,
                res.images_per_sec / res.ranks, 100 * res.efficiency, b.at("data_wait"), b.at("forward"),
                b.at("backward"), b.at("exposed_comm"), b.at("optimizer"), res.allreduce_total_ms);
    JsonLine breakdown;
    for (const auto& p : kPhases) breakdown.add(p, b.at(p));
    list.push_back(JsonLine()
                       .add("ranks", res.ranks)
                       .add("images_per_sec", res.images_per_sec)
                       .add("images_per_sec_per_rank", res.images_per_sec / res.ranks)
                       .add("efficiency", res.efficiency)
                       .add("breakdown_ms", breakdown)
                       .add("allreduce_total_ms", res.allreduce_total_ms));
  }
  j.add("bench", "scaling").add("batch", batch).add("threads_per_rank", threads).add("steps", steps);
  j.add("warmup", warmup).add("amp", args.get("--amp", "none")).add("results", list).add("run_dir", dir);
  write_file_atomic(join_path(dir, "scaling.json"), j.str() + "\n");
  write_file_atomic(join_path(dir, "scaling.svg"), scaling_svg(results));
  std::printf("written: %s, %s\n", join_path(dir, "scaling.json").c_str(), join_path(dir, "scaling.svg").c_str());
  if (json) std::printf("%s\n", j.str().c_str());
  return 0;
}

}  // namespace convoy
