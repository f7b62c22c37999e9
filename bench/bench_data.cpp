// `convoy bench data` (see bench_data.h). Drives the data service's own
// BatchProducer (the code that fills the shared-memory rings) on the train
// split as rank 0 of 1, so the figures are the pipeline's, minus the ring;
// with --data-services K, real data-service processes and this process
// reading their rings, as a training rank does.
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
#include "common/control_channel.h"
#include "common/cpu_sets.h"
#include "common/error.h"
#include "common/files.h"
#include "common/job_token.h"
#include "common/metrics.h"
#include "common/process.h"
#include "data_service/batch_producer.h"
#include "worker/data_client.h"

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
    "  --data-services K   what a training rank receives instead: K real data-service processes\n"
    "                      (each filling its shard of every batch, pinned to 1/K of the cores;\n"
    "                      --no-pin: not), their batches delivered through the shared-memory\n"
    "                      rings to this process, which reads every pixel; --threads is per\n"
    "                      service (default: cores / K)\n"
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
  // A 0 would make any memory growth look flat.
  CONVOY_USER_ERROR("bench data: /proc/self/status has no RssAnon line (Linux 4.5 or newer gives one), so memory "
                    "per epoch cannot be measured");
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
  int64_t checksum = 0;  // delivered batches: the sum of every pixel read
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

// What a training rank receives: K real `convoy data-service` processes
// (pinned as convoy launch pins K shards), their batches delivered through
// the shared-memory rings to this process, which gathers the shards'
// positions (worker/data_client.cpp) and reads every pixel, as the trainer's
// normalisation does. `config_text`: the resolved config, for the services.
// *stopped_by: the stop signal that ended it early, 0 if none.
RunResult run_services(const Config& cfg, int threads, int services, double seconds, int epochs, bool pin,
                       bool progress, int* stopped_by, std::vector<DataShardStats>* shard_rates) {
  if (job_token_from_env().empty()) ::setenv(kJobTokenEnv, generate_job_token().c_str(), 1);
  const char* tmp = std::getenv("TMPDIR");
  const std::string config_path =
      join_path(tmp && *tmp ? tmp : "/tmp", "convoy-bench-data-" + std::to_string(::getpid()) + ".pbtxt");
  write_file_atomic(config_path, cfg.resolved_text);
  const auto sockets = shard_socket_names(data_socket_name(generate_job_token().substr(0, 12)), services);
  CpuList cpus = allowed_cpus();
  const auto sets = split_cpus(cpus, numa_nodes_of(cpus), 0, services);
  StopSignals stop;  // a stop signal goes to every service, and this waits for them
  std::vector<pid_t> pids;
  for (int k = 0; k < services; ++k) {
    SpawnOptions opts;
    opts.program = self_executable();
    opts.argv = {self_path(), "data-service", config_path, "--socket", sockets[k], "--clients", "1",
                 "--threads", std::to_string(threads), "--shard", std::to_string(k), "--shards",
                 std::to_string(services)};
    if (pin) {
      opts.argv.push_back("--cpus");
      opts.argv.push_back(format_cpu_list(sets[k]));
    }
    pids.push_back(spawn(opts).pid);
    stop.add(pids.back());
  }
  struct Stopped {};
  auto alive = [&] {
    pollfd p{stop.fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & POLLIN)) {
      stop.forward();
      throw Stopped{};
    }
  };
  using Clock = std::chrono::steady_clock;
  RunResult r;
  std::string failure;
  const double cpu_start = cpu_seconds();
  try {
    DataClient client(sockets, 0, 1, 0, std::chrono::seconds(cfg.data_service.timeout_s), alive);
    const uint64_t steps = client.info().find("train")->steps_per_epoch;
    const int batch = cfg.data.batch_size;
    // One warm-up batch, not counted (the services open their data first).
    client.request("train", 0, 0, steps);
    (void)client.next("train", 0, 0).pixels.sum().item<int64_t>();
    client.shard_stats();
    auto start = Clock::now(), last_print = start;
    uint64_t step = 1;
    for (uint32_t epoch = 0;; ++epoch, step = 0) {
      if (epoch > 0) client.request("train", epoch, 0, steps);
      bool done = false;
      for (; step < steps; ++step) {
        const Batch b = client.next("train", epoch, step);
        r.checksum += b.pixels.sum().item<int64_t>();  // every byte read
        r.images += batch - static_cast<int64_t>(b.header.invalid);
        r.corrupt += b.header.errors;
        ++r.steps;
        const auto now = Clock::now();
        r.seconds = std::chrono::duration<double>(now - start).count();
        if (progress && now - last_print > std::chrono::milliseconds(250)) {
          last_print = now;
          std::printf("\rbench data: epoch %u, %.1f s, %.0f images/s delivered   ", epoch, r.seconds,
                      r.images / r.seconds);
          std::fflush(stdout);
        }
        if (epochs == 0 && r.seconds >= seconds) {
          done = true;
          break;
        }
      }
      if (done || (epochs > 0 && static_cast<int>(epoch) + 1 >= epochs)) break;
    }
    *shard_rates = client.shard_stats();
  } catch (const Stopped&) {
  } catch (const std::exception& e) {
    failure = e.what();
  }
  // The client has gone: each service leaves once its only client has.
  for (pid_t pid : pids) {
    const int status = stop.wait(pid);
    if (failure.empty() && !stop.signal() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
      failure = CONVOY_STR("a data-service process (pid " << pid << ") failed: " << describe_exit(status));
  }
  remove_socket_files(sockets);
  std::remove(config_path.c_str());
  if (progress) std::printf("\r%60s\r", "");
  *stopped_by = stop.signal();
  if (!failure.empty() && !*stopped_by) CONVOY_USER_ERROR("bench data: " << failure);
  rusage children{};
  ::getrusage(RUSAGE_CHILDREN, &children);
  r.cpu = cpu_seconds() - cpu_start + children.ru_utime.tv_sec + children.ru_utime.tv_usec * 1e-6 +
          children.ru_stime.tv_sec + children.ru_stime.tv_usec * 1e-6;
  r.peak_rss_mb = std::max(peak_rss_mb(), children.ru_maxrss / 1024.0);
  return r;
}

