// Masks from a segmentation checkpoint (see predict_masks.h).
#include "inference/predict_masks.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstring>
#include <cstdio>
#include <set>

#include "common/class_colors.h"
#include "common/error.h"
#include "common/files.h"
#include "common/metrics.h"
#include "data_service/dataset.h"
#include "data_service/image_decode.h"
#include "models/models.h"
#include "data_service/thread_pool.h"

namespace convoy {
namespace {

std::vector<std::string> class_names_of(const CheckpointModel& m, int classes) {
  std::vector<std::string> names = m.class_names;
  for (int c = static_cast<int>(names.size()); c < classes; ++c) names.push_back(std::to_string(c));
  names.resize(classes);
  return names;
}

void write_image(const std::string& path, const cv::Mat& img) {
  make_dirs(dirname_of(path));
  if (!cv::imwrite(path, img)) CONVOY_USER_ERROR("cannot write " << path);
}

}  // namespace

cv::Mat predict_mask(const CheckpointModel& m, const cv::Mat& padded, const WholeImageFit& fit,
                     const torch::Tensor& mean, const torch::Tensor& std) {
  CONVOY_CHECK(padded.isContinuous() && padded.rows == fit.padded_h && padded.cols == fit.padded_w,
               "predict_mask: an image of " << padded.cols << "x" << padded.rows << " for " << fit.padded_w << "x"
                                            << fit.padded_h);
  const torch::Device device = mean.device();
  auto x = torch::from_blob(padded.data, {1, fit.padded_h, fit.padded_w, padded.channels()}, torch::kUInt8)
               .permute({0, 3, 1, 2})
               .to(device)
               .to(torch::kFloat)
               .div_(255.0);
  x = (x - mean) / std;
  torch::NoGradGuard no_grad;
  const auto logits =
      logits_at_size(m.model->forward(x).to(torch::kFloat), fit.scaled_h, fit.scaled_w, fit.height, fit.width);
  const auto ids = predicted_classes(logits).squeeze(0).to(torch::kUInt8).cpu().contiguous();
  cv::Mat mask(fit.height, fit.width, CV_8UC1);
  std::memcpy(mask.data, ids.data_ptr<uint8_t>(), static_cast<size_t>(fit.height) * fit.width);
  return mask;
}

cv::Mat overlay_mask(const cv::Mat& image_rgb, const cv::Mat& mask, double alpha) {
  cv::Mat rgb;
  if (image_rgb.channels() == 1) cv::cvtColor(image_rgb, rgb, cv::COLOR_GRAY2RGB);
  else rgb = image_rgb.clone();
  for (int y = 0; y < rgb.rows; ++y) {
    auto* px = rgb.ptr<cv::Vec3b>(y);
    const auto* id = mask.ptr<uint8_t>(y);
    for (int x = 0; x < rgb.cols; ++x) {
      if (id[x] == 0) continue;
      const auto c = class_color(id[x]);
      for (int k = 0; k < 3; ++k)
        px[x][k] = cv::saturate_cast<uint8_t>((1 - alpha) * px[x][k] + alpha * c[k]);
    }
  }
  return rgb;
}

std::vector<double> class_fractions(const cv::Mat& mask, int classes) {
  std::vector<double> counts(classes, 0.0);
  for (int y = 0; y < mask.rows; ++y) {
    const auto* id = mask.ptr<uint8_t>(y);
    for (int x = 0; x < mask.cols; ++x)
      if (id[x] < classes) counts[id[x]] += 1;
  }
  const double n = std::max(1.0, static_cast<double>(mask.total()));
  for (auto& c : counts) c /= n;
  return counts;
}

int predict_masks(const CheckpointModel& m, const std::vector<PredictInput>& inputs, const std::string& out_dir,
                  bool overlay, bool json, int threads, const torch::Device& device) {
  std::set<std::string> stems;
  for (const auto& in : inputs)
    if (!stems.insert(in.out_stem).second)
      CONVOY_USER_ERROR("two inputs would write the same mask " << join_path(out_dir, in.out_stem + ".png")
                                                                << " (the second: " << in.path
                                                                << "); give their folder instead, or rename one");
  const auto& d = m.config.data;
  m.model->to(device);
  auto mean = torch::tensor(std::vector<float>(d.mean.begin(), d.mean.end())).view({1, -1, 1, 1}).to(device);
  auto std = torch::tensor(std::vector<float>(d.std.begin(), d.std.end())).view({1, -1, 1, 1}).to(device);
  FileList files;
  for (const auto& in : inputs) files.paths.push_back(in.path);
  files.labels.assign(files.paths.size(), 0);
  auto ds = make_file_dataset(std::move(files));
  // Evaluation's geometry and decoder (decode_whole_image).
  const TransformSpec spec{d.image, d.train_augment, false, d.eval_resize_ratio};
  const DecodeOptions decode{m.config.data_service.crop_aware_decode, m.config.data_service.fast_idct};
  // The class count the mask speaks of: a one-channel model's 0 and 1.
  const int classes = std::max<int>(2, m.config.model.num_classes > 0 ? m.config.model.num_classes
                                                                      : static_cast<int>(m.class_names.size()));
  const auto names = class_names_of(m, classes);
  spdlog::info("{} image(s), unet ({} classes), masks to {}, {} thread(s), on {}", inputs.size(), classes, out_dir,
               threads, device.str());
  make_dirs(out_dir);
  ThreadPool pool(threads);
  size_t failed = 0;
  const size_t chunk = static_cast<size_t>(std::max(1, threads));
  for (size_t first = 0; first < inputs.size(); first += chunk) {
    const size_t count = std::min(chunk, inputs.size() - first);
    std::vector<cv::Mat> images(count);
    std::vector<WholeImageFit> fits(count);
    std::vector<std::string> errors(count);
    pool.parallel_for(count, [&](size_t i) {
      try {
        images[i] = decode_whole_image(*ds, first + i, spec, decode, &fits[i]);
      } catch (const DecodeError& e) {
        errors[i] = e.what();
      }
    });
    for (size_t i = 0; i < count; ++i) {
      const PredictInput& in = inputs[first + i];
      if (!errors[i].empty()) {
        ++failed;
        if (json) std::printf("%s\n", JsonLine().add("path", in.path).add("error", errors[i]).str().c_str());
        else std::printf("%s: error: %s\n", in.path.c_str(), errors[i].c_str());
        continue;
      }
      const cv::Mat mask = predict_mask(m, images[i], fits[i], mean, std);
      const std::string mask_path = join_path(out_dir, in.out_stem + ".png");
      write_image(mask_path, mask);
      std::string overlay_path;
      if (overlay) {
        overlay_path = join_path(out_dir, in.out_stem + "_overlay.jpg");
        cv::Mat bgr;
        cv::cvtColor(overlay_mask(ds->load(first + i, d.image.channels), mask), bgr, cv::COLOR_RGB2BGR);
        write_image(overlay_path, bgr);
      }
      const auto fractions = class_fractions(mask, classes);
      if (json) {
        JsonLine f;
        for (int c = 0; c < classes; ++c) f.add(names[c], fractions[c]);
        JsonLine line;
        line.add("path", in.path).add("mask", mask_path);
        if (overlay) line.add("overlay", overlay_path);
        line.add("width", mask.cols).add("height", mask.rows).add("fractions", f);
        std::printf("%s\n", line.str().c_str());
      } else {
        std::string text;
        for (int c = 0; c < classes; ++c) text += fmt::format("{}{} {:.4f}", c ? ", " : "", names[c], fractions[c]);
        std::printf("%s: %s (%dx%d); %s\n", in.path.c_str(), mask_path.c_str(), mask.cols, mask.rows, text.c_str());
      }
    }
    std::fflush(stdout);
  }
  if (failed > 0) spdlog::warn("{} of {} image(s) could not be read or decoded", failed, inputs.size());
  return 0;
}

}  // namespace convoy
