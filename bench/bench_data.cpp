// `convoy bench data` (see bench_data.h). Drives the data service's own
// BatchProducer (the code that fills the shared-memory rings) on the train
// split as rank 0 of 1, so the figures are the pipeline's, minus the ring.
#include "bench/bench_data.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/cli_args.h"
#include "common/config.h"
#include "common/cpu_sets.h"
#include "common/error.h"
#include "common/files.h"
#include "common/metrics.h"
#include "common/process.h"
#include "data_service/batch_producer.h"

namespace convoy {
namespace {

constexpr const char* kUsage =
    "usage: convoy bench data (CONFIG | --image-folder DIR | --shards DIR) [--crop 224] [--threads N]\n"
    "                         [--batch 64] [--seconds 10] [--epochs E] [--json] [--full-decode]\n"
    "                         [--accurate-idct] [--data-services K] [--no-pin] [--set field=value ...]\n"
    "Runs the training input pipeline alone (read, decode, random-resized-crop, flip, uint8 CHW\n"
    "batches) on N decode threads and reports images/s, CPU time per image and peak memory.\n"
    "  --image-folder DIR  DIR/<class>/*.jpg, with random-resized-crop (scale 0.08-1) + flip\n"
    "  --shards DIR        a folder made by convoy pack, same pipeline\n"
    "  CONFIG              a training config: its dataset, train augmentation and decode options\n"
    "  --threads N         decode threads (default: data_service.decode_threads, else all cores)\n"
    "  --seconds S         how long to measure, after one warm-up batch (default 10)\n"
    "  --epochs E          run exactly E epochs instead (RSS is sampled after each)\n"
    "  --full-decode       decode whole JPEGs (the baseline) instead of only the crop\n"
    "  --accurate-idct     libjpeg's accurate IDCT and fancy upsampling instead of the fast ones\n"
    "  --data-services K   K producer processes, each filling its shard of every batch, as K\n"
    "                      data-service processes would; each pinned to 1/K of the cores\n"
    "                      (--no-pin: not); --threads is per process (default: cores / K)\n"
    "  --json              end with one JSON object (images_per_sec, images_per_sec_per_thread,\n"
    "                      threads, cpu_seconds_per_image, peak_rss_mb, ...)\n"
    "example: convoy bench data --image-folder bench-data/imagenet-like --threads 1 --seconds 20\n";

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

double peak_rss_mb() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;  // KiB on Linux
}

// Anonymous resident memory (heap, buffers): what would grow on a leak.
// Mapped shards count as file pages, which the kernel can drop.
double rss_anon_mb() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("RssAnon:", 0) == 0) return std::atof(line.c_str() + 8) / 1024.0;
  return 0;
}

std::string real_path(const std::string& p) {
  char* r = ::realpath(p.c_str(), nullptr);
  if (!r) CONVOY_USER_ERROR(p << " does not exist");
  std::string out = r;
  std::free(r);
  return out;
}

Config bench_config(const CliArgs& args, std::vector<std::string> sets, std::string* source) {
  if (args.has("--crop")) {
    sets.push_back("data.image.height=" + args.get("--crop"));
    sets.push_back("data.image.width=" + args.get("--crop"));
  }
  if (args.has("--batch")) sets.push_back("data.batch_size=" + args.get("--batch"));
  if (args.has("--full-decode")) sets.push_back("data_service.crop_aware_decode=false");
  if (args.has("--accurate-idct")) sets.push_back("data_service.fast_idct=false");
  int sources = static_cast<int>(args.positional().size()) + args.has("--image-folder") + args.has("--shards");
  if (sources != 1) CONVOY_USER_ERROR("give exactly one of CONFIG, --image-folder DIR, --shards DIR (see --help)");
  if (!args.positional().empty()) {
    *source = args.positional()[0];
    return load_config(*source, sets);
  }
  bool folder = args.has("--image-folder");
  *source = real_path(args.get(folder ? "--image-folder" : "--shards"));
  std::string text = std::string("name: \"bench-data\" data { ") + (folder ? "image_folder { root: \"" : "shards { train: \"") +
                     *source +
                     "\" } val_fraction: 0 train_augment { random_resized_crop: true horizontal_flip: true } }";
  return parse_config(text, "convoy bench data", sets);
}

// What one producer process measured.
struct RunResult {
  int64_t images = 0;  // positions this shard filled
  int64_t steps = 0;   // batches it did its part of
  double seconds = 0, cpu = 0, peak_rss_mb = 0;
  uint64_t corrupt = 0;
  std::vector<double> rss_by_epoch;
};

