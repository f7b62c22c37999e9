// Image transforms (see augment.h).
#include "data_service/augment.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "common/error.h"

namespace convoy {

cv::Rect random_resized_crop_rect(int height, int width, const AugmentSpec& a, SampleRng& rng) {
  double area = static_cast<double>(height) * width;
  double log_lo = std::log(a.rrc_ratio_min), log_hi = std::log(a.rrc_ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target = area * rng.uniform(a.rrc_scale_min, a.rrc_scale_max);
    double ratio = std::exp(rng.uniform(log_lo, log_hi));
    int w = static_cast<int>(std::lround(std::sqrt(target * ratio)));
    int h = static_cast<int>(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      int y = static_cast<int>(rng.below(static_cast<uint64_t>(height - h + 1)));
      int x = static_cast<int>(rng.below(static_cast<uint64_t>(width - w + 1)));
      return {x, y, w, h};
    }
  }
  // Fallback: the largest center crop with the ratio clamped into range.
  double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < a.rrc_ratio_min) {
    h = static_cast<int>(std::lround(w / a.rrc_ratio_min));
  } else if (in_ratio > a.rrc_ratio_max) {
    w = static_cast<int>(std::lround(h * a.rrc_ratio_max));
  }
  return {(width - w) / 2, (height - h) / 2, w, h};
}

cv::Mat resize_center_crop(const cv::Mat& src, int shorter, int out_h, int out_w) {
  cv::Mat img = src;
  int s = std::min(src.rows, src.cols);
  if (s != shorter) {
    double scale = static_cast<double>(shorter) / s;
    int h = std::max(out_h, static_cast<int>(std::lround(src.rows * scale)));
    int w = std::max(out_w, static_cast<int>(std::lround(src.cols * scale)));
    cv::resize(src, img, cv::Size(w, h), 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  }
  if (img.rows < out_h || img.cols < out_w) {
    cv::Mat resized;
    cv::resize(img, resized, cv::Size(std::max(out_w, img.cols), std::max(out_h, img.rows)));
    img = resized;
  }
  int y = (img.rows - out_h) / 2, x = (img.cols - out_w) / 2;
  return img(cv::Rect(x, y, out_w, out_h));
}

namespace {

void write_chw(const cv::Mat& img, uint8_t* dst) {
  const int h = img.rows, w = img.cols, c = img.channels();
  const size_t plane = static_cast<size_t>(h) * w;
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = img.ptr<uint8_t>(y);
    if (c == 1) {
      std::copy(row, row + w, dst + y * static_cast<size_t>(w));
      continue;
    }
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) dst[k * plane + y * static_cast<size_t>(w) + x] = row[x * c + k];
  }
}

}  // namespace

void transform_image(const cv::Mat& src, const TransformSpec& spec, SampleRng& rng, uint8_t* dst) {
  const int oh = spec.out.height, ow = spec.out.width;
  CONVOY_CHECK(src.type() == CV_8UC(spec.out.channels),
               "image has " << src.channels() << " channels, expected " << spec.out.channels);
  cv::Mat img;
  if (!spec.train) {
    img = resize_center_crop(src, static_cast<int>(std::lround(std::min(oh, ow) * spec.eval_resize_ratio)), oh, ow);
  } else {
    const auto& a = spec.augment;
    if (a.random_resized_crop) {
      cv::Rect r = random_resized_crop_rect(src.rows, src.cols, a, rng);
      cv::resize(src(r), img, cv::Size(ow, oh), 0, 0, cv::INTER_LINEAR);
    } else {
      img = (src.rows == oh && src.cols == ow) ? src : resize_center_crop(src, std::min(oh, ow), oh, ow);
    }
    if (a.random_crop_padding > 0) {
      int p = a.random_crop_padding;
      cv::Mat padded;
      cv::copyMakeBorder(img, padded, p, p, p, p, cv::BORDER_CONSTANT, cv::Scalar::all(0));
      int y = static_cast<int>(rng.below(2 * p + 1)), x = static_cast<int>(rng.below(2 * p + 1));
      img = padded(cv::Rect(x, y, ow, oh));
    }
    if (a.horizontal_flip && rng.uniform() < 0.5) {
      cv::Mat flipped;
      cv::flip(img, flipped, 1);
      img = flipped;
    }
  }
  write_chw(img, dst);
}

}  // namespace convoy
