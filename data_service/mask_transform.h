// Segmentation's transforms: one geometric draw applied to an image
// (bilinear, area-averaged first when shrinking by 2x or more) and to its
// mask (nearest neighbour, so no pixel ever gets a class between two
// classes), then photometric jitter on the image alone. Like augment.h, a
// pure function of the SampleRng (seeded by seed, epoch and sample index).
//
// Training draws, in this order: the crop (random_resized_crop's rectangle,
// else the whole image), a horizontal flip, a vertical flip, a multiple of
// 90 degrees, a rotation in [-rotate_degrees, rotate_degrees], then the
// brightness, contrast, saturation and hue factors. With spec.train false
// nothing is drawn: shorter side to size x eval_resize_ratio, center crop
// (the service's evaluation batches take whole images instead:
// decode_for_scoring in image_decode.h).
// Pixels a rotation brings in from outside the image are mirrored in the
// image and unlabelled (ignore_index) in the mask.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>

#include "common/sample_rng.h"
#include "data_service/augment.h"

namespace convoy {

// Output pixel (u, v) -> source pixel coordinates (index, not edge).
struct JointGeometry {
  cv::Matx23d to_source;
  double shrink = 1;  // source pixels per output pixel, the smaller axis
};

JointGeometry draw_joint_geometry(int height, int width, const TransformSpec& spec, SampleRng& rng);

// `nearest`: the image sampled like the mask (tests compare them pixel for pixel).
void render_image(const cv::Mat& src, const JointGeometry& g, const ImageSpec& out, cv::Mat* hwc, bool nearest = false);
void render_mask(const cv::Mat& mask, const JointGeometry& g, const ImageSpec& out, uint8_t ignore_index, uint8_t* dst);

// torchvision's ColorJitter factors, drawn in a fixed order (brightness,
// contrast, saturation, hue) and applied to an 8-bit HWC image in place.
void color_jitter(const AugmentSpec& a, SampleRng& rng, cv::Mat* hwc);

// The rest of a sample once its geometry is drawn: the image rendered with
// `image_geometry` (the drawn geometry, or the same map into a region
// decoded at a DCT scale: region_geometry), the mask with `g`, then colour
// jitter (training) and CHW bytes.
void render_sample(const cv::Mat& image, const JointGeometry& image_geometry, const cv::Mat& mask,
                   const JointGeometry& g, const TransformSpec& spec, uint8_t ignore_index, SampleRng& rng,
                   uint8_t* dst_image, uint8_t* dst_mask, bool nearest_image = false);

// `g` in the coordinates of a region of the image decoded at 1/scale_denom
// whose pixel (0, 0) is the scaled image's (x0, y0).
JointGeometry region_geometry(const JointGeometry& g, int scale_denom, int x0, int y0);

// The source pixels (original image, edge coordinates) that rendering `g`
// at `out` reads: the output's corners mapped back, one pixel more around
// for bilinear sampling, clipped to the width x height image.
cv::Rect source_bounds(const JointGeometry& g, const ImageSpec& out, int height, int width);

// The whole sample: image as CHW bytes to dst_image, mask (H x W class ids)
// to dst_mask. `mask` must be `image`'s size.
void transform_image_and_mask(const cv::Mat& image, const cv::Mat& mask, const TransformSpec& spec,
                              uint8_t ignore_index, SampleRng& rng, uint8_t* dst_image, uint8_t* dst_mask,
                              bool nearest_image = false);

}  // namespace convoy
