// `convoy bench data` (see bench_data.h). Drives the data service's own
// BatchProducer (the code that fills the shared-memory rings) on the train
// split as rank 0 of 1, so the figures are the pipeline's, minus the ring.
#include "data_service/bench_data.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "common/cli_args.h"
#include "common/config.h"
#include "common/error.h"
#include "common/files.h"
#include "common/metrics.h"
#include "data_service/batch_producer.h"

namespace convoy {
namespace {

constexpr const char* kUsage =
    "usage: convoy bench data (CONFIG | --image-folder DIR | --shards DIR) [--crop 224] [--threads N]\n"
    "                         [--batch 64] [--seconds 10] [--epochs E] [--json] [--full-decode]\n"
    "                         [--accurate-idct] [--set field=value ...]\n"
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

}  // namespace

int bench_data_main(const std::vector<std::string>& argv) {
  CliArgs args("bench data", kUsage);
  args.option("--image-folder").option("--shards").option("--crop").option("--threads").option("--batch");
  args.option("--seconds").option("--epochs").option("--set", true);
  args.flag("--json").flag("--full-decode").flag("--accurate-idct");
  if (!args.parse(argv)) return 0;
  std::string source;
  Config cfg = bench_config(args, args.all("--set"), &source);
  int threads = args.get_int("--threads", cfg.data_service.decode_threads);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const double seconds = std::stod(args.get("--seconds", "10"));
  const int epochs = args.get_int("--epochs", 0);
  const bool json = args.has("--json");

  BatchProducer producer(cfg, open_datasets(cfg.data), threads);
  const int split = producer.split_index("train");
  const uint64_t steps = steps_per_epoch(producer.shard_spec(split, 1));
  const BatchLayout layout = producer.layout();
  std::vector<uint8_t> slot(sizeof(SlotHeader) + layout.payload_bytes());
  std::printf("bench data: %s: %zu images, %dx%dx%d, batch %d, %d decode thread(s), crop-aware decode %s, %s IDCT\n",
              source.c_str(), producer.data().splits[split].second->size(), layout.channels, layout.height,
              layout.width, layout.batch, threads, cfg.data_service.crop_aware_decode ? "on" : "off",
              cfg.data_service.fast_idct ? "fast" : "accurate");
  std::fflush(stdout);

  // Warm-up: one batch (first touches of files and buffers), not counted.
  producer.fill(split, 0, 0, 0, 1, slot.data());
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const double cpu_start = cpu_seconds();
  const bool tty = ::isatty(1) && !json;
  auto last_print = start;
  int64_t images = 0;
  std::vector<double> rss_by_epoch;
  double elapsed = 0;
  uint64_t step = 1;
  for (uint32_t epoch = 0;; ++epoch, step = 0) {
    bool stop = false;
    for (; step < steps; ++step) {
      producer.fill(split, epoch, step, 0, 1, slot.data());
      images += layout.batch;
      auto now = Clock::now();
      elapsed = std::chrono::duration<double>(now - start).count();
      if (tty && now - last_print > std::chrono::milliseconds(250)) {
        last_print = now;
        std::printf("\rbench data: epoch %u, %.1f s, %.0f images/s   ", epoch, elapsed, images / elapsed);
        std::fflush(stdout);
      }
      if (epochs == 0 && elapsed >= seconds) {
        stop = true;
        break;
      }
    }
    if (!stop) rss_by_epoch.push_back(rss_anon_mb());
    if (stop || (epochs > 0 && static_cast<int>(epoch) + 1 >= epochs)) break;
  }
  const double cpu = cpu_seconds() - cpu_start;
  if (tty) std::printf("\r%60s\r", "");
  const double ips = images / elapsed;
  std::printf("bench data: %.0f images/s with %d thread(s) = %.0f images/s per thread; %.2f ms CPU per image; "
              "peak RSS %.0f MB; %ld images in %.1f s; %lu corrupt\n",
              ips, threads, ips / threads, 1e3 * cpu / images, peak_rss_mb(), static_cast<long>(images), elapsed,
              static_cast<unsigned long>(producer.total_errors()));
  if (json) {
    JsonLine j;
    j.add("bench", "data").add("source", source).add("images_per_sec", ips).add("images_per_sec_per_thread", ips / threads);
    j.add("threads", threads).add("cpu_seconds_per_image", cpu / images).add("peak_rss_mb", peak_rss_mb());
    j.add("images", static_cast<int64_t>(images)).add("seconds", elapsed).add("batch", layout.batch);
    j.add("crop", layout.height).add("crop_aware_decode", cfg.data_service.crop_aware_decode);
    j.add("fast_idct", cfg.data_service.fast_idct).add("corrupt", static_cast<int64_t>(producer.total_errors()));
    j.add("rss_anon_mb_by_epoch", rss_by_epoch);
    std::printf("%s\n", j.str().c_str());
  }
  return 0;
}

}  // namespace convoy
