// `convoy predict --checkpoint C IMAGE... | DIR`: each image through the
// training run's own evaluation transform (data_service's decode, resize,
// center crop), the model in batches, softmax, top-K with the checkpoint's
// class names. Decoding the next batch on a thread pool overlaps the
// model's forward pass on the current one. --device: the CPU or a CUDA GPU
// (models/device_choice.h).
#include "inference/predict.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <thread>

#include "common/cli_args.h"
#include "common/error.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "data_service/dataset.h"
#include "data_service/image_decode.h"
#include "data_service/thread_pool.h"
#include "inference/checkpoint_model.h"
#include "inference/predict_masks.h"
#include "models/models.h"
#include "models/device_choice.h"
#include "models/torch_errors.h"

namespace convoy {
namespace {

// One batch of decoded images; error[i] is non-empty when image i failed.
struct DecodedBatch {
  size_t first = 0, count = 0;
  torch::Tensor pixels;  // uint8 (count, C, H, W)
  std::vector<std::string> error;
};

class BatchDecoder {
 public:
  BatchDecoder(const Config& cfg, std::vector<std::string> paths, int threads)
      : pool_(threads), image_(cfg.data.image) {
    FileList files;
    files.paths = std::move(paths);
    files.labels.assign(files.paths.size(), 0);
    ds_ = make_file_dataset(std::move(files));
    spec_.out = cfg.data.image;
    spec_.augment = cfg.data.train_augment;
    spec_.train = false;
    spec_.eval_resize_ratio = cfg.data.eval_resize_ratio;
    opt_.crop_aware = cfg.data_service.crop_aware_decode;
    opt_.fast_idct = cfg.data_service.fast_idct;
  }
  size_t size() const { return ds_->size(); }
  DecodedBatch decode(size_t first, size_t count) {
    DecodedBatch b;
    b.first = first;
    b.count = count;
    b.pixels = torch::empty({static_cast<int64_t>(count), image_.channels, image_.height, image_.width}, torch::kUInt8);
    b.error.assign(count, "");
    uint8_t* base = b.pixels.data_ptr<uint8_t>();
    pool_.parallel_for(count, [&](size_t i) {
      SampleRng rng(0);  // evaluation transforms draw no random numbers
      try {
        decode_transform(*ds_, first + i, spec_, opt_, rng, base + i * image_.bytes());
      } catch (const DecodeError& e) {
        b.error[i] = e.what();
        std::fill_n(base + i * image_.bytes(), image_.bytes(), 0);
      }
    });
    return b;
  }

