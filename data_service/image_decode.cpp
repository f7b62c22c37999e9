// Sample decoding (see image_decode.h).
#include "data_service/image_decode.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cstring>

#include "common/error.h"

#include "data_service/jpeg_decode.h"
#include "data_service/mask_transform.h"

namespace convoy {
namespace {

// libjpeg decodes a truncated JPEG with only a warning (grey lower part),
// and the crop-aware path may stop before the damage. A complete JPEG ends
// with the EOI marker (FF D9), possibly followed by a little padding.
bool is_truncated_jpeg(const uint8_t* b, size_t n) {
  if (!looks_like_jpeg(b, n)) return false;
  size_t from = n > 1024 ? n - 1024 : 2;
  for (size_t i = n - 1; i > from; --i)
    if (b[i - 1] == 0xFF && b[i] == 0xD9) return false;
  return true;
}

// `what()` names the sample; called only when there is an error to report,
// so the per-sample path builds no strings.
template <class Name>
void check_bytes(const uint8_t* data, size_t n, const Name& what) {
  if (n == 0) throw DecodeError("empty file " + what());
  if (is_truncated_jpeg(data, n)) throw DecodeError("truncated JPEG " + what() + " (no end-of-image marker)");
}

template <class Name>
cv::Mat decode_full_named(const uint8_t* data, size_t n, int channels, const Name& what) {
  check_bytes(data, n, what);
  cv::Mat img;
  try {
    cv::Mat raw(1, static_cast<int>(n), CV_8UC1, const_cast<uint8_t*>(data));
    img = cv::imdecode(raw, (channels == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR) | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw DecodeError("cannot decode " + what() + ": " + e.what());
  }
  if (img.empty()) throw DecodeError("cannot decode " + what() + " (not a valid JPEG or PNG)");
  if (channels == 3) cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
  return img;
}

// A JPEG sample's header, its bytes checked first; errors name the sample.
JpegInfo checked_jpeg_info(const Dataset& ds, size_t i, const EncodedImage& enc) {
  check_bytes(enc.data, enc.size, [&] { return ds.describe(i); });
  try {
    return read_jpeg_info(enc.data, enc.size);
  } catch (const DecodeError& e) {
    throw DecodeError(ds.describe(i) + ": " + e.what());
  }
}

void check_mask_size(const Dataset& ds, size_t i, const cv::Mat& mask, int width, int height) {
  if (mask.cols != width || mask.rows != height)
    throw DecodeError(ds.describe(i) + ": its mask is " + std::to_string(mask.cols) + "x" +
                      std::to_string(mask.rows) + ", the image " + std::to_string(width) + "x" +
                      std::to_string(height) + " (a mask must have its image's size)");
}

}  // namespace

cv::Mat decode_full(const uint8_t* data, size_t n, int channels, const std::string& what) {
  return decode_full_named(data, n, channels, [&] { return what; });
}

void decode_transform(const Dataset& ds, size_t i, const TransformSpec& spec, const DecodeOptions& opt,
                      SampleRng& rng, uint8_t* dst) {
  thread_local EncodedImage enc;
  thread_local std::vector<uint8_t> pixels;
  if (!ds.read_encoded(i, &enc)) {
    transform_image(ds.load(i, spec.out.channels), spec, rng, dst);
    return;
  }
  auto name = [&] { return ds.describe(i); };
  if (opt.crop_aware && looks_like_jpeg(enc.data, enc.size)) {
    const JpegInfo info = checked_jpeg_info(ds, i, enc);
    CropPlan plan;
    if (info.croppable && plan_crop(info.height, info.width, spec, rng, &plan)) {
      int denom = choose_scale_denom(plan.src.width, plan.src.height, spec.out.width, spec.out.height);
      cv::Rect bounds(cv::Point(static_cast<int>(plan.src.x), static_cast<int>(plan.src.y)),
                      cv::Point(static_cast<int>(std::ceil(plan.src.br().x)), static_cast<int>(std::ceil(plan.src.br().y))));
      JpegRegion region;
      try {
        region = decode_jpeg_region(enc.data, enc.size, bounds, denom, {spec.out.channels, opt.fast_idct}, &pixels);
      } catch (const DecodeError& e) {
        throw DecodeError(ds.describe(i) + ": " + e.what());
      }
      render_crop(region.pixels, region.scale_denom, region.x0, region.y0, plan, spec.out, dst);
      return;
    }
  }
  transform_image(decode_full_named(enc.data, enc.size, spec.out.channels, name), spec, rng, dst);
}

void decode_with_mask(const Dataset& ds, size_t i, const TransformSpec& spec, const DecodeOptions& opt,
                      uint8_t ignore_index, SampleRng& rng, uint8_t* dst_image, uint8_t* dst_mask) {
  thread_local EncodedImage enc;
  thread_local std::vector<uint8_t> pixels;
  if (opt.crop_aware && ds.read_encoded(i, &enc) && looks_like_jpeg(enc.data, enc.size)) {
    const JpegInfo info = checked_jpeg_info(ds, i, enc);
    if (info.croppable) {
      const cv::Mat mask = ds.load_mask(i);
      check_mask_size(ds, i, mask, info.width, info.height);
      const JointGeometry g = draw_joint_geometry(info.height, info.width, spec, rng);
      const int denom =
          choose_scale_denom(g.shrink * spec.out.width, g.shrink * spec.out.height, spec.out.width, spec.out.height);
      JpegRegion region;
      try {
        region = decode_jpeg_region(enc.data, enc.size, source_bounds(g, spec.out, info.height, info.width), denom,
                                    {spec.out.channels, opt.fast_idct}, &pixels);
      } catch (const DecodeError& e) {
        throw DecodeError(ds.describe(i) + ": " + e.what());
      }
      render_sample(region.pixels, region_geometry(g, region.scale_denom, region.x0, region.y0), mask, g, spec,
                    ignore_index, rng, dst_image, dst_mask);
      return;
    }
  }
  const cv::Mat image = ds.load(i, spec.out.channels);
  const cv::Mat mask = ds.load_mask(i);
  check_mask_size(ds, i, mask, image.cols, image.rows);
  transform_image_and_mask(image, mask, spec, ignore_index, rng, dst_image, dst_mask);
}

namespace {

cv::Mat resize_to_fit(const cv::Mat& img, const WholeImageFit& fit) {
  if (img.rows == fit.scaled_h && img.cols == fit.scaled_w) return pad_to_fit(img, fit);
  const bool shrink2 = img.cols >= 2 * fit.scaled_w && img.rows >= 2 * fit.scaled_h;
  cv::Mat resized;
  cv::resize(img, resized, cv::Size(fit.scaled_w, fit.scaled_h), 0, 0, shrink2 ? cv::INTER_AREA : cv::INTER_LINEAR);
  return pad_to_fit(resized, fit);
}

}  // namespace

cv::Mat decode_whole_image(const Dataset& ds, size_t i, const TransformSpec& spec, const DecodeOptions& opt,
                           WholeImageFit* fit) {
  thread_local EncodedImage enc;
  thread_local std::vector<uint8_t> pixels;
  const float ratio = spec.eval_resize_ratio;
  if (!ds.read_encoded(i, &enc)) {
    const cv::Mat img = ds.load(i, spec.out.channels);
    *fit = fit_whole_image(img.rows, img.cols, spec.out, ratio);
    return resize_to_fit(img, *fit);
  }
  if (opt.crop_aware && looks_like_jpeg(enc.data, enc.size)) {
    const JpegInfo info = checked_jpeg_info(ds, i, enc);
    if (info.croppable) {
      *fit = fit_whole_image(info.height, info.width, spec.out, ratio);
      const int denom = choose_scale_denom(info.width, info.height, fit->scaled_w, fit->scaled_h);
      JpegRegion region;
      try {
        region = decode_jpeg_region(enc.data, enc.size, cv::Rect(0, 0, info.width, info.height), denom,
                                    {spec.out.channels, opt.fast_idct}, &pixels);
      } catch (const DecodeError& e) {
        throw DecodeError(ds.describe(i) + ": " + e.what());
      }
      return resize_to_fit(region.pixels, *fit);
    }
  }
  const cv::Mat img = decode_full_named(enc.data, enc.size, spec.out.channels, [&] { return ds.describe(i); });
  *fit = fit_whole_image(img.rows, img.cols, spec.out, ratio);
  return resize_to_fit(img, *fit);
}

void decode_for_scoring(const Dataset& ds, size_t i, const TransformSpec& spec, const DecodeOptions& opt,
                        uint8_t* dst_image, size_t image_capacity, uint8_t* dst_mask, size_t mask_capacity,
                        int64_t* extent) {
  WholeImageFit fit;
  const cv::Mat image = decode_whole_image(ds, i, spec, opt, &fit);
  const cv::Mat mask = ds.load_mask(i);
  check_mask_size(ds, i, mask, fit.width, fit.height);
  const size_t image_bytes = static_cast<size_t>(fit.padded_h) * fit.padded_w * spec.out.channels;
  const size_t mask_bytes = static_cast<size_t>(fit.height) * fit.width;
  if (image_bytes > image_capacity || mask_bytes > mask_capacity)
    throw DecodeError(ds.describe(i) + ": " + std::to_string(fit.width) + "x" + std::to_string(fit.height) +
                      " is larger than the evaluation images the batches were laid out for (was the file replaced "
                      "while the run went on?)");
  write_chw(image, dst_image);
  CONVOY_CHECK(mask.isContinuous() && mask.type() == CV_8UC1, "a mask is 8-bit, one channel");
  std::memcpy(dst_mask, mask.data, mask_bytes);
  extent[kImageH] = fit.padded_h;
  extent[kImageW] = fit.padded_w;
  extent[kContentH] = fit.scaled_h;
  extent[kContentW] = fit.scaled_w;
  extent[kMaskH] = fit.height;
  extent[kMaskW] = fit.width;
}

cv::Size encoded_image_size(const Dataset& ds, size_t i) {
  thread_local EncodedImage enc;
  if (ds.read_encoded(i, &enc)) {
    const uint8_t* b = enc.data;
    if (looks_like_jpeg(b, enc.size)) {
      const JpegInfo info = checked_jpeg_info(ds, i, enc);
      return cv::Size(info.width, info.height);
    }
    static const uint8_t kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (enc.size >= 24 && std::memcmp(b, kPng, 8) == 0 && std::memcmp(b + 12, "IHDR", 4) == 0) {
      auto be32 = [&](size_t at) {
        return static_cast<int>((uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) |
                                uint32_t(b[at + 3]));
      };
      return cv::Size(be32(16), be32(20));
    }
    return decode_full_named(enc.data, enc.size, 1, [&] { return ds.describe(i); }).size();
  }
  return ds.load(i, 1).size();
}

}  // namespace convoy
