// `convoy bench allreduce` (see bench_allreduce.h): nccl-tests' all_reduce_perf
// for Convoy's c10d group, or for its shared-memory gradient all-reduce
// (--transport shm, ShmAllreduce). For each message size, after warm-up, the
// mean time of an all-reduce (sum, float32) and the bandwidths nccl-tests
// reports:
//   algbw = bytes / time;  busbw = algbw * 2 (n - 1) / n
// (busbw is what each rank's link carries in a ring all-reduce, comparable
// across world sizes).
#include "bench/bench_allreduce.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "common/cli_args.h"
#include "common/config.h"
#include "common/error.h"
#include "common/job_token.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/process.h"
#include "worker/dist/device.h"
#include "worker/dist/rendezvous.h"
#include "worker/dist/shm_allreduce.h"

namespace convoy {
namespace {

constexpr const char* kUsage =
    "usage: convoy bench allreduce [--ranks N] [--min-bytes 1KB] [--max-bytes 256MB] [--iters 20]\n"
    "                              [--warmup 5] [--device auto|cpu|cuda] [--transport c10d|shm] [--json]\n"
    "All-reduce (sum, float32) time and bandwidth per message size, doubling from --min-bytes to\n"
    "--max-bytes, like nccl-tests: algbw = bytes/time, busbw = algbw x 2(n-1)/n; then each size is\n"
    "checked (rank r contributes r+1 everywhere; every element must be n(n+1)/2, else exit 1).\n"
    "CPU tensors go through Gloo, CUDA tensors (GPU = local rank) through NCCL; --transport shm\n"
    "sends CPU tensors through the shared-memory all-reduce that training uses for ranks on one\n"
    "host (distributed.grad_transport). Runs as the ranks\n"
    "of mpirun (mpirun -np 4 convoy bench allreduce) or of RANK/WORLD_SIZE/MASTER_* in the\n"
    "environment; started plainly, it starts --ranks (default 2) local ranks itself.\n"
    "example: convoy bench allreduce --ranks 2 --max-bytes 64MB --json\n";

uint64_t parse_bytes(const std::string& s, const char* what) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(s, &pos);
  } catch (const std::exception&) {
    CONVOY_USER_ERROR(what << ": '" << s << "' is not a size (e.g. 1KB, 256MB)");
  }
  std::string unit = s.substr(pos);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double mult = unit.empty() || unit == "B" ? 1 : unit == "KB" || unit == "K" ? 1024.0 : unit == "MB" || unit == "M" ? 1048576.0
                : unit == "GB" || unit == "G" ? 1073741824.0 : -1;
  if (mult < 0 || v <= 0) CONVOY_USER_ERROR(what << ": '" << s << "' is not a size (e.g. 1KB, 256MB)");
  return static_cast<uint64_t>(v * mult);
}

std::string human(uint64_t bytes) {
  char buf[32];
  if (bytes >= (1u << 20)) std::snprintf(buf, sizeof buf, "%llu MB", static_cast<unsigned long long>(bytes >> 20));
  else if (bytes >= 1024) std::snprintf(buf, sizeof buf, "%llu KB", static_cast<unsigned long long>(bytes >> 10));
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  return buf;
}

// Started without ranks around it: start `ranks` copies of this command as
// the ranks of one local group and wait for them.
int run_local_ranks(const std::vector<std::string>& argv, int ranks) {
  int port = free_local_port();
  const std::string token = generate_job_token();
  std::vector<pid_t> pids;
  StopSignals stop;
  for (int r = 0; r < ranks; ++r) {
    SpawnOptions opts;
    opts.program = self_executable();
    opts.argv = {self_path(), "bench", "allreduce"};
    opts.argv.insert(opts.argv.end(), argv.begin(), argv.end());
    opts.env = {{"RANK", std::to_string(r)},        {"WORLD_SIZE", std::to_string(ranks)},
                {"LOCAL_RANK", std::to_string(r)},  {"LOCAL_WORLD_SIZE", std::to_string(ranks)},
                {"MASTER_ADDR", "127.0.0.1"},       {"MASTER_PORT", std::to_string(port)},
                {kJobTokenEnv, token}};
    pids.push_back(spawn(opts).pid);
    stop.add(pids.back());
  }
  int rc = 0;
  for (pid_t pid : pids) {
    int status = stop.wait(pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
  }
  return stop.signal() ? 128 + stop.signal() : rc;
}

}  // namespace

