// Sample decoding (see image_decode.h).
#include "data_service/image_decode.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

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
  auto check_size = [&](const cv::Mat& mask, int width, int height) {
    if (mask.cols != width || mask.rows != height)
      throw DecodeError(ds.describe(i) + ": its mask is " + std::to_string(mask.cols) + "x" +
                        std::to_string(mask.rows) + ", the image " + std::to_string(width) + "x" +
                        std::to_string(height) + " (a mask must have its image's size)");
  };
  thread_local EncodedImage enc;
  thread_local std::vector<uint8_t> pixels;
  if (opt.crop_aware && ds.read_encoded(i, &enc) && looks_like_jpeg(enc.data, enc.size)) {
    const JpegInfo info = checked_jpeg_info(ds, i, enc);
    if (info.croppable) {
      const cv::Mat mask = ds.load_mask(i);
      check_size(mask, info.width, info.height);
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
  check_size(mask, image.cols, image.rows);
  transform_image_and_mask(image, mask, spec, ignore_index, rng, dst_image, dst_mask);
}

}  // namespace convoy