// Fills batches (shard `shard` of `shards` of each) for `seconds`, or for
// exactly `epochs` epochs when that is > 0, after one warm-up batch.
RunResult run_producer(const Config& cfg, int threads, int shard, int shards, double seconds, int epochs,
                       bool progress) {
  BatchProducer producer(cfg, open_datasets(cfg.data), threads);
  const int split = producer.split_index("train");
  const uint64_t steps = steps_per_epoch(producer.shard_spec(split, 1));
  const BatchLayout layout = producer.layout();
  std::vector<uint8_t> slot(sizeof(SlotHeader) + layout.payload_bytes());
  producer.fill(split, 0, 0, 0, 1, slot.data(), shard, shards);  // warm-up, not counted
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const double cpu_start = cpu_seconds();
  auto last_print = start;
  RunResult r;
  uint64_t step = 1;
  for (uint32_t epoch = 0;; ++epoch, step = 0) {
    bool stop = false;
    for (; step < steps; ++step) {
      r.images += producer.fill(split, epoch, step, 0, 1, slot.data(), shard, shards).filled;
      ++r.steps;
      auto now = Clock::now();
      r.seconds = std::chrono::duration<double>(now - start).count();
      if (progress && now - last_print > std::chrono::milliseconds(250)) {
        last_print = now;
        std::printf("\rbench data: epoch %u, %.1f s, %.0f images/s   ", epoch, r.seconds, r.images / r.seconds);
        std::fflush(stdout);
      }
      if (epochs == 0 && r.seconds >= seconds) {
        stop = true;
        break;
      }
    }
    if (!stop) r.rss_by_epoch.push_back(rss_anon_mb());
    if (stop || (epochs > 0 && static_cast<int>(epoch) + 1 >= epochs)) break;
  }
  r.cpu = cpu_seconds() - cpu_start;
  r.peak_rss_mb = peak_rss_mb();
  r.corrupt = producer.total_errors();
  if (progress) std::printf("\r%60s\r", "");
  return r;
}

