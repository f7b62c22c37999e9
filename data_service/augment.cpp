// Image transforms (see augment.h).
#include "data_service/augment.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <vector>

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

void write_chw(const cv::Mat& img, uint8_t* dst) {
  const int h = img.rows, w = img.cols, c = img.channels();
  if (c == 1) {
    img.copyTo(cv::Mat(h, w, CV_8UC1, dst));
    return;
  }
  // cv::split writes straight into Mats that view the destination planes.
  std::vector<cv::Mat> planes;
  for (int k = 0; k < c; ++k) planes.emplace_back(h, w, CV_8UC1, dst + static_cast<size_t>(k) * h * w);
  cv::split(img, planes.data());
}

cv::Rect2d center_crop_rect(int height, int width, const ImageSpec& out, float ratio) {
  // resize_center_crop's geometry: shorter side to `shorter`, center crop.
  const double shorter = std::lround(std::min(out.height, out.width) * ratio);
  const double scale = shorter / std::min(height, width);
  const double cw = std::min<double>(width, out.width / scale), ch = std::min<double>(height, out.height / scale);
  return cv::Rect2d((width - cw) / 2, (height - ch) / 2, cw, ch);
}

WholeImageFit fit_whole_image(int height, int width, const ImageSpec& out, float ratio, int stride) {
  WholeImageFit f;
  f.height = height;
  f.width = width;
  const double shorter = std::max<long>(1, std::lround(std::min(out.height, out.width) * ratio));
  double scale = shorter / std::min(height, width);
  scale = std::min(scale, WholeImageFit::kMaxAspect * shorter / std::max(height, width));
  f.scaled_h = std::max(1, static_cast<int>(std::lround(height * scale)));
  f.scaled_w = std::max(1, static_cast<int>(std::lround(width * scale)));
  f.padded_h = (f.scaled_h + stride - 1) / stride * stride;
  f.padded_w = (f.scaled_w + stride - 1) / stride * stride;
  return f;
}

cv::Mat pad_to_fit(const cv::Mat& resized, const WholeImageFit& fit) {
  CONVOY_CHECK(resized.rows == fit.scaled_h && resized.cols == fit.scaled_w,
               "pad_to_fit: a " << resized.cols << "x" << resized.rows << " image for " << fit.scaled_w << "x"
                                << fit.scaled_h);
  const int dh = fit.padded_h - fit.scaled_h, dw = fit.padded_w - fit.scaled_w;
  cv::Mat padded;
  // OpenCV's reflection needs the border narrower than the image.
  const int border = dh < fit.scaled_h && dw < fit.scaled_w ? cv::BORDER_REFLECT_101 : cv::BORDER_REPLICATE;
  cv::copyMakeBorder(resized, padded, 0, dh, 0, dw, border);
  return padded.isContinuous() ? padded : padded.clone();
}

bool plan_crop(int height, int width, const TransformSpec& spec, SampleRng& rng, CropPlan* plan) {
  const auto& a = spec.augment;
  if (spec.train && a.random_crop_padding > 0) return false;
  if (spec.train && a.random_resized_crop) {
    cv::Rect r = random_resized_crop_rect(height, width, a, rng);
    plan->src = cv::Rect2d(r.x, r.y, r.width, r.height);
  } else {
    plan->src = center_crop_rect(height, width, spec.out, spec.train ? 1.f : spec.eval_resize_ratio);
  }
  plan->flip = spec.train && a.horizontal_flip && rng.uniform() < 0.5;
  return true;
}

void render_crop(const cv::Mat& region, int scale_denom, int x0, int y0, const CropPlan& plan,
                 const ImageSpec& out, uint8_t* dst) {
  const int oh = out.height, ow = out.width;
  const double d = scale_denom, sx = plan.src.width / ow, sy = plan.src.height / oh;
  // Output pixel center u maps to original x = src.x + (u + 0.5) * sx (edge
  // coordinates); decoded pixel j covers original [j*d, (j+1)*d), so its
  // center is at region column (x / d - 0.5 - x0).
  double ax = sx / d, bx = (plan.src.x + 0.5 * sx) / d - 0.5 - x0;
  double ay = sy / d, by = (plan.src.y + 0.5 * sy) / d - 0.5 - y0;
  thread_local cv::Mat hwc;
  cv::Mat target = region.channels() == 1 ? cv::Mat(oh, ow, CV_8UC1, dst) : hwc;
  // When the rectangle falls on whole decoded pixels (always at scale 1 with
  // random-resized-crop's integer rectangles) a separable resize of that ROI
  // is the same map as the warp, at about a third of the cost.
  cv::Rect2d scaled(plan.src.x / d - x0, plan.src.y / d - y0, plan.src.width / d, plan.src.height / d);
  cv::Rect roi(cv::Point(static_cast<int>(std::lround(scaled.x)), static_cast<int>(std::lround(scaled.y))),
               cv::Point(static_cast<int>(std::lround(scaled.br().x)), static_cast<int>(std::lround(scaled.br().y))));
  auto whole = [](double v) { return std::abs(v - std::round(v)) < 1e-6; };
  if (whole(scaled.x) && whole(scaled.y) && whole(scaled.br().x) && whole(scaled.br().y) &&
      (roi & cv::Rect(0, 0, region.cols, region.rows)) == roi && !roi.empty()) {
    cv::resize(region(roi), target, cv::Size(ow, oh), 0, 0, cv::INTER_LINEAR);
    if (plan.flip) cv::flip(target, target, 1);
  } else {
    if (plan.flip) {
      bx += (ow - 1) * ax;
      ax = -ax;
    }
    cv::Matx23d m(ax, 0, bx, 0, ay, by);
    cv::warpAffine(region, target, m, cv::Size(ow, oh), cv::INTER_LINEAR | cv::WARP_INVERSE_MAP, cv::BORDER_REPLICATE);
  }
  if (region.channels() != 1) write_chw(target, dst);
}

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
      bool shrink = r.width > ow || r.height > oh;
      cv::resize(src(r), img, cv::Size(ow, oh), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
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
