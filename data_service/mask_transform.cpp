// Joint image/mask transforms (see mask_transform.h).
#include "data_service/mask_transform.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "common/error.h"

namespace convoy {

JointGeometry draw_joint_geometry(int height, int width, const TransformSpec& spec, SampleRng& rng) {
  const auto& a = spec.augment;
  const double oh = spec.out.height, ow = spec.out.width;
  cv::Rect2d crop(0, 0, width, height);
  bool hflip = false, vflip = false;
  int quarter = 0;
  double degrees = 0;
  if (spec.train) {
    if (a.random_resized_crop) {
      cv::Rect r = random_resized_crop_rect(height, width, a, rng);
      crop = cv::Rect2d(r.x, r.y, r.width, r.height);
    }
    hflip = a.horizontal_flip && rng.uniform() < 0.5;
    vflip = a.vertical_flip && rng.uniform() < 0.5;
    if (a.rotate90) quarter = static_cast<int>(rng.below(4));
    if (a.rotate_degrees > 0) degrees = rng.uniform(-a.rotate_degrees, a.rotate_degrees);
  } else {
    crop = center_crop_rect(height, width, spec.out, spec.eval_resize_ratio);
  }
  // An odd number of quarter turns swaps which output axis spans the
  // crop's width, so the rotated samples still cover the crop exactly.
  const bool swap = quarter % 2 == 1;
  const double sx = (swap ? crop.height : crop.width) / ow, sy = (swap ? crop.width : crop.height) / oh;
  const double phi = (90.0 * quarter + degrees) * CV_PI / 180.0;
  const double c = std::cos(phi), s = std::sin(phi);
  // A = R(phi) * diag(sx * fx, sy * fy): output offsets from the center to
  // source offsets; the centers meet (edge coordinates, then -0.5 for index).
  const double ax = sx * (hflip ? -1 : 1), ay = sy * (vflip ? -1 : 1);
  const cv::Matx22d A(c * ax, -s * ay, s * ax, c * ay);
  const cv::Vec2d center(crop.x + crop.width / 2, crop.y + crop.height / 2), half(ow / 2 - 0.5, oh / 2 - 0.5);
  const cv::Vec2d b = center - cv::Vec2d(0.5, 0.5) - A * half;
  JointGeometry g;
  g.to_source = cv::Matx23d(A(0, 0), A(0, 1), b[0], A(1, 0), A(1, 1), b[1]);
  g.shrink = std::min(sx, sy);
  return g;
}

void render_image(const cv::Mat& src, const JointGeometry& g, const ImageSpec& out, cv::Mat* hwc, bool nearest) {
  cv::Matx23d m = g.to_source;
  const cv::Mat* from = &src;
  thread_local cv::Mat reduced;
  // Shrinking by f >= 2: average f x f blocks first (the bilinear warp
  // would alias), and map into the reduced image: x' = (x + 0.5) / f - 0.5.
  const int f = nearest ? 1 : static_cast<int>(std::floor(g.shrink));
  if (f >= 2 && src.cols / f > 0 && src.rows / f > 0) {
    cv::resize(src, reduced, cv::Size(src.cols / f, src.rows / f), 0, 0, cv::INTER_AREA);
    const double kx = static_cast<double>(reduced.cols) / src.cols, ky = static_cast<double>(reduced.rows) / src.rows;
    m = cv::Matx23d(m(0, 0) * kx, m(0, 1) * kx, (m(0, 2) + 0.5) * kx - 0.5,  //
                    m(1, 0) * ky, m(1, 1) * ky, (m(1, 2) + 0.5) * ky - 0.5);
    from = &reduced;
  }
  cv::warpAffine(*from, *hwc, m, cv::Size(out.width, out.height),
                 (nearest ? cv::INTER_NEAREST : cv::INTER_LINEAR) | cv::WARP_INVERSE_MAP, cv::BORDER_REFLECT_101);
}

void render_mask(const cv::Mat& mask, const JointGeometry& g, const ImageSpec& out, uint8_t ignore_index,
                 uint8_t* dst) {
  cv::Mat target(out.height, out.width, CV_8UC1, dst);
  cv::warpAffine(mask, target, g.to_source, target.size(), cv::INTER_NEAREST | cv::WARP_INVERSE_MAP,
                 cv::BORDER_CONSTANT, cv::Scalar::all(ignore_index));
}

void color_jitter(const AugmentSpec& a, SampleRng& rng, cv::Mat* hwc) {
  if (!a.photometric()) return;
  auto factor = [&](float x) { return x > 0 ? rng.uniform(1 - x, 1 + x) : 1.0; };
  const double brightness = factor(a.brightness), contrast = factor(a.contrast), saturation = factor(a.saturation);
  const double hue = a.hue > 0 ? rng.uniform(-a.hue, a.hue) : 0.0;
  const bool color = hwc->channels() == 3;
  cv::Mat f;
  hwc->convertTo(f, CV_32F, brightness);
  cv::Mat gray;
  if (contrast != 1) {
    // Blend with the mean grey level (torchvision: the mean of the greyscale image).
    if (color) cv::cvtColor(f, gray, cv::COLOR_RGB2GRAY);
    const double mean = cv::mean(color ? gray : f)[0];
    f.convertTo(f, CV_32F, contrast, (1 - contrast) * mean);
    cv::min(cv::max(f, 0), 255, f);
  }
  if (color && saturation != 1) {
    cv::cvtColor(f, gray, cv::COLOR_RGB2GRAY);
    cv::Mat gray3;
    cv::cvtColor(gray, gray3, cv::COLOR_GRAY2RGB);
    cv::addWeighted(f, saturation, gray3, 1 - saturation, 0, f);
  }
  f.convertTo(*hwc, CV_8U);  // rounds and saturates to 0..255
  if (color && hue != 0) {
    cv::Mat hsv;
    cv::cvtColor(*hwc, hsv, cv::COLOR_RGB2HSV_FULL);  // H in 0..255 for a whole turn
    const int shift = static_cast<int>(std::lround(hue * 256));
    for (int y = 0; y < hsv.rows; ++y) {
      auto* p = hsv.ptr<cv::Vec3b>(y);
      for (int x = 0; x < hsv.cols; ++x) p[x][0] = static_cast<uint8_t>((p[x][0] + shift) & 0xFF);
    }
    cv::cvtColor(hsv, *hwc, cv::COLOR_HSV2RGB_FULL);
  }
}

void transform_image_and_mask(const cv::Mat& image, const cv::Mat& mask, const TransformSpec& spec,
                              uint8_t ignore_index, SampleRng& rng, uint8_t* dst_image, uint8_t* dst_mask,
                              bool nearest_image) {
  CONVOY_CHECK(image.type() == CV_8UC(spec.out.channels),
               "image has " << image.channels() << " channels, expected " << spec.out.channels);
  CONVOY_CHECK(mask.type() == CV_8UC1 && mask.size() == image.size(), "mask is not the image's size");
  const JointGeometry g = draw_joint_geometry(image.rows, image.cols, spec, rng);
  render_sample(image, g, mask, g, spec, ignore_index, rng, dst_image, dst_mask, nearest_image);
}

void render_sample(const cv::Mat& image, const JointGeometry& image_geometry, const cv::Mat& mask,
                   const JointGeometry& g, const TransformSpec& spec, uint8_t ignore_index, SampleRng& rng,
                   uint8_t* dst_image, uint8_t* dst_mask, bool nearest_image) {
  thread_local cv::Mat hwc;
  render_image(image, image_geometry, spec.out, &hwc, nearest_image);
  render_mask(mask, g, spec.out, ignore_index, dst_mask);
  if (spec.train) color_jitter(spec.augment, rng, &hwc);
  write_chw(hwc, dst_image);
}

JointGeometry region_geometry(const JointGeometry& g, int scale_denom, int x0, int y0) {
  // Original index x -> scaled index (x + 0.5) / d - 0.5 -> region index - x0.
  const double k = 1.0 / scale_denom;
  const cv::Matx23d& m = g.to_source;
  JointGeometry r;
  r.to_source = cv::Matx23d(m(0, 0) * k, m(0, 1) * k, (m(0, 2) + 0.5) * k - 0.5 - x0,  //
                            m(1, 0) * k, m(1, 1) * k, (m(1, 2) + 0.5) * k - 0.5 - y0);
  r.shrink = g.shrink / scale_denom;
  return r;
}

cv::Rect source_bounds(const JointGeometry& g, const ImageSpec& out, int height, int width) {
  double x0 = 1e300, y0 = 1e300, x1 = -1e300, y1 = -1e300;
  for (double u : {0.0, out.width - 1.0})
    for (double v : {0.0, out.height - 1.0}) {
      const cv::Matx23d& m = g.to_source;
      const double x = m(0, 0) * u + m(0, 1) * v + m(0, 2), y = m(1, 0) * u + m(1, 1) * v + m(1, 2);
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  // Index coordinates to a rectangle of pixels, one more around (bilinear,
  // and the area reduction's blocks), clipped to the image.
  const int left = std::max(0, static_cast<int>(std::floor(x0)) - 1);
  const int top = std::max(0, static_cast<int>(std::floor(y0)) - 1);
  const int right = std::min(width, static_cast<int>(std::ceil(x1)) + 2);
  const int bottom = std::min(height, static_cast<int>(std::ceil(y1)) + 2);
  return cv::Rect(cv::Point(left, top), cv::Point(std::max(left + 1, right), std::max(top + 1, bottom)));
}

}  // namespace convoy
