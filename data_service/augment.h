// Image transforms: random-resized-crop, padded random crop and horizontal
// flip for training; resize + center crop for evaluation. All randomness
// comes from the SampleRng passed in, seeded by (seed, epoch, sample index).
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>

#include "common/config.h"
#include "common/sample_rng.h"

namespace convoy {

struct TransformSpec {
  ImageSpec out;
  AugmentSpec augment;
  bool train = true;
  float eval_resize_ratio = 1.f;
};

// Transforms `src` (8-bit, out.channels channels) and writes it as planar
// CHW bytes (out.bytes() of them) to `dst`.
void transform_image(const cv::Mat& src, const TransformSpec& spec, SampleRng& rng, uint8_t* dst);

// torchvision's RandomResizedCrop.get_params: the crop rectangle.
cv::Rect random_resized_crop_rect(int height, int width, const AugmentSpec& a, SampleRng& rng);

// Resizes so the shorter side is `shorter`, then crops the center out_h x out_w.
cv::Mat resize_center_crop(const cv::Mat& src, int shorter, int out_h, int out_w);

}  // namespace convoy