// K producer processes, as K data-service shards would run: each pinned to
// its share of the cores, each filling its positions of the same batches.
// A child reports its figures on a pipe as one line of numbers.
// *stopped_by: the stop signal that ended them early, 0 if none.
std::vector<RunResult> run_shards(const Config& cfg, int threads, int shards, double seconds, int epochs, bool pin,
                                  int* stopped_by) {
  CpuList cpus = allowed_cpus();
  auto sets = split_cpus(cpus, numa_nodes_of(cpus), 0, shards);
  std::vector<std::pair<pid_t, int>> children;
  StopSignals stop;  // a stop signal goes to every shard, and this waits for them
  for (int k = 0; k < shards; ++k) {
    int fds[2];
    CONVOY_SYSCALL(::pipe2(fds, O_CLOEXEC));
    const pid_t parent = ::getpid();
    pid_t pid = CONVOY_SYSCALL(::fork());
    if (pid == 0) {
      become_child(parent, SIGTERM);
      ::close(fds[0]);
      int rc = 0;
      try {
        if (pin) pin_to(sets[k]);
        RunResult r = run_producer(cfg, threads, k, shards, seconds, epochs, false);
        std::string line = CONVOY_STR(r.images << " " << r.steps << " " << r.seconds << " " << r.cpu << " "
                                               << r.peak_rss_mb << " " << r.corrupt << "\n");
        if (::write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) rc = 1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench data: shard %d: %s\n", k, e.what());
        rc = 1;
      }
      ::_exit(rc);
    }
    ::close(fds[1]);
    children.push_back({pid, fds[0]});
    stop.add(pid);
  }
  std::vector<RunResult> out;
  std::string failure;
  for (auto [pid, fd] : children) {
    std::string text;
    char buf[256];
    for (;;) {
      pollfd p[2] = {{fd, POLLIN, 0}, {stop.fd(), POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 && errno != EINTR) CONVOY_SYSCALL(-1);
      if (p[1].revents & POLLIN) stop.forward();
      if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    int status = stop.wait(pid);
    RunResult r;
    std::istringstream in(text);
    if (!(in >> r.images >> r.steps >> r.seconds >> r.cpu >> r.peak_rss_mb >> r.corrupt) && failure.empty())
      failure = CONVOY_STR("a shard process (pid " << pid << ") failed: " << describe_exit(status));
    out.push_back(r);
  }
  *stopped_by = stop.signal();
  if (!failure.empty() && !*stopped_by) CONVOY_USER_ERROR(failure);
  return out;
}

}  // namespace

int bench_data_main(const std::vector<std::string>& argv) {
  CliArgs args("bench data", kUsage);
  args.option("--image-folder").option("--shards").option("--crop").option("--threads").option("--batch");
  args.option("--seconds").option("--epochs").option("--set", true).option("--data-services");
  args.flag("--json").flag("--full-decode").flag("--accurate-idct").flag("--no-pin");
  if (!args.parse(argv)) return 0;
  std::string source;
  Config cfg = bench_config(args, args.all("--set"), &source);
  const int services = args.get_int("--data-services", 1);
  if (services < 1 || services > 64) CONVOY_USER_ERROR("--data-services must be in 1..64");
  int threads = args.get_int("--threads", cfg.data_service.decode_threads);
  if (threads <= 0)
    threads = std::max(1, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) / services);
  const double seconds = std::stod(args.get("--seconds", "10"));
  const int epochs = args.get_int("--epochs", 0);
  const bool json = args.has("--json");
  {
    // The data set is opened here once for the banner (and to fail early).
    auto data = open_datasets(cfg.data);
    const auto& img = cfg.data.image;
    std::printf("bench data: %s: %zu images, %dx%dx%d, batch %d, %d service process(es) x %d decode thread(s), "
                "crop-aware decode %s, %s IDCT\n",
                source.c_str(), data.find("train")->size(), img.channels, img.height, img.width, cfg.data.batch_size,
                services, threads, cfg.data_service.crop_aware_decode ? "on" : "off",
                cfg.data_service.fast_idct ? "fast" : "accurate");
    std::fflush(stdout);
  }
  std::vector<RunResult> shards;
  if (services == 1) {
    shards.push_back(run_producer(cfg, threads, 0, 1, seconds, epochs, ::isatty(1) && !json));
  } else {
    int stopped_by = 0;
    shards = run_shards(cfg, threads, services, seconds, epochs, !args.has("--no-pin"), &stopped_by);
    if (stopped_by) {
      std::fprintf(stderr, "bench data: stopped by signal %d; its %d shard process(es) have ended\n", stopped_by,
                   services);
      return 128 + stopped_by;
    }
  }

  // Whole batches: every shard must have done its part of a step for it to count.
  int64_t steps = shards[0].steps, images = 0;
  double elapsed = 0, cpu = 0, peak = 0;
  uint64_t corrupt = 0;
  for (const auto& r : shards) {
    steps = std::min(steps, r.steps);
    images += r.images;
    elapsed = std::max(elapsed, r.seconds);
    cpu += r.cpu;
    peak = std::max(peak, r.peak_rss_mb);
    corrupt += r.corrupt;
  }
  const int total_threads = threads * services;
  const double ips = services == 1 ? images / elapsed : static_cast<double>(steps) * cfg.data.batch_size / elapsed;
  std::printf("bench data: %.0f images/s with %d thread(s) = %.0f images/s per thread; %.2f ms CPU per image; "
              "peak RSS %.0f MB%s; %ld images in %.1f s; %lu corrupt\n",
              ips, total_threads, ips / total_threads, 1e3 * cpu / images, peak, services > 1 ? " per process" : "",
              static_cast<long>(images), elapsed, static_cast<unsigned long>(corrupt));
  std::vector<JsonLine> per_shard;
  for (size_t k = 0; services > 1 && k < shards.size(); ++k) {
    double rate = shards[k].images / std::max(shards[k].seconds, 1e-9);
    std::printf("bench data: shard %zu: %.0f images/s (%ld images, %.2f ms CPU per image)\n", k, rate,
                static_cast<long>(shards[k].images), 1e3 * shards[k].cpu / std::max<int64_t>(shards[k].images, 1));
    per_shard.push_back(JsonLine().add("shard", static_cast<int64_t>(k)).add("images_per_sec", rate));
  }
  if (json) {
    JsonLine j;
    j.add("bench", "data").add("source", source).add("images_per_sec", ips).add("images_per_sec_per_thread", ips / total_threads);
    j.add("threads", total_threads).add("data_services", services).add("threads_per_service", threads);
    j.add("cpu_seconds_per_image", cpu / images).add("peak_rss_mb", peak);
    j.add("images", static_cast<int64_t>(images)).add("seconds", elapsed).add("batch", cfg.data.batch_size);
    j.add("crop", cfg.data.image.height).add("crop_aware_decode", cfg.data_service.crop_aware_decode);
    j.add("fast_idct", cfg.data_service.fast_idct).add("corrupt", static_cast<int64_t>(corrupt));
    j.add("rss_anon_mb_by_epoch", shards[0].rss_by_epoch).add("shards", per_shard);
    std::printf("%s\n", j.str().c_str());
  }
  return 0;
}

}  // namespace convoy