// The JSON object's common keys.
JsonLine result_json(const Config& cfg, const std::string& source, double ips, int total_threads, int services,
                     int threads, const RunResult& r) {
  JsonLine j;
  j.add("bench", "data").add("source", source).add("images_per_sec", ips).add("images_per_sec_per_thread", ips / total_threads);
  j.add("threads", total_threads).add("data_services", services).add("threads_per_service", threads);
  j.add("cpu_seconds_per_image", r.cpu / std::max<int64_t>(r.images, 1)).add("peak_rss_mb", r.peak_rss_mb);
  j.add("images", r.images).add("seconds", r.seconds).add("batch", cfg.data.batch_size);
  j.add("crop", cfg.data.image.height).add("crop_aware_decode", cfg.data_service.crop_aware_decode);
  j.add("fast_idct", cfg.data_service.fast_idct).add("corrupt", static_cast<int64_t>(r.corrupt));
  return j;
}

// --data-services K: run_services, and what it measured.
int report_delivered(const Config& cfg, const std::string& source, int threads, int services, double seconds,
                     int epochs, bool json, bool pin) {
  int stopped_by = 0;
  std::vector<DataShardStats> rates;
  const RunResult r = run_services(cfg, threads, services, seconds, epochs, pin, ::isatty(1) && !json, &stopped_by,
                                   &rates);
  if (stopped_by) {
    std::fprintf(stderr, "bench data: stopped by signal %d; its %d data-service process(es) have ended\n", stopped_by,
                 services);
    return 128 + stopped_by;
  }
  const int total_threads = threads * services;
  const double ips = r.images / std::max(r.seconds, 1e-9);
  std::printf("bench data: %.0f images/s delivered through the rings of %d data service(s) x %d decode thread(s) "
              "(%.0f per thread), every pixel read here; %.2f ms CPU per image (services and reader); peak RSS "
              "%.0f MB per process; %ld images in %.1f s; %lu corrupt\n",
              ips, services, threads, ips / total_threads, 1e3 * r.cpu / std::max<int64_t>(r.images, 1), r.peak_rss_mb,
              static_cast<long>(r.images), r.seconds, static_cast<unsigned long>(r.corrupt));
  std::vector<JsonLine> per_shard;
  for (const auto& st : rates) {
    std::printf("bench data: shard %d: fills %.0f images/s (its positions, while filling)\n", st.shard,
                st.images_per_sec);
    per_shard.push_back(JsonLine().add("shard", static_cast<int64_t>(st.shard)).add("images_per_sec", st.images_per_sec));
  }
  if (json) {
    JsonLine j = result_json(cfg, source, ips, total_threads, services, threads, r);
    j.add("delivered", true).add("pixel_sum", r.checksum).add("shards", per_shard);
    std::printf("%s\n", j.str().c_str());
  }
  return 0;
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
  if (args.has("--data-services")) return report_delivered(cfg, source, threads, services, seconds, epochs, json,
                                                            !args.has("--no-pin"));
  const RunResult r = run_producer(cfg, threads, 0, 1, seconds, epochs, ::isatty(1) && !json);
  const double ips = r.images / r.seconds;
  std::printf("bench data: %.0f images/s with %d thread(s) = %.0f images/s per thread; %.2f ms CPU per image; "
              "peak RSS %.0f MB; %ld images in %.1f s; %lu corrupt\n",
              ips, threads, ips / threads, 1e3 * r.cpu / r.images, r.peak_rss_mb, static_cast<long>(r.images),
              r.seconds, static_cast<unsigned long>(r.corrupt));
  if (json) {
    JsonLine j = result_json(cfg, source, ips, threads, 1, threads, r);
    j.add("delivered", false).add("rss_anon_mb_by_epoch", r.rss_by_epoch);
    std::printf("%s\n", j.str().c_str());
  }
  return 0;
}

}  // namespace convoy