 private:
  ThreadPool pool_;
  ImageSpec image_;
  std::shared_ptr<const Dataset> ds_;
  TransformSpec spec_;
  DecodeOptions opt_;
};

// Folders are searched (sorted, recursively); an image's outputs are named
// by its path below the folder, or by its stem when it was named itself.
std::vector<PredictInput> collect_images(const std::vector<std::string>& inputs) {
  std::vector<PredictInput> out;
  auto stem = [](const std::string& rel) {
    const auto dot = rel.find_last_of('.');
    const auto slash = rel.find_last_of('/');
    return dot == std::string::npos || (slash != std::string::npos && dot < slash) ? rel : rel.substr(0, dot);
  };
  for (const auto& in : inputs) {
    if (is_directory(in)) {
      auto found = list_images(in);
      if (found.empty()) spdlog::warn("{}: no .jpg/.jpeg/.png files", in);
      const std::string root = in.back() == '/' ? in : in + "/";
      for (auto& f : found)
        out.push_back({f, stem(f.rfind(root, 0) == 0 ? f.substr(root.size()) : basename_of(f))});
    } else if (path_exists(in)) {
      out.push_back({in, stem(basename_of(in))});
    } else {
      CONVOY_USER_ERROR(in << " does not exist");
    }
  }
  if (out.empty()) CONVOY_USER_ERROR("no images to predict");
  return out;
}

int run_predict(const CliArgs& args) {
  if (!args.has("--checkpoint")) CONVOY_USER_ERROR("convoy predict needs --checkpoint CKPT");
  const int topk_wanted = args.get_int("--topk", 5), batch = args.get_int("--batch", 64);
  if (topk_wanted < 1) CONVOY_USER_ERROR("--topk must be >= 1");
  if (batch < 1) CONVOY_USER_ERROR("--batch must be >= 1");
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int threads = args.get_int("--threads", cores);
  if (threads < 1) CONVOY_USER_ERROR("--threads must be >= 1");
  const bool json = args.has("--json");
  const auto inputs = collect_images(args.positional());
  CheckpointModel m = load_checkpoint_model(args.get("--checkpoint"));
  torch::set_num_threads(threads);
  const torch::Device device = choose_device(parse_choice<DeviceKind>(args.get("--device", "auto"), "--device"));
  if (is_segmentation_arch(m.config.model.arch)) {
    if (!args.has("--out"))
      CONVOY_USER_ERROR("convoy predict: " << args.get("--checkpoint") << " is a segmentation model; give --out DIR "
                                           << "for its masks");
    return predict_masks(m, inputs, args.get("--out"), args.has("--overlay"), json, threads, device);
  }
  if (args.has("--out") || args.has("--overlay"))
    CONVOY_USER_ERROR("convoy predict: --out and --overlay are for segmentation checkpoints (masks); "
                      << args.get("--checkpoint") << " is a classifier (" << m.config.model.arch << ")");
  std::vector<std::string> images;
  for (const auto& in : inputs) images.push_back(in.path);
  m.model->to(device);
  const auto& d = m.config.data;
  auto mean = torch::tensor(std::vector<float>(d.mean.begin(), d.mean.end())).view({1, -1, 1, 1}).to(device);
  auto std = torch::tensor(std::vector<float>(d.std.begin(), d.std.end())).view({1, -1, 1, 1}).to(device);
  const int64_t k = std::min<int64_t>(topk_wanted, static_cast<int64_t>(m.class_names.size()));
  spdlog::info("{} image(s), {} ({} classes), batch {}, {} thread(s), on {}", images.size(), m.config.model.arch,
               m.class_names.size(), batch, threads, device.str());

  BatchDecoder decoder(m.config, images, threads);
  torch::NoGradGuard no_grad;
  auto decode_from = [&](size_t first) {
    return std::async(std::launch::async, [&decoder, first, batch] {
      return decoder.decode(first, std::min<size_t>(batch, decoder.size() - first));
    });
  };
  auto next = decode_from(0);
  size_t failed = 0;
  for (size_t first = 0; first < images.size(); first += batch) {
    DecodedBatch b = next.get();
    if (first + batch < images.size()) next = decode_from(first + batch);
    // uint8 to the device (a quarter of float32's bytes), normalised there.
    auto x = (b.pixels.to(device).to(torch::kFloat).div_(255.0) - mean) / std;
    auto probs = torch::softmax(m.model->forward(x).to(torch::kFloat), 1);
    auto [dev_values, dev_indices] = probs.topk(k, 1);
    auto values = dev_values.cpu(), indices = dev_indices.cpu();
    for (size_t i = 0; i < b.count; ++i) {
      const std::string& path = images[b.first + i];
      if (!b.error[i].empty()) {
        ++failed;
        if (json) std::printf("%s\n", JsonLine().add("path", path).add("error", b.error[i]).str().c_str());
        else std::printf("%s: error: %s\n", path.c_str(), b.error[i].c_str());
        continue;
      }
      std::vector<JsonLine> top;
      std::string text;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t idx = indices[i][j].item<int64_t>();
        const double p = values[i][j].item<double>();
        const std::string& label = m.class_names[idx];
        top.push_back(JsonLine().add("label", label).add("index", idx).add("prob", p));
        text += fmt::format("{}{} {:.4f}", j ? ", " : "", label, p);
      }
      if (json) std::printf("%s\n", JsonLine().add("path", path).add("topk", top).str().c_str());
      else std::printf("%s: %s\n", path.c_str(), text.c_str());
    }
  }
  std::fflush(stdout);
  if (failed > 0) spdlog::warn("{} of {} image(s) could not be read or decoded", failed, images.size());
  return 0;
}

}  // namespace

int predict_main(const std::vector<std::string>& argv) {
  CliArgs args("predict",
               "usage: convoy predict --checkpoint CKPT [--topk K] [--json] [--batch B] [--threads T]\n"
               "                      [--device auto|cpu|cuda] [--out DIR [--overlay]] IMAGE... | DIR...\n"
               "Top-K labels (default 5) with probabilities for each image (folders are searched for\n"
               ".jpg/.jpeg/.png), preprocessed as the run evaluated: resize, center crop, its mean/std.\n"
               "--json: one object per line, {\"path\":P,\"topk\":[{\"label\":L,\"index\":I,\"prob\":p},...]};\n"
               "an image that cannot be decoded gives {\"path\":P,\"error\":E} and the rest go on.\n"
               "--device auto (default) runs the model on the first visible GPU when the build has CUDA.\n"
               "A segmentation checkpoint (unet) writes one mask per image to --out DIR instead:\n"
               "DIR/NAME.png at the image's own size, one class id per pixel (NAME: the image's path\n"
               "below the folder given, without its extension); --overlay also writes NAME_overlay.jpg,\n"
               "the image with each class blended in its colour. The line per image gives each class's\n"
               "share of the pixels; --json: {\"path\",\"mask\",\"width\",\"height\",\"fractions\":{NAME:f}}.\n"
               "example: convoy predict --checkpoint runs/X/checkpoints/best.ckpt --topk 3 photos/\n");
  args.option("--checkpoint").option("--topk").option("--batch").option("--threads").option("--device").option("--out");
  args.flag("--json").flag("--overlay");
  if (!args.parse(argv)) return 0;
  if (args.positional().empty()) CONVOY_USER_ERROR("convoy predict needs IMAGE... or DIR (see convoy predict --help)");
  init_logging("predict", -1, "warn");
  try {
    return run_predict(args);
  } catch (const c10::Error& e) {
    throw Error(error_text(e));
  }
}

}  // namespace convoy