int bench_allreduce_main(const std::vector<std::string>& argv) {
  CliArgs args("bench allreduce", kUsage);
  args.option("--ranks").option("--min-bytes").option("--max-bytes").option("--iters").option("--warmup");
  args.option("--timeout-s").option("--device").option("--transport").flag("--json");
  if (!args.parse(argv)) return 0;
  const uint64_t lo = parse_bytes(args.get("--min-bytes", "1KB"), "--min-bytes");
  const uint64_t hi = parse_bytes(args.get("--max-bytes", "256MB"), "--max-bytes");
  const int iters = args.get_int("--iters", 20), warmup = args.get_int("--warmup", 5);
  if (lo < 4 || hi < lo || iters < 1 || warmup < 0) CONVOY_USER_ERROR("need 4 <= --min-bytes <= --max-bytes, --iters >= 1");
  const GradTransport transport = parse_choice<GradTransport>(args.get("--transport", "c10d"), "--transport");
  if (transport == GradTransport::kAuto) CONVOY_USER_ERROR("--transport: c10d or shm (a benchmark measures one)");
  RankInfo info = rank_info_from_env();
  const bool has_ranks = std::getenv("RANK") || info.under_mpi;
  if (!has_ranks) {
    int ranks = args.get_int("--ranks", 2);
    if (ranks < 1 || ranks > 256) CONVOY_USER_ERROR("--ranks must be in 1..256");
    return run_local_ranks(argv, ranks);
  }
  init_logging("bench", info.rank);
  Config cfg;
  cfg.distributed.timeout_s = args.get_int("--timeout-s", 300);
  auto runtime = make_device_runtime(parse_choice<DeviceKind>(args.get("--device", "auto"), "--device"), info.local_rank);
  auto dist = Distributed::connect(info, cfg, *runtime);
  const int n = dist->world_size();
  auto group = dist->group();
  const bool json = args.has("--json");
  const bool cuda = runtime->device().is_cuda();
  const bool shm = transport == GradTransport::kShm && n > 1;
  if (shm) {
    if (cuda) CONVOY_USER_ERROR("--transport shm sums CPU tensors; add --device cpu");
    cfg.distributed.grad_transport = GradTransport::kShm;
    dist->connect_local_allreduce(cfg, dist->share("shm_name", "/convoy-bench-" + std::to_string(::getpid()) + "-allreduce"));
  }
  auto local = dist->local_allreduce();
  const char* backend = !group ? "(single process)" : shm ? "shared memory" : cuda ? "c10d NCCL" : "c10d Gloo";
  if (dist->rank() == 0) {
    std::printf("bench allreduce: %d rank(s), %s on %s, float32 sum, %d warm-up + up to %d timed per size\n", n,
                backend, runtime->describe().c_str(), warmup, iters);
    std::printf("%12s %12s %12s %12s %12s %6s\n", "size", "count", "time (us)", "algbw GB/s", "busbw GB/s", "check");
    std::fflush(stdout);
  }
  std::vector<JsonLine> results;
  for (uint64_t bytes = lo; bytes <= hi; bytes *= 2) {
    const int64_t count = static_cast<int64_t>(bytes / 4);
    std::vector<at::Tensor> t = {torch::ones({count}, torch::TensorOptions(torch::kFloat32).device(runtime->device()))};
    // Large messages: fewer iterations, about 2 GB moved per size at most.
    const int timed = std::max(2, static_cast<int>(std::min<uint64_t>(iters, (2ull << 30) / bytes)));
    // On CUDA, wait() only orders the current stream after NCCL's; the
    // device is synchronised before the clock is read.
    auto once = [&] {
      if (!group || n == 1) return;
      if (local) return local->allreduce_now(t[0]);
      if (!group->allreduce(t)->wait(std::chrono::seconds(cfg.distributed.timeout_s)))
        throw TimeoutError(CONVOY_STR("all-reduce of " << human(bytes) << " timed out"));
    };
    for (int i = 0; i < warmup; ++i) once();
    runtime->synchronize();
    dist->barrier("bench allreduce");
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < timed; ++i) once();
    runtime->synchronize();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / timed;
    // Correctness: a sum every rank can predict.
    t[0].fill_(static_cast<double>(dist->rank() + 1));
    once();
    const double want = n * (n + 1) / 2.0;
    const bool correct = (t[0] == want).all().item<bool>();
    if (!correct)
      throw Error(CONVOY_STR("rank " << dist->rank() << ": all-reduce of " << human(bytes) << " is wrong: expected "
                                     << want << " everywhere, found values from " << t[0].min().item<double>()
                                     << " to " << t[0].max().item<double>()));
    double algbw = bytes / seconds / 1e9, busbw = algbw * 2.0 * (n - 1) / n;
    if (dist->rank() == 0) {
      std::printf("%12s %12lld %12.1f %12.3f %12.3f %6s\n", human(bytes).c_str(), static_cast<long long>(count),
                  seconds * 1e6, algbw, busbw, "ok");
      std::fflush(stdout);
      results.push_back(JsonLine()
                            .add("bytes", static_cast<int64_t>(bytes))
                            .add("count", count)
                            .add("time_us", seconds * 1e6)
                            .add("algbw_gbps", algbw)
                            .add("busbw_gbps", busbw));
    }
    if (bytes > hi / 2) break;  // no overflow past the largest size
  }
  if (dist->rank() == 0 && json) {
    JsonLine j;
    j.add("bench", "allreduce").add("ranks", n).add("backend", shm ? "shm" : cuda ? "nccl" : "gloo");
    j.add("algorithm", shm    ? "Convoy ShmAllreduce (each rank sums 1/n of every piece in one shared segment)"
                       : cuda ? "c10d ProcessGroupNCCL allreduce (NCCL picks ring or tree per size)"
                              : "c10d ProcessGroupGloo allreduce (Gloo's default for CPU tensors)");
    j.add("device", runtime->describe()).add("dtype", "float32").add("correct", true).add("results", results);
    std::printf("%s\n", j.str().c_str());
  }
  dist->barrier("bench allreduce end");
  return 0;
}

}  // namespace convoy
