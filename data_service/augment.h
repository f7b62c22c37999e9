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
// CHW bytes (out.bytes() of them) to `dst`. This is the full-decode path:
// crop, then resize (area averaging when shrinking), then flip.
void transform_image(const cv::Mat& src, const TransformSpec& spec, SampleRng& rng, uint8_t* dst);

// The crop-aware path. Training with random-resized-crop (and no padding)
// and evaluation are both "take this rectangle of the original image to the
// output size, maybe mirrored": a CropPlan, drawn from the same random
// numbers in the same order as transform_image draws them.
struct CropPlan {
  cv::Rect2d src;  // in original-image pixels (edges, not centers)
  bool flip = false;
};
// The rectangle (original-image pixels, edges) that resize_center_crop takes
// to `out`: the shorter side scaled to min(out sides) x ratio, centered.
cv::Rect2d center_crop_rect(int height, int width, const ImageSpec& out, float ratio);
// False (and no random number drawn) when the transform is not a plain crop.
bool plan_crop(int height, int width, const TransformSpec& spec, SampleRng& rng, CropPlan* plan);

// Renders a plan from `region`, a part of the image decoded at
// 1/scale_denom whose pixel (0,0) is scaled pixel (x0, y0): one bilinear warp
// does crop, resize and flip, then the planes are split into `dst` (CHW).
void render_crop(const cv::Mat& region, int scale_denom, int x0, int y0, const CropPlan& plan,
                 const ImageSpec& out, uint8_t* dst);

// Writes an HWC image as planar CHW bytes.
void write_chw(const cv::Mat& img, uint8_t* dst);

// torchvision's RandomResizedCrop.get_params: the crop rectangle.
cv::Rect random_resized_crop_rect(int height, int width, const AugmentSpec& a, SampleRng& rng);

// Resizes so the shorter side is `shorter`, then crops the center out_h x out_w.
cv::Mat resize_center_crop(const cv::Mat& src, int shorter, int out_h, int out_w);

// Segmentation's evaluation and prediction see the whole image, never a
// crop: its shorter side scaled to min(out sides) x ratio (as center_crop_rect
// scales it; the longer side at most kMaxAspect times that, a longer image
// scaled down further), then padded to multiples of `stride` (a U-Net halves
// its input five times). The scores are taken at the original size.
struct WholeImageFit {
  static constexpr int kMaxAspect = 4;
  int height = 0, width = 0;      // the original image
  int scaled_h = 0, scaled_w = 0; // resized
  int padded_h = 0, padded_w = 0; // then padded
};
WholeImageFit fit_whole_image(int height, int width, const ImageSpec& out, float ratio, int stride = 32);
// `resized` (fit.scaled_h x fit.scaled_w) padded at the bottom and right to
// fit.padded_h x fit.padded_w: mirrored without repeating the edge (a frame
// of zeros would be a dark border the model never saw), or the edge
// repeated where the padding is wider than the image.
cv::Mat pad_to_fit(const cv::Mat& resized, const WholeImageFit& fit);

}  // namespace convoy
